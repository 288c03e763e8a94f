"""Broadcast throughput: 10,000 passengers, durable per-passenger status, against apprise.

    .venv/bin/python bench/passengers_broadcast.py --peers-python $VENV/bin/python \
        [--n 10000] [--delay-ms 100] [--reps 3] [--max-seconds 180] [--commit HEAD] [--keep]

One bench-peers uvicorn sink (shared/bench-peers) for everything: it is the SMS gateway,
``INCIDENT_SMS_GATEWAY=json://127.0.0.1:PORT/notify/bc?:to={phone}`` (and
``.../notify/delay/bc/<ms>?:to={phone}`` for the slow receiver). The sink counts messages by
the JSON ``title``, which for a broadcast is its per-message reference ``<broadcast>#<n>``.

Each repetition runs, in an order that rotates between repetitions:

* ours, instant receiver: the bench process (not timed) imports a manifest of N passengers,
  each with its own phone number, into a fresh group (the same code path as an upload) and
  starts a broadcast to it (one small transaction: the broadcast row and its first
  ``broadcast.prepare`` job). Then `incident worker` (a fresh subprocess, production
  defaults) is started and timed from its `worker_started` log line to this process seeing
  every delivery of the broadcast recorded. Inside that time the worker prepares the
  recipients and deliveries (1,000 per transaction: decrypt each passenger, seal its
  address), opens each sealed address just before sending, sends, and records every attempt
  and status. Messages/s = N / that time.
* apprise b' (peers.py --mode apprise-reuse --inline), same N, same sink, instant.
* ours against the receiver answering after --delay-ms.
* apprise c'i (peers.py --mode apprise-threads --inflight 100 --inline), same N, delayed.

The sink confirms every message of every run arrived exactly once. Ratios ours/apprise are
taken per repetition, then the median. Target (issue #5): >= 1.5x in both cases. Peak memory
is the worker's VmHWM (and the peers' ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REPO,
    bench_env,
    git_commit,
    log_summary,
    machine,
    run_cli,
    source_tree,
    utc_stamp,
    write_result,
)
from paging_common import (
    OthersCpu,
    Sink,
    WorkerProc,
    cpu_seconds,
    exactly_once,
    parse_db_time,
    peak_rss_mb,
    peers_python,
    wait_quiet,
)
from paging_throughput import PEER_DELAY, PEER_INSTANT, peer

NAME = "passengers_broadcast"
PLAYBOOK_ID = "bench-broadcast"
PLAYBOOK = f"""\
# Bench only: an incident to hang passenger groups on; nothing fires by itself.
id: {PLAYBOOK_ID}
version: 1
title: {{zh: 广播基准, en: Broadcast benchmark}}
kind: bench
inputs:
  station: {{type: str, required: true, title: {{zh: 车站, en: Station}}}}
stages:
  - id: note
    when: manual
    actions:
      - task: {{department: bench, title: {{zh: 记录, en: Note}}, due: 1h}}
