"""Paging fan-out: one stage pages a department of 200 people; time to the last delivery.

    .venv/bin/python bench/paging_fanout.py --peers-python $VENV/bin/python \
        [--people 200] [--runs 10] [--delays 0,100] [--commit HEAD] [--keep]

Starts the bench-peers uvicorn sink (instant, and answering after --delays ms) and the
production worker, `incident worker`, as a subprocess against a SQLite file (SystemClock,
`Sender(ctx.send_policy())`, default settings). For each run, the bench process loads a
roster in which every one of --people people is on duty with one json:// contact at the sink
(fresh addresses each run, so the flood limit never holds a page back; --same-addresses
reuses them with the flood limit raised instead), declares an incident
of a playbook whose `declared` stage pages the department, and waits until every delivery is
recorded. Runs alternate between the receivers; each run is a fresh incident in the same
database.

Measured per run, from the database: `stage:fired` event's `at` -> max(deliveries.finished_at)
(finished_at is the worker's clock when it starts the transaction recording the batch), plus
a breakdown: fire handler (its `stage_fired` log line), first/last attempt start. The sink
confirms that every message arrived exactly once. Targets (issue #3): p50/p99 < 0.5 s with
the instant receiver, < 1 s at 100 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REPO,
    git_commit,
    log_summary,
    machine,
    source_tree,
    stats_ms,
    utc_stamp,
    write_result,
)
from paging_common import (
    Bench,
    OthersCpu,
    Sink,
    WorkerProc,
    apply_roster,
    cpu_seconds,
    declare,
    exactly_once,
    load_catalog,
    parse_db_time,
    peak_rss_mb,
    peers_python,
    roster_doc,
    wait_quiet,
)

NAME = "paging_fanout"
TARGET_MS = {0: 500.0, 100: 1000.0}


def wait_recorded(engine: Any, incident_id: str, n: int, timeout: float) -> tuple[bool, float]:
    from sqlalchemy import text

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            done = conn.execute(
                text(
                    "SELECT count(*) FROM deliveries WHERE incident_id = :i"
                    " AND status IN ('delivered', 'failed')"
                ),
                {"i": incident_id},
            ).scalar_one()
        if done >= n:
            return True, time.time()
        time.sleep(0.02)
    return False, time.time()


def fire_logged(log_path: Path, incident_id: str) -> datetime | None:
    for line in log_path.read_text(errors="replace").splitlines():
        if '"stage_fired"' in line and incident_id in line:
            rec = json.loads(line)
            return datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00"))
    return None


def measure(engine: Any, incident_id: str) -> dict[str, Any]:
    from sqlalchemy import text

    with engine.connect() as conn:
        fired = conn.execute(
            text("SELECT at FROM timeline_events WHERE incident_id = :i AND kind = 'stage:fired'"),
            {"i": incident_id},
        ).scalar_one()
        declared = conn.execute(
            text("SELECT declared_at FROM incidents WHERE id = :i"), {"i": incident_id}
        ).scalar_one()
        d = conn.execute(
            text(
                "SELECT count(*) AS n, sum(status = 'delivered') AS delivered,"
                " sum(attempts) AS attempts, min(created_at) AS created,"
                " min(finished_at) AS first_done, max(finished_at) AS last_done,"
                " count(DISTINCT finished_at) AS batches"
                " FROM deliveries WHERE incident_id = :i"
            ),
            {"i": incident_id},
        ).one()
        a = conn.execute(
            text(
                "SELECT min(a.started_at) AS first, max(a.started_at) AS last,"
                " avg(a.duration_ms) AS mean_ms, max(a.duration_ms) AS max_ms"
                " FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
                " WHERE d.incident_id = :i"
            ),
            {"i": incident_id},
        ).one()
    at = parse_db_time(fired)

    def ms(x: Any) -> float | None:
        return None if x is None else round((parse_db_time(x) - at).total_seconds() * 1000, 1)

    return {
        "deliveries": d.n,
        "delivered": int(d.delivered or 0),
        "attempts": int(d.attempts or 0),
        "record_batches": d.batches,
        "declared_to_fired_ms": round((at - parse_db_time(declared)).total_seconds() * 1000, 1),
        "fired_to_first_attempt_ms": ms(a.first),
        "fired_to_last_attempt_start_ms": ms(a.last),
        "fired_to_first_recorded_ms": ms(d.first_done),
        "fired_to_last_recorded_ms": ms(d.last_done),
        "attempt_duration_ms": {"mean": round(a.mean_ms or 0, 1), "max": a.max_ms},
        "_fired_at": at,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--runs", type=int, default=10, help="runs per receiver")
    parser.add_argument("--delays", default="0,100", help="receiver delays in ms, comma-separated")
    parser.add_argument("--peers-python", default=None, help="the bench-peers venv's python")
    parser.add_argument("--run-timeout", type=float, default=60.0, help="give up a run after")
    parser.add_argument("--commit", default=None, help="benchmark this commit (git archive)")
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=25.0,
        help="before each run, wait for a second in which other processes use less CPU (%%)",
    )
    parser.add_argument("--quiet-max-wait", type=float, default=90.0, help="... at most this long")
    parser.add_argument(
        "--same-addresses",
        action="store_true",
        help="page the same 200 addresses every run (warm apprise-URL cache in the Sender);"
        " sets INCIDENT_PAGE_FLOOD_LIMIT=1000000 so that the flood limit never holds them",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, logs)")
    args = parser.parse_args(argv)
    delays = [int(x) for x in args.delays.split(",")]
    python = peers_python(args.peers_python)

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-fanout-"))
    src = source_tree(args.commit, tmp)
    if src != REPO:
        sys.path.insert(0, str(src))
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    from sqlalchemy import create_engine

    from incident.logs import configure_logging

    configure_logging("console", "WARNING")  # the bench process's own package logs
    extra = {"INCIDENT_PAGE_FLOOD_LIMIT": "1000000"} if args.same_addresses else {}
    bench = Bench.prepare(tmp, src, **extra)
    sink = Sink(python, tmp / "sink.log")
    worker = WorkerProc(tmp, bench.env, tmp / "worker.log")
    db = bench.database()
    poll = create_engine(bench.db_url)  # plain reads (WAL): never takes the write lock
    runs: list[dict[str, Any]] = []
    ok = False
    try:
        sink.start()
        apply_roster(db, roster_doc(args.people, sink.base, "warmup", 0))
        catalog = load_catalog(bench.settings(), db)
        worker.start()
        for run in range(args.runs):
            for delay in delays if run % 2 == 0 else list(reversed(delays)):
                tag = f"d{delay}" if args.same_addresses else f"d{delay}r{run}"
                apply_roster(db, roster_doc(args.people, sink.base, tag, delay))
                sink.reset()
                sink_pids = (sink.proc.pid if sink.proc else None, sink.server_pid())
                quiet = wait_quiet(args.quiet_below, args.quiet_max_wait, worker.pid, *sink_pids)
                cpu0 = cpu_seconds(worker.pid)
                others = OthersCpu(worker.pid, *sink_pids)
                incident_id = declare(db, catalog, f"Bench fanout {tag}")
                done, seen = wait_recorded(poll, incident_id, args.people, args.run_timeout)
                cpu1 = cpu_seconds(worker.pid)
                others_pct = others.percent()
                time.sleep(0.05)
                got = sink.stats()
                row = measure(poll, incident_id)
                logged = fire_logged(worker.log_path, incident_id)
                fired_at = row.pop("_fired_at")
                row.update(
                    run=run,
                    delay_ms=delay,
                    incident=incident_id,
                    completed=done,
                    fired_to_all_committed_ms=round((seen - fired_at.timestamp()) * 1000, 1),
                    fire_handler_ms=round((logged - fired_at).total_seconds() * 1000, 1)
                    if logged
                    else None,
                    other_processes_cpu_pct=others_pct,
                    **quiet,
                    worker_cpu_s=round(cpu1 - cpu0, 3) if cpu0 is not None and cpu1 else None,
                    sink=got,
                    exactly_once=exactly_once(got, args.people) and row["delivered"] == args.people,
                )
                runs.append(row)
                print(
                    f"run {run} receiver {delay:>3} ms: fired -> last recorded"
                    f" {row['fired_to_last_recorded_ms']} ms (seen committed"
                    f" {row['fired_to_all_committed_ms']} ms; fire handler"
                    f" {row['fire_handler_ms']} ms, first attempt"
                    f" +{row['fired_to_first_attempt_ms']} ms); sink {got};"
                    f" exactly once: {row['exactly_once']}",
                    flush=True,
                )
        rss = peak_rss_mb(worker.pid) if worker.pid else None
        ok = True
    finally:
        worker.stop()
        sink.stop()
        log = log_summary(worker.log_path)
        if not ok:
            print(f"worker log tail:\n{worker.tail()}", file=sys.stderr)
            print(f"kept {tmp}", file=sys.stderr)
    db.dispose()
    poll.dispose()

    by_delay: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_delay[r["delay_ms"]].append(r)
    summary: dict[str, Any] = {}
    for delay, rs in sorted(by_delay.items()):
        summary[f"{delay}ms"] = {
            "fired_to_last_recorded_ms": stats_ms(r["fired_to_last_recorded_ms"] for r in rs),
            "fired_to_all_committed_ms": stats_ms(r["fired_to_all_committed_ms"] for r in rs),
            "fire_handler_ms": stats_ms(r["fire_handler_ms"] for r in rs if r["fire_handler_ms"]),
            "fired_to_first_attempt_ms": stats_ms(r["fired_to_first_attempt_ms"] for r in rs),
            "fired_to_last_attempt_start_ms": stats_ms(
                r["fired_to_last_attempt_start_ms"] for r in rs
            ),
            "declared_to_fired_ms": stats_ms(r["declared_to_fired_ms"] for r in rs),
            "worker_cpu_s": stats_ms(r["worker_cpu_s"] for r in rs if r["worker_cpu_s"]),
            "other_processes_cpu_pct": stats_ms(r["other_processes_cpu_pct"] for r in rs),
            "record_batches": stats_ms(r["record_batches"] for r in rs),
            "all_exactly_once": all(r["exactly_once"] for r in rs),
            "target_ms": TARGET_MS.get(delay),
        }
    result = {
        "benchmark": NAME,
        "at": stamp,
        "backend": "sqlite",
        "worker": "subprocess `incident worker` (SystemClock, Sender(ctx.send_policy()), defaults)",
        "source": source,
        "people": args.people,
        "addresses": "same every run (flood limit raised)"
        if args.same_addresses
        else "fresh every run",
        "runs_per_receiver": args.runs,
        "summary": summary,
        "runs": runs,
        "worker_peak_rss_mb": rss,
        "worker_exit_code": worker.exit_code,
        "worker_log": log,
        "machine": machine(),
        "target": "fired -> last recorded: < 500 ms instant, < 1000 ms at 100 ms",
    }
    path = write_result(NAME, stamp, result)
    print(
        f"\npaging fan-out ({source}, sqlite, subprocess `incident worker`):"
        f" 1 stage pages {args.people} people, {args.runs} runs per receiver"
    )
    print(
        "  stage:fired `at` -> max(deliveries.finished_at), ms; then -> last outcome seen"
        " committed (polled every 20 ms)"
    )
    print(
        f"  {'receiver':<10}{'p50':>8}{'p99':>8}{'max':>8} |{'p50':>8}{'p99':>8}"
        f"  {'fire handler p50':>17}  {'exactly once':>12}  target"
    )
    for key, s in summary.items():
        t = s["fired_to_last_recorded_ms"]
        c = s["fired_to_all_committed_ms"]
        verdict = "meets" if s["target_ms"] and t["p99"] < s["target_ms"] else "MISSES"
        print(
            f"  {key:<10}{t['p50']:>8}{t['p99']:>8}{t['max']:>8} |{c['p50']:>8}{c['p99']:>8}"
            f"  {s['fire_handler_ms'].get('p50'):>17}  {s['all_exactly_once']!s:>12}"
            f"  p99 < {s['target_ms']:g} ms: {verdict}"
        )
    for key, s in summary.items():
        print(
            f"  {key}: fire handler p50 {s['fire_handler_ms'].get('p50')} ms, first attempt"
            f" +{s['fired_to_first_attempt_ms'].get('p50')} ms, last attempt start"
            f" +{s['fired_to_last_attempt_start_ms'].get('p50')} ms (p50); worker CPU"
            f" {s['worker_cpu_s'].get('p50')} s/run; other processes"
            f" {s['other_processes_cpu_pct'].get('p50')}% CPU (p50, 100 = one core)"
        )
    print(
        f"  worker peak RSS {rss} MB; log {log.get('lines_by_level')},"
        f" warnings/errors {log.get('warning_error_events') or 'none'}"
    )
    print(f"  results: {path.relative_to(REPO)}")
    if args.keep:
        print(f"  kept {tmp}")
    elif ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
