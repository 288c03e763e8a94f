"""Shared plumbing for the paging benchmarks (bench/paging_fanout.py, bench/paging_throughput.py).

* The receiver is the bench-peers raw-ASGI uvicorn sink (shared/bench-peers/sink_asgi.py),
  started with the bench-peers virtualenv's Python (it needs uvloop and httptools, which the
  repo's venv does not have) and stopped by its PID. It records the JSON body's ``title`` of
  every POST to ``/notify...``; ``/notify/delay/.../<ms>`` answers after <ms> milliseconds.
* Our side is the production worker: a subprocess ``incident worker`` (the repo's venv, or a
  ``git archive`` snapshot through PYTHONPATH) against a SQLite file, stopped by its PID.
* The bench process itself prepares the database (migrate, roster, playbook) and declares
  incidents through the package's own functions, on its own connection to the same file.

A page's subject is the same for every person paged (``[II] title``), so the sink could not
tell the messages apart by ``title``. Every bench contact URL therefore carries apprise's
payload option ``?:message=title``: the JSON body's ``message`` (which holds the person's own
acknowledgement link, unique per recipient) is sent under the key ``title``. apprise's json://
plugin would send the same payload for that URL; the cost is one dict rename per message.

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _server import INCIDENT, bench_env, run_cli  # noqa: E402

PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", "/work/shared/bench-peers"))
HOST = "127.0.0.1"
PLAYBOOK_ID = "bench-paging"
DEPARTMENT = "bench"
PAYLOAD_OPTION = "?:message=title"  # see the module docstring

PLAYBOOK = f"""\
# Bench only: page one department when the incident is declared.
id: {PLAYBOOK_ID}
version: 1
title: {{zh: 呼叫基准, en: Paging benchmark}}
kind: bench
inputs:
  line: {{type: str, required: true, title: {{zh: 线路, en: Line}}}}
stages:
  - id: page-all
    when: declared
    actions:
      - page: {{departments: [{DEPARTMENT}], ack_within: 60m, template: page}}
templates:
  page:
    zh: "【{{{{ severity_zh }}}}】{{{{ title }}}}，请确认：{{{{ ack_url }}}}"
    en: "[Level {{{{ severity }}}}] {{{{ title }}}}. Acknowledge: {{{{ ack_url }}}}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {HOST}:{port} after {timeout}s")


def peers_python(explicit: str | None) -> str:
    """The bench-peers virtualenv's Python (uvicorn+uvloop+httptools, apprise, psutil)."""
    cand = explicit or os.environ.get("BENCH_PEERS_PYTHON")
    if not cand:
        venv = os.environ.get("VENV")
        cand = f"{venv}/bin/python" if venv else None
    if not cand or not Path(cand).exists():
        raise SystemExit(
            "need the bench-peers venv's python: --peers-python PATH or BENCH_PEERS_PYTHON"
            " (see /work/shared/bench-peers/README.md, Setup)"
        )
    return cand


# -- the receiver -------------------------------------------------------------------------
class Sink:
    """The bench-peers uvicorn sink: started by `python sinks.py uvicorn PORT`, stopped by PID."""

    def __init__(self, python: str, log_path: Path) -> None:
        self.python = python
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        sys.path.insert(0, str(PEERS_DIR))
        from sinks import UvicornSink  # stdlib only: reads /stats, POSTs /reset

        self._client = UvicornSink(self.port)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "sinks.py", "uvicorn", str(self.port)],
                cwd=PEERS_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_port(self.port)

    def stats(self) -> dict[str, int]:
        return dict(self._client.stats())

    def reset(self) -> None:
        self._client.reset()

    def server_pid(self) -> int | None:
        """The uvicorn process (child of sinks.py), for its CPU time."""
        if self.proc is None:
            return None
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # sinks.py stops its uvicorn by PID, then exits
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.proc = None


def exactly_once(stats: Mapping[str, int], expected: int) -> bool:
    return (
        stats.get("received") == expected
        and stats.get("unique") == expected
        and stats.get("duplicates") == 0
        and stats.get("bad") == 0
    )


# -- process measurements -------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU seconds of one process (all its threads)."""
    if pid is None:
        return None
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, /proc/stat)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK


class OthersCpu:
    """CPU used by processes other than the given ones over a window (noise on a shared box)."""

    def __init__(self, *pids: int | None) -> None:
        self.pids = [p for p in pids if p is not None]
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_seconds()
        self.own0 = self._own()

    def _own(self) -> float:
        return sum(cpu_seconds(p) or 0.0 for p in self.pids) + time.process_time()

    def percent(self) -> float:
        """Mean CPU % (100 = one core) of everything else since construction."""
        dt = time.monotonic() - self.t0
        used = (machine_busy_seconds() - self.busy0) - (self._own() - self.own0)
        return round(max(used, 0.0) / dt * 100, 1) if dt > 0 else 0.0


