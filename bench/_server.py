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
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
INCIDENT = BIN / "incident"
RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def bench_env(database_url: str, playbooks_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for every `incident` command: no INCIDENT_* leaks from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env.update(
        INCIDENT_DATABASE_URL=database_url,
        INCIDENT_PLAYBOOKS_DIR=str(playbooks_dir),
        INCIDENT_DEMO_ROSTER=str(REPO / "incident" / "demo" / "roster.yaml"),
        INCIDENT_LOG_FORMAT="json",  # so that the log can be counted by level afterwards
        INCIDENT_LOG_LEVEL="INFO",
        INCIDENT_EMBEDDED_WORKER="true",
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


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }


def redact_url(url: str) -> str:
    """Hide a password in a database URL before it goes into a results file."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
