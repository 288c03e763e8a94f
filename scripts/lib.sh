# Functions shared by scripts/*: source this file, do not run it.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

# Progress goes to stderr so that a script's stdout stays machine-readable (pg-cluster's URL).
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [[ $EUID -eq 0 ]]; }

# Install Debian packages when running as root; otherwise say what to install and fail.
apt_install() {
  is_root || die "$* not installed; as root run: apt-get install -y --no-install-recommends $*"
  command -v apt-get >/dev/null || die "$* not installed and apt-get is not available"
  say "installing $* (apt-get)"
  local log
  log=$(mktemp)
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "$@"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get install $* failed"
  fi
  rm -f "$log"
}

# Create .venv if needed and (re)install the project with its dev extras when pyproject.toml
# changed since the last install, so that repeated runs skip pip entirely.
ensure_venv() {
  if [[ ! -x $VENV/bin/pip ]]; then
    say "creating .venv"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      # Debian's python3 ships venv's pip bootstrap separately.
      rm -rf "$VENV"
      apt_install python3-venv
      python3 -m venv "$VENV" || die "python3 -m venv failed"
    fi
  fi
  local sum
  sum=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
  if [[ ! -e $VENV/.installed-$sum ]]; then
    say "installing incident[dev] into .venv"
    (cd "$ROOT" && "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev]') ||
      die "pip install -e '.[dev]' failed"
    rm -f "$VENV"/.installed-*
    touch "$VENV/.installed-$sum"
  fi
}