def wait_quiet(below_pct: float, max_wait: float, *pids: int | None) -> dict[str, float]:
    """Wait (at most max_wait s) for a 1 s window in which other processes use < below_pct CPU.

    The machine is shared: other sessions run test suites and benchmarks on the same 2 cores.
    Returns the last window's figure and how long it waited (a run starts anyway after
    max_wait; the figure is recorded with the run)."""
    t0 = time.monotonic()
    while True:
        probe = OthersCpu(*pids)
        time.sleep(1.0)
        pct = probe.percent()
        waited = time.monotonic() - t0
        if pct < below_pct or waited >= max_wait:
            return {"others_pct_before": pct, "waited_s": round(waited, 1)}


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a running process, in MB (MiB, as ru_maxrss/1024)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# -- our worker -----------------------------------------------------------------------------
class WorkerProc:
    """`incident worker` as a subprocess, exactly as it is run in production; stopped by PID."""

    def __init__(self, workdir: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at: datetime | None = None  # the `worker_started` log line's timestamp
        self.cpu_at_start: float | None = None
        self.exit_code: int | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self, argv: Iterable[str] | None = None, ready_timeout: float = 60) -> None:
        """Start it and wait for `worker_started` (imports, catalog and Sender done)."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cmd = list(argv) if argv is not None else [str(INCIDENT), "worker"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.proc.returncode}:\n{self.tail()}")
            with self.log_path.open("rb") as f:
                f.seek(offset)
                chunk = f.read().decode(errors="replace")
            for line in chunk.splitlines():
                if '"worker_started"' in line:
                    self.cpu_at_start = cpu_seconds(self.proc.pid)
                    rec = json.loads(line)
                    self.started_at = datetime.fromisoformat(
                        rec["timestamp"].replace("Z", "+00:00")
                    )
                    return
            time.sleep(0.005)
        raise RuntimeError(f"no worker_started after {ready_timeout}s:\n{self.tail()}")

    def stop(self, grace: float = 20) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
            except ProcessLookupError:
                pass
        self.exit_code = proc.returncode
        self.proc = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# -- the database -------------------------------------------------------------------------
def parse_db_time(value: Any) -> datetime:
    """Times as the app stores them in SQLite: naive UTC text; return aware UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class Bench:
    """A temp work dir with a migrated SQLite database and the bench playbook."""

    workdir: Path
    src: Path
    env: dict[str, str]
    db_url: str

    @classmethod
    def prepare(cls, workdir: Path, src: Path, **extra_env: str) -> Bench:
        playbooks = workdir / "playbooks"
        playbooks.mkdir(parents=True)
        (playbooks / f"{PLAYBOOK_ID}.yaml").write_text(PLAYBOOK, encoding="utf-8")
        db_url = f"sqlite:///{workdir / 'incident.db'}"
        env = bench_env(db_url, playbooks, src, INCIDENT_EMBEDDED_WORKER="false", **extra_env)
        run_cli(["db", "upgrade"], cwd=workdir, env=env)
        return cls(workdir, src, env, db_url)

    # The package is imported lazily (after the caller put `src` on sys.path).
    def settings(self) -> Any:
        from incident.settings import load_settings

        return load_settings(self.env)

    def database(self) -> Any:
        from incident.db import Database

        return Database.from_url(self.db_url)


def contact_url(sink_base: str, tag: str, person: str, delay_ms: int) -> str:
    host = sink_base.split("://", 1)[1]
    path = f"/notify/delay/{tag}-{person}/{delay_ms}" if delay_ms else f"/notify/{tag}/{person}"
    return f"json://{host}{path}{PAYLOAD_OPTION}"


def roster_doc(n: int, sink_base: str, tag: str, delay_ms: int) -> Any:
    """A department of n people, all on duty around the clock, each with one json:// contact."""
    from incident.roster_file import ContactDoc, DepartmentDoc, PersonDoc, RosterDoc, RotaDoc

    ids = [f"p{i:05d}" for i in range(n)]
    people = tuple(
        PersonDoc(
            id=pid,
            name=f"Person {i}",
            language="zh-CN" if i % 4 else "en",
            department=DEPARTMENT,
            roles=("on_duty_agent",),
            contacts=(ContactDoc(contact_url(sink_base, tag, pid, delay_ms)),),
        )
        for i, pid in enumerate(ids)
    )
    return RosterDoc(
        source="bench-roster.yaml",
        timezone="Asia/Shanghai",
        departments=(DepartmentDoc(DEPARTMENT, "基准组", "Bench", None, ("on_duty",)),),
        people=people,
        rota=(RotaDoc(DEPARTMENT, date(2020, 1, 1), "08:00", 24, (tuple(ids),)),),
        overrides=(),
        escalation_default=("on_duty",),
    )


def apply_roster(db: Any, doc: Any) -> None:
    from incident import roster

    with db.transaction() as session:
        roster.apply_roster(doc, session=session)


def load_catalog(settings: Any, db: Any) -> Any:
    from incident.app import load_catalog as _load

    return _load(settings, db)


def declare(db: Any, catalog: Any, title: str) -> str:
    from incident import response
    from incident.clock import SystemClock

    with db.transaction() as session:
        incident = response.declare(
            session=session,
            now=SystemClock().now(),
            catalog=catalog,
            playbook_id=PLAYBOOK_ID,
            severity="II",
            title=title,
            facts={"line": "G"},
            mode="live",
            actor="bench",
        )
        return str(incident.id)
