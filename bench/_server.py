"""Shared plumbing for the benchmarks: prepare a database, start and stop `incident serve`.

Everything talks to 127.0.0.1 only. The server is a subprocess started from the repo's
virtualenv exactly as a user runs it (`incident serve --port P`, embedded worker on); it is
stopped by its PID (SIGTERM, then SIGKILL after a grace period), also when a benchmark fails.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
# The checkout's own virtualenv, or (a git worktree without one) the venv running this script.
BIN = REPO / ".venv" / "bin" if (REPO / ".venv" / "bin").is_dir() else Path(sys.executable).parent
INCIDENT = BIN / "incident"
RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def source_tree(commit: str | None, workdir: Path) -> Path:
    """The package to benchmark: the working tree, or ``git archive COMMIT`` in workdir/src.

    Other people edit the working tree while benchmarks run; a commit gives stable figures.
    The snapshot is imported through PYTHONPATH (ahead of the editable install).
    """
    if commit is None:
        return REPO
    dest = workdir / "src"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=REPO, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def bench_env(
    database_url: str, playbooks_dir: Path, src: Path = REPO, **extra: str
) -> dict[str, str]:
    """The environment for every `incident` command: no INCIDENT_* leaks from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env.pop("PYTHONPATH", None)
    # Always through PYTHONPATH: the venv's editable install may be another checkout's.
    env["PYTHONPATH"] = str(src)
    env.update(
        INCIDENT_DATABASE_URL=database_url,
        INCIDENT_PLAYBOOKS_DIR=str(playbooks_dir),
        INCIDENT_DEMO_ROSTER=str(src / "incident" / "demo" / "roster.yaml"),
        INCIDENT_LOG_FORMAT="json",  # so that the log can be counted by level afterwards
        INCIDENT_LOG_LEVEL="INFO",
        INCIDENT_EMBEDDED_WORKER="true",
        INCIDENT_RATE_LIMIT_PER_MINUTE="0",  # load from one address is the point here
    )
    env.update(extra)
    return env