"""
TEXTS = {
    "zh": "受设备故障影响，G1234次列车预计晚点90分钟。您可免费退票或改签，详询12306。",
    "en": "G1234 is about 90 minutes late (equipment failure). Free refunds or changes: 12306.",
}


class Rig:
    """A temp dir with a migrated SQLite database, the bench playbook and an incident."""

    def __init__(self, workdir: Path, src: Path, data_key: str) -> None:
        playbooks = workdir / "playbooks"
        playbooks.mkdir()
        (playbooks / f"{PLAYBOOK_ID}.yaml").write_text(PLAYBOOK, encoding="utf-8")
        self.workdir = workdir
        self.db_url = f"sqlite:///{workdir / 'incident.db'}"
        self.env = bench_env(
            self.db_url,
            playbooks,
            src,
            INCIDENT_EMBEDDED_WORKER="false",
            INCIDENT_DATA_KEYS=data_key,
        )
        run_cli(["db", "upgrade"], cwd=workdir, env=self.env)
        from incident.db import Database
        from incident.playbook import RosterRefs
        from incident.roster_file import DepartmentDoc, RosterDoc

        self.db = Database.from_url(self.db_url)
        from incident import roster

        doc = RosterDoc(
            source="bench.yaml",
            timezone="Asia/Shanghai",
            departments=(DepartmentDoc("bench", "基准组", "Bench", None, ("on_duty",)),),
            people=(),
            rota=(),
            overrides=(),
            escalation_default=("on_duty",),
        )
        with self.db.transaction() as session:
            roster.apply_roster(doc, session=session)
        from incident.catalog import Catalog

        self.catalog = Catalog.from_paths(
            [playbooks], RosterRefs(frozenset({"bench"}), frozenset(), frozenset())
        )
        self.settings = self._settings()
        self.incident_id = self._declare()

    def _settings(self) -> Any:
        from incident.settings import load_settings

        return load_settings(self.env)

    def _declare(self) -> str:
        from incident import response
        from incident.clock import SystemClock

        with self.db.transaction() as session:
            return str(
                response.declare(
                    session=session,
                    now=SystemClock().now(),
                    catalog=self.catalog,
                    playbook_id=PLAYBOOK_ID,
                    severity="III",
                    title="Bench broadcast",
                    facts={"station": "Langfang"},
                    actor="bench",
                ).id
            )

    def group_with_passengers(self, n: int, run: int) -> str:
        """A fresh group whose manifest has n passengers, each with their own number."""
        from incident.clock import SystemClock
        from incident.passengers import Vault, groups, manifests
        from incident.response import get_incident

        now = SystemClock().now()
        with self.db.transaction() as session:
            incident = get_incident(self.incident_id, session=session)
            group = groups.open_group(
                incident,
                {"train": "G1234", "station": "Langfang", "count": n},
                session=session,
                now=now,
                actor="bench",
            )
            upload = manifests.begin_upload(group, session=session, now=now, actor="bench")
            group_id, upload_id = group.id, upload.id
        vault = Vault.from_settings(self.settings)
        reader = manifests.ManifestReader()
        lines = ["name,phone,seat,coach,language"]
        for i in range(n):
            lang = "en" if i % 5 == 0 else "zh"
            lines.append(
                f"旅客{i},1{39 - run % 3}{run % 100:02d}{i:06d},{i % 100}A,{i % 16},{lang}"
            )
        chunk = ("\n".join(lines) + "\n").encode()
        batch: list[Any] = []
        for row in reader.rows([chunk]):
            batch.append(row)
            if len(batch) >= manifests.BATCH_ROWS:
                self._stage(upload_id, group_id, batch, vault, reader.report)
        self._stage(upload_id, group_id, batch, vault, reader.report)
        with self.db.transaction() as session:
            manifests.complete_upload(
                upload_id, reader.report, session=session, now=SystemClock().now(), actor="bench"
            )
        if reader.report.rows_accepted != n:
            raise RuntimeError(f"manifest: {reader.report.rows_accepted} of {n} rows accepted")
        return group_id

    def _stage(
        self, upload_id: str, group_id: str, batch: list[Any], vault: Any, report: Any
    ) -> None:
        from incident.passengers import manifests

        sealed = manifests.seal_rows(batch, vault, upload_id, group_id)
        with self.db.transaction() as session:
            manifests.stage_batch(upload_id, sealed, report, session=session)
        batch.clear()

    def start_broadcast(self, group_id: str, origin: str) -> str:
        from incident.clock import SystemClock
        from incident.passengers import broadcasts
        from incident.response import get_incident

        with self.db.transaction() as session:
            incident = get_incident(self.incident_id, session=session)
            return str(
                broadcasts.start(
                    incident,
                    group_ids=[group_id],
                    texts=TEXTS,
                    origin=origin,
                    session=session,
                    now=SystemClock().now(),
                    actor="bench",
                ).id
            )


def gateway(sink: Sink, delay: int) -> str:
    host = sink.base.split("://", 1)[1]
    path = f"/notify/delay/bc/{delay}" if delay else "/notify/bc"
    return f"json://{host}{path}?:to={{phone}}"


def progress(engine: Any, broadcast_id: str) -> tuple[int, int, int]:
    """(recipients, finished deliveries, delivered) of a broadcast."""
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) AS n,"
                " coalesce(sum(d.status IN ('delivered', 'failed')), 0) AS done,"
                " coalesce(sum(d.status = 'delivered'), 0) AS ok"
                " FROM broadcast_recipients r JOIN deliveries d ON d.id = r.delivery_id"
                " WHERE r.broadcast_id = :b"
            ),
            {"b": broadcast_id},
        ).one()
    return int(row.n), int(row.done), int(row.ok)


def ours(
    rig: Rig, poll: Any, sink: Sink, n: int, delay: int, run: int, timeout: float
) -> dict[str, Any]:
    from sqlalchemy import text

    t0 = time.perf_counter()
    group_id = rig.group_with_passengers(n, run)
    broadcast_id = rig.start_broadcast(group_id, f"bench:{run}:{delay}")
    create_s = time.perf_counter() - t0
    sink.reset()
    env = {**rig.env, "INCIDENT_SMS_GATEWAY": gateway(sink, delay)}
    worker = WorkerProc(rig.workdir, env, rig.workdir / "worker.log")
    done = False
    try:
        worker.start()
        others = OthersCpu(worker.pid, sink.proc.pid if sink.proc else None, sink.server_pid())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            total, finished, _ = progress(poll, broadcast_id)
            if total == n and finished >= n:
                done = True
                break
            time.sleep(0.02)
        seen = time.time()
        others_pct = others.percent()
        cpu_end = cpu_seconds(worker.pid)
        rss = peak_rss_mb(worker.pid) if worker.pid else None
    finally:
        worker.stop()
    time.sleep(0.05)
    got = sink.stats()
    total, finished, delivered = progress(poll, broadcast_id)
    with poll.connect() as conn:
        d = conn.execute(
            text(
                "SELECT max(d.finished_at) AS last, min(a.started_at) AS first,"
                " count(a.id) AS attempts FROM broadcast_recipients r"
                " JOIN deliveries d ON d.id = r.delivery_id"
                " LEFT JOIN delivery_attempts a ON a.delivery_id = d.id"
                " WHERE r.broadcast_id = :b"
            ),
            {"b": broadcast_id},
        ).one()
        prepared = conn.execute(
            text("SELECT prepared_at FROM broadcasts WHERE id = :b"), {"b": broadcast_id}
        ).scalar_one()
    assert worker.started_at is not None
    wall = seen - worker.started_at.timestamp()
    last = parse_db_time(d.last) if d.last else None
    return {
        "who": "ours",
        "delay_ms": delay,
        "n": n,
        "broadcast": broadcast_id,
        "create_s": round(create_s, 2),
        "completed": done,
        "recipients": total,
        "delivered": delivered,
        "attempt_rows": d.attempts,
        "wall_s": round(wall, 3),
        "msgs_per_s": round(delivered / wall, 1) if wall > 0 else 0.0,
        "prepared_after_s": round((parse_db_time(prepared) - worker.started_at).total_seconds(), 3)
        if prepared
        else None,
        "first_attempt_after_s": round(
            (parse_db_time(d.first) - worker.started_at).total_seconds(), 3
        )
        if d.first
        else None,
        "msgs_per_s_to_max_finished_at": round(
            delivered / (last - worker.started_at).total_seconds(), 1
        )
        if last
        else None,
        "cpu_us_per_msg": round((cpu_end - worker.cpu_at_start) * 1e6 / n, 0)
        if cpu_end is not None and worker.cpu_at_start is not None
        else None,
        "peak_rss_mb": rss,
        "other_processes_cpu_pct": others_pct,
        "sink": got,
        "verified": exactly_once(got, n) and delivered == n and d.attempts == n,
        "worker_exit_code": worker.exit_code,
    }


def med(xs: list[Any]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(statistics.median(vals), 2) if vals else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--delay-ms", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=180.0, help="bound for each run")
    parser.add_argument("--peers-python", default=None, help="the bench-peers venv's python")
    parser.add_argument("--commit", default=None, help="benchmark this commit (git archive)")
    parser.add_argument("--quiet-below", type=float, default=25.0)
    parser.add_argument("--quiet-max-wait", type=float, default=90.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, logs)")
    args = parser.parse_args(argv)
    python = peers_python(args.peers_python)
    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-broadcast-"))
    src = source_tree(args.commit, tmp)
    if src != REPO:
        sys.path.insert(0, str(src))
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    from cryptography.fernet import Fernet
    from sqlalchemy import create_engine

    from incident.logs import configure_logging

    configure_logging("console", "WARNING")
    rig = Rig(tmp, src, Fernet.generate_key().decode())
    poll = create_engine(rig.db_url)
    sink = Sink(python, tmp / "sink.log")
    plan: list[tuple[str, Any, int]] = [
        ("ours", None, 0),
        ("peer", PEER_INSTANT, 0),
        ("ours", None, args.delay_ms),
        ("peer", PEER_DELAY, args.delay_ms),
    ]
    rows: list[dict[str, Any]] = []
    ok = False
    started = datetime.now(UTC)
    run = 0
    try:
        sink.start()
        for rep in range(args.reps):
            rot = rep % len(plan)
            for who, what, delay in plan[rot:] + plan[:rot]:
                sink_pids = (sink.proc.pid if sink.proc else None, sink.server_pid())
                quiet = wait_quiet(args.quiet_below, args.quiet_max_wait, *sink_pids)
                if who == "ours":
                    run += 1
                    row = ours(rig, poll, sink, args.n, delay, run, args.max_seconds)
                    label = "ours"
                else:
                    row = peer(python, sink, what[0], what[1], args.n, delay, args.max_seconds)
                    label = f"apprise {what[0]}"
                row.update(rep=rep, **quiet)
                rows.append(row)
                print(
                    f"[rep {rep}] {label:<12} {delay:>3} ms receiver, N={args.n}:"
                    f" {row['msgs_per_s']:,.0f} msg/s, cpu {row['cpu_us_per_msg']} us/msg,"
                    f" peak RSS {row['peak_rss_mb']} MB, verified={row['verified']}",
                    flush=True,
                )
        ok = True
    finally:
        sink.stop()
        log = log_summary(tmp / "worker.log")
        if not ok:
            print(f"kept {tmp}", file=sys.stderr)
    rig.db.dispose()
    poll.dispose()

    summary: dict[str, Any] = {}
    for delay, label in ((0, PEER_INSTANT[0]), (args.delay_ms, PEER_DELAY[0])):
        apr = {r["rep"]: r for r in rows if r["who"] == label and r["delay_ms"] == delay}
        mine = [r for r in rows if r["who"] == "ours" and r["delay_ms"] == delay]
        ratios = [
            r["msgs_per_s"] / apr[r["rep"]]["msgs_per_s"]
            for r in mine
            if r["rep"] in apr and apr[r["rep"]]["msgs_per_s"]
        ]
        summary[f"{delay}ms"] = {
            f"apprise {label} msgs/s": med([r["msgs_per_s"] for r in apr.values()]),
            f"apprise {label} peak_rss_mb": med([r["peak_rss_mb"] for r in apr.values()]),
            f"apprise {label} verified": all(r["verified"] for r in apr.values()),
            "ours msgs/s": med([r["msgs_per_s"] for r in mine]),
            "ours msgs/s range": [
                min(r["msgs_per_s"] for r in mine),
                max(r["msgs_per_s"] for r in mine),
            ]
            if mine
            else None,
            "ours cpu_us_per_msg": med([r["cpu_us_per_msg"] for r in mine]),
            "ours peak_rss_mb": med([r["peak_rss_mb"] for r in mine]),
            "ours prepared_after_s": med([r["prepared_after_s"] for r in mine]),
            "ours verified": all(r["verified"] for r in mine),
            "other_processes_cpu_pct": med([r["other_processes_cpu_pct"] for r in mine]),
            "ratio_to_apprise": med(ratios),
            "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)] if ratios else None,
            "meets_1_5x": (med(ratios) or 0) >= 1.5,
        }
    result = {
        "benchmark": NAME,
        "at": stamp,
        "started": started.isoformat(timespec="seconds"),
        "backend": "sqlite",
        "worker": "subprocess `incident worker`, fresh per run, production defaults",
        "source": source,
        "n": args.n,
        "delay_ms": args.delay_ms,
        "reps": args.reps,
        "summary": summary,
        "rows": rows,
        "worker_log": log,
        "machine": machine(),
        "target": "ours/apprise >= 1.5 (b' instant, c'i at 100 ms)",
    }
    path = write_result(NAME, stamp, result)
    print(f"\nbroadcast to {args.n} passengers ({source}, sqlite), median of {args.reps} reps:")
    for key, entry in summary.items():
        apprise_rate = next(
            v for k, v in entry.items() if k.startswith("apprise") and k.endswith("msgs/s")
        )
        verdict = "meets" if entry["meets_1_5x"] else "MISSES"
        print(
            f"  receiver {key}: ours {entry['ours msgs/s']} msgs/s"
            f" (range {entry['ours msgs/s range']}), apprise {apprise_rate} msgs/s;"
            f" ratio {entry['ratio_to_apprise']}x (range {entry['ratio_range']}),"
            f" target >= 1.5x: {verdict}; worker cpu {entry['ours cpu_us_per_msg']} us/msg,"
            f" peak RSS {entry['ours peak_rss_mb']} MB, verified {entry['ours verified']}"
        )
    events = log.get("warning_error_events") or "none"
    print(f"  worker log: {log.get('lines_by_level')}, warnings/errors {events}")
    print(f"  results: {path.relative_to(REPO)}")
    if args.keep:
        print(f"  kept {tmp}")
    elif ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