def run_cli(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float = 120) -> str:
    """Run `incident ARGS` and return its stdout; raise with its output if it fails."""
    done = subprocess.run(
        [str(INCIDENT), *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"incident {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def prepare(workdir: Path, env: Mapping[str, str]) -> str:
    """Migrate, seed the demo roster and users (cwd = workdir); return the duty user's token."""
    run_cli(["db", "upgrade"], cwd=workdir, env=env)
    out = run_cli(["demo"], cwd=workdir, env=env)
    found = re.search(r"demo user duty \([a-z_]+\): token (\S+)", out)
    if found:
        return found.group(1)
    # The demo users already existed (a reused PostgreSQL database): issue a fresh token.
    out = run_cli(["users", "token", "duty"], cwd=workdir, env=env)
    found = re.search(r"token: (\S+)", out)
    if not found:
        raise RuntimeError(f"no token for the duty user in: {out!r}")
    return found.group(1)


class Server:
    """`incident serve` as a subprocess; its stdout and stderr go to ``log_path``."""

    def __init__(self, workdir: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.stop_signal: str | None = None
        self.cpu: CpuSampler | None = None

    def start(self, ready_timeout: float = 60) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(INCIDENT), "serve", "--host", HOST, "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.cpu = CpuSampler(self.proc.pid)
        self.cpu.start()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.proc.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            try:
                r = httpx.get(f"{self.base_url}/readyz", timeout=2)
                if r.status_code == 200:
                    return
                # without the embedded worker, "not ready" only says no worker beats (#14)
                no_worker = self.env.get("INCIDENT_EMBEDDED_WORKER") == "false"
                if no_worker and r.status_code == 503 and r.json()["status"] == "not ready":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server was not ready after {ready_timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self, grace: float = 15) -> None:
        """SIGTERM by PID, wait, then SIGKILL by PID. Safe to call twice."""
        proc = self.proc
        if proc is None:
            return
        if self.cpu is not None:
            self.cpu.stop()
        if proc.poll() is None:
            self.stop_signal = "SIGTERM"
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.stop_signal = "SIGKILL"
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
            except ProcessLookupError:
                pass
        self.exit_code = proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def log_summary(path: Path, keep: int = 8) -> dict[str, Any]:
    """Count the server log's lines by level; keep the first few warnings and errors."""
    levels: dict[str, int] = {}
    events: dict[str, int] = {}
    notable: list[str] = []
    other = 0
    tracebacks = 0
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {"missing": True}
    for line in text.splitlines():
        if line.startswith("Traceback"):
            tracebacks += 1
        try:
            record = json.loads(line)
        except ValueError:
            other += 1
            if line.strip() and len(notable) < keep and "Traceback" in line:
                notable.append(line[:300])
            continue
        if not isinstance(record, dict):
            other += 1
            continue
        level = str(record.get("level", "?"))
        levels[level] = levels.get(level, 0) + 1
        if level in ("warning", "error", "critical"):
            name = str(record.get("event", ""))[:80]
            events[f"{level}:{name}"] = events.get(f"{level}:{name}", 0) + 1
            if len(notable) < keep:
                notable.append(line[:400])
    return {
        "lines_by_level": levels,
        "non_json_lines": other,
        "tracebacks": tracebacks,
        "warning_error_events": events,
        "first_warnings_errors": notable,
    }


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); values sorted."""
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def stats_ms(values: Iterable[float]) -> dict[str, Any]:
    v = sorted(values)
    if not v:
        return {"count": 0}
    return {
        "count": len(v),
        "min": round(v[0], 2),
        "p50": round(percentile(v, 50), 2),
        "p90": round(percentile(v, 90), 2),
        "p99": round(percentile(v, 99), 2),
        "max": round(v[-1], 2),
        "mean": round(sum(v) / len(v), 2),
    }


def write_result(name: str, stamp: str, result: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def machine_busy_percent(seconds: float = 2.0) -> float:
    """How busy the whole machine is (100 = one core), measured over a few seconds."""
    tick = os.sysconf("SC_CLK_TCK")

    def busy() -> float:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return (sum(ticks) - ticks[3] - ticks[4] - ticks[7]) / tick

    b0, t0 = busy(), time.monotonic()
    time.sleep(seconds)
    return round((busy() - b0) / (time.monotonic() - t0) * 100, 1)


def wait_for_quiet(max_wait: float, threshold: float = 25.0) -> dict[str, Any]:
    """Wait up to max_wait seconds for other processes to leave the machine mostly idle
    (the machine is shared); return what was seen, to be stored with the results."""
    start = time.monotonic()
    seen = machine_busy_percent()
    while seen > threshold and time.monotonic() - start < max_wait:
        print(f"machine busy ({seen}% of one core); waiting for it to quiet down ...", flush=True)
        time.sleep(3)
        seen = machine_busy_percent()
    return {
        "busy_percent_before_start": seen,
        "waited_s": round(time.monotonic() - start, 1),
        "quiet": seen <= threshold,
    }


def git_commit(rev: str) -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    """Where and on what code the benchmark ran (the package may have uncommitted edits)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
            )
        except OSError:
            return ""
        return out.stdout.strip()

    dirty = git("status", "--porcelain", "--", "incident", "migrations").splitlines()
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "git_head": git("rev-parse", "--short", "HEAD"),
        "package_files_uncommitted": len(dirty),
    }


def redact_url(url: str) -> str:
    """Hide a password in a database URL before it goes into a results file."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


class CpuSampler(threading.Thread):
    """Samples CPU time every interval: the server process (all its threads, from /proc),
    this benchmark process, and the whole machine (/proc/stat), to tell apart the server's
    own load from other processes competing for the same cores."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        # (epoch s, server CPU s, this process's CPU s, machine busy CPU s)
        self.samples: list[tuple[float, float, float, float]] = []
        self._halt = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")

    def read(self) -> float | None:
        try:
            raw = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = raw.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._tick

    def machine_busy(self) -> float:
        try:
            first = Path("/proc/stat").read_text().splitlines()[0].split()
        except OSError:
            return math.nan
        ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
        return (sum(ticks) - ticks[3] - ticks[4] - ticks[7]) / self._tick

    def run(self) -> None:
        while not self._halt.is_set():
            cpu = self.read()
            if cpu is None:
                return
            self.samples.append((time.time(), cpu, time.process_time(), self.machine_busy()))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(2)

    def _window(
        self, start: float, end: float
    ) -> tuple[tuple[float, float, float, float], tuple[float, float, float, float]] | None:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return inside[0], inside[-1]

    def percent(self, start: float, end: float) -> float | None:
        """The server's mean CPU % (100 = one core) between two epoch times."""
        found = self._window(start, end)
        if found is None:
            return None
        a, b = found
        return round((b[1] - a[1]) / (b[0] - a[0]) * 100, 1)

    def others_percent(self, start: float, end: float) -> float | None:
        """CPU % used by every other process (not the server, not this benchmark)."""
        found = self._window(start, end)
        if found is None:
            return None
        a, b = found
        used = (b[3] - a[3]) - (b[1] - a[1]) - (b[2] - a[2])
        return round(max(used, 0.0) / (b[0] - a[0]) * 100, 1)
