"""Durable delivery throughput of the worker, against apprise's fastest modes, same sitting.

    .venv/bin/python bench/paging_throughput.py --peers-python $VENV/bin/python \
        [--n-instant 5000] [--n-delay 3000] [--delay-ms 100] [--reps 3] [--kinds pages]
        [--max-seconds 120] [--commit HEAD] [--keep]

One uvicorn sink (bench-peers) for everything. Each repetition runs, in an order that
rotates between repetitions:

* ours, instant receiver: N (--n-instant) durable deliveries, then `incident worker` (a fresh
  subprocess against the SQLite file, production defaults) is started and timed from its
  `worker_started` log line (imports, catalog, Sender done: setup excluded, as peers.py
  excludes its own) to the last delivery recorded, max(deliveries.finished_at). Every attempt
  is a row in delivery_attempts and every delivery's status is committed. The end is when
  this process sees the last outcome committed (polling every 20 ms); the figure up to
  max(deliveries.finished_at) is reported beside it.
* apprise b' (peers.py --mode apprise-reuse --inline: one Apprise object,
  AppriseAsset(service_timeout=0), sequential notify()), same N, same sink.
* ours against the receiver answering after --delay-ms, N = --n-delay.
* apprise c'i (peers.py --mode apprise-threads --inflight 100 --inline: notify() from 100
  threads, service_timeout=0), same N, the same delayed path.

Each of our runs gets a fresh SQLite file (--reuse-db: one for all, growing by N deliveries
a run: recording a page outcome gets slower as the deliveries table grows, see
bench/paging_record_cost.py).

How the N deliveries are made (--kinds, before the worker starts, not timed):
  pages  a department of N people all on duty (each its own json:// address), an incident
         declared whose first stage pages it; that stage is fired in this process by a
         worker without a sender (one `run_due()`), which queues N page deliveries and their
         `delivery.send` jobs. Recording each then also runs paging.on_delivery_outcome.
  test   N deliveries of purpose "test" made with incident.delivery.create in one
         transaction (distinct addresses); recording skips the paging step.
  test1  the same, all to one address (as the apprise peers send to one URL): the
         Sender parses each distinct apprise URL once (Apprise.instantiate, ~0.4 ms of CPU
         here) and keeps it in an LRU of 5,000, so this shows the cost without parsing.

The sink confirms every message of every run arrived exactly once (peers cut short by
--max-seconds are checked against what they sent). Ratios ours/apprise are taken per
repetition, then the median. Target (issue #3): >= 1.5x in both cases.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REPO,
    git_commit,
    log_summary,
    machine,
    source_tree,
    utc_stamp,
    write_result,
)
from paging_common import (
    PEERS_DIR,
    Bench,
    OthersCpu,
    Sink,
    WorkerProc,
    apply_roster,
    contact_url,
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

NAME = "paging_throughput"
PEER_INSTANT = ("b'", ["--mode", "apprise-reuse", "--inline"])
PEER_DELAY = ("c'i", ["--mode", "apprise-threads", "--inflight", "100", "--inline"])


def max_delivery_id(engine: Any) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM deliveries")).scalar_one())


def create_pages(bench: Bench, db: Any, sink: Sink, n: int, tag: str, delay: int) -> None:
    """Roster of n people on duty; declare; fire the paging stage here (no sender)."""
    from incident.clock import SystemClock
    from incident.handlers import Context
    from incident.worker import Worker

    apply_roster(db, roster_doc(n, sink.base, tag, delay))
    settings = bench.settings()
    catalog = load_catalog(settings, db)
    declare(db, catalog, f"Bench throughput {tag}")
    creator = Worker(db, Context.build(settings, catalog), SystemClock(), sender=None, owner="mk")
    creator.run_due()  # claims the stage.fire job; the N send jobs it queues stay queued


def create_tests(
    db: Any, sink: Sink, n: int, tag: str, delay: int, one_address: bool = False
) -> None:
    """n deliveries of purpose "test" (distinct addresses, or all to one), in one transaction."""
    from incident import delivery
    from incident.clock import SystemClock

    now = SystemClock().now()
    with db.transaction() as session:
        for i in range(n):
            pid = f"p{i:05d}"
            delivery.create(
                session=session,
                now=now,
                purpose="test",
                address=contact_url(sink.base, tag, "all" if one_address else pid, delay),
                subject=f"{tag}-{i}",
                body=f"{tag}-{i}: test message to contact method 1; no action needed.",
                idempotency_key=f"bench:{tag}:{i}",
                person_id=pid,
                contact_position=1,
            )


def wait_done(engine: Any, after_id: int, n: int, timeout: float) -> tuple[bool, float]:
    from sqlalchemy import text

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            done = conn.execute(
                text(
                    "SELECT count(*) FROM deliveries WHERE id > :a"
                    " AND status IN ('delivered', 'failed')"
                ),
                {"a": after_id},
            ).scalar_one()
        if done >= n:
            return True, time.time()
        time.sleep(0.02)
    return False, time.time()


def ours(
    bench: Bench,
    db: Any,
    poll: Any,
    sink: Sink,
    kind: str,
    n: int,
    delay: int,
    tag: str,
    timeout: float,
    log_path: Path,
) -> dict[str, Any]:
    from sqlalchemy import text

    before = max_delivery_id(poll)
    t0 = time.perf_counter()
    if kind == "pages":
        create_pages(bench, db, sink, n, tag, delay)
    else:
        create_tests(db, sink, n, tag, delay, one_address=kind == "test1")
    create_s = time.perf_counter() - t0
    with poll.connect() as conn:
        queued = conn.execute(
            text("SELECT count(*) FROM deliveries WHERE id > :a AND status = 'queued'"),
            {"a": before},
        ).scalar_one()
    if queued != n:
        raise RuntimeError(f"expected {n} queued deliveries, found {queued}")
    sink.reset()
    worker = WorkerProc(bench.workdir, bench.env, log_path)
    try:
        worker.start()
        others = OthersCpu(worker.pid, sink.proc.pid if sink.proc else None, sink.server_pid())
        done, seen = wait_done(poll, before, n, timeout)
        others_pct = others.percent()
        cpu_end = cpu_seconds(worker.pid)
        rss = peak_rss_mb(worker.pid) if worker.pid else None
    finally:
        worker.stop()
    time.sleep(0.05)
    got = sink.stats()
    with poll.connect() as conn:
        d = conn.execute(
            text(
                "SELECT count(*) AS n, sum(status = 'delivered') AS delivered,"
                " sum(attempts) AS attempts, max(finished_at) AS last,"
                " count(DISTINCT finished_at) AS batches FROM deliveries WHERE id > :a"
            ),
            {"a": before},
        ).one()
        rows = conn.execute(
            text(
                "SELECT count(*) AS n, min(started_at) AS first FROM delivery_attempts"
                " WHERE delivery_id > :a"
            ),
            {"a": before},
        ).one()
    assert worker.started_at is not None
    last = parse_db_time(d.last)
    # The end is when this process saw every delivery committed as recorded (polled every
    # 20 ms): finished_at is stamped when the recording transaction *starts*, and a batch of
    # up to 200 page outcomes takes a good part of a second to record.
    wall = seen - worker.started_at.timestamp()
    first_attempt = parse_db_time(rows.first)
    delivered = int(d.delivered or 0)
    return {
        "who": "ours",
        "kind": kind,
        "delay_ms": delay,
        "n": n,
        "create_s": round(create_s, 2),
        "completed": done,
        "delivered": delivered,
        "attempt_rows": rows.n,
        "record_batches": d.batches,
        "wall_s": round(wall, 3),
        "msgs_per_s": round(delivered / wall, 1),
        "msgs_per_s_to_max_finished_at": round(
            delivered / (last - worker.started_at).total_seconds(), 1
        ),
        "start_to_first_attempt_ms": round(
            (first_attempt - worker.started_at).total_seconds() * 1000, 1
        ),
        "msgs_per_s_from_first_attempt": round(
            delivered / (last - first_attempt).total_seconds(), 1
        ),
        "observed_done_after_max_finished_at_ms": round((seen - last.timestamp()) * 1000, 1),
        "deliveries_in_table_before": before,
        "cpu_us_per_msg": round((cpu_end - worker.cpu_at_start) * 1e6 / n, 0)
        if cpu_end is not None and worker.cpu_at_start is not None
        else None,
        "peak_rss_mb": rss,
        "other_processes_cpu_pct": others_pct,
        "sink": got,
        "verified": exactly_once(got, n) and delivered == n and rows.n == n,
        "worker_exit_code": worker.exit_code,
    }


def peer(
    python: str, sink: Sink, label: str, extra: list[str], n: int, delay: int, max_seconds: float
) -> dict[str, Any]:
    path = f"/notify/delay/{delay}" if delay else "/notify"
    cmd = [
        python,
        "peers.py",
        "--url",
        sink.base + path,
        "--n",
        str(n),
        "--max-seconds",
        str(max_seconds),
        *extra,
    ]
    sink.reset()
    cpu0 = cpu_seconds(sink.server_pid())
    others = OthersCpu(sink.proc.pid if sink.proc else None, sink.server_pid())
    r = subprocess.run(
        cmd, capture_output=True, text=True, cwd=PEERS_DIR, timeout=max_seconds + 120, check=False
    )
    cpu1 = cpu_seconds(sink.server_pid())
    others_pct = others.percent()  # includes the peer itself (and its imports): a bound only
    if r.returncode != 0:
        raise RuntimeError(f"peer {label} failed:\n{r.stderr[-2000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    got = sink.stats()
    expected = res["sent"] if res.get("truncated") else n
    res.update(
        who=label,
        machine_cpu_pct_besides_sink=others_pct,
        delay_ms=delay,
        sink=got,
        sink_cpu_us_per_msg=round(1e6 * (cpu1 - cpu0) / res["sent"], 0)
        if res["sent"] and cpu0 is not None and cpu1 is not None
        else None,
        verified=exactly_once(got, expected) and res["ok"] == res["sent"] == expected,
        cmd=" ".join(["python", *cmd[1:]]),
    )
    return res


def med(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 2) if xs else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-instant", type=int, default=5000)
    parser.add_argument("--n-delay", type=int, default=3000)
    parser.add_argument("--delay-ms", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--kinds", default="pages", help="pages,test,test1: see above")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="bound for each run")
    parser.add_argument("--peers-python", default=None, help="the bench-peers venv's python")
    parser.add_argument("--commit", default=None, help="benchmark this commit (git archive)")
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=25.0,
        help="before each run, wait for a second in which other processes use less CPU (%%)",
    )
    parser.add_argument("--quiet-max-wait", type=float, default=90.0, help="... at most this long")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="one database for every run (it grows by N deliveries a run) instead of a fresh"
        " one per run",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, logs)")
    args = parser.parse_args(argv)
    python = peers_python(args.peers_python)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if any(k not in ("pages", "test", "test1") for k in kinds):
        parser.error("--kinds: pages, test and/or test1")

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-throughput-"))
    src = source_tree(args.commit, tmp)
    if src != REPO:
        sys.path.insert(0, str(src))
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    from sqlalchemy import create_engine

    from incident.logs import configure_logging

    configure_logging("console", "WARNING")  # the bench process's own package logs
    bench = Bench.prepare(tmp, src)
    sink = Sink(python, tmp / "sink.log")
    db = bench.database()
    poll = create_engine(bench.db_url)
    rows: list[dict[str, Any]] = []
    ok = False
    plan: list[tuple[str, Any, int, int]] = []
    for kind in kinds:
        plan.append(("ours", kind, args.n_instant, 0))
    plan.append(("peer", PEER_INSTANT, args.n_instant, 0))
    for kind in kinds:
        plan.append(("ours", kind, args.n_delay, args.delay_ms))
    plan.append(("peer", PEER_DELAY, args.n_delay, args.delay_ms))
    started = datetime.now(UTC)
    runs = 0
    try:
        sink.start()
        apply_roster(db, roster_doc(1, sink.base, "init", 0))  # the playbook's department
        for rep in range(args.reps):
            rot = rep % len(plan)
            for who, what, n, delay in plan[rot:] + plan[:rot]:
                sink_pids = (sink.proc.pid if sink.proc else None, sink.server_pid())
                quiet = wait_quiet(args.quiet_below, args.quiet_max_wait, *sink_pids)
                if who == "ours":
                    run_bench, run_db, run_poll = bench, db, poll
                    if not args.reuse_db:  # a fresh database: every run sees the same table sizes
                        runs += 1
                        run_bench = Bench.prepare(tmp / f"run{runs}", src)
                        run_db = run_bench.database()
                        run_poll = create_engine(run_bench.db_url)
                        apply_roster(run_db, roster_doc(1, sink.base, "init", 0))
                    try:
                        row = ours(
                            run_bench,
                            run_db,
                            run_poll,
                            sink,
                            what,
                            n,
                            delay,
                            f"x{rep}{what}{delay}",
                            args.max_seconds,
                            tmp / "worker.log",
                        )
                    finally:
                        if run_bench is not bench:
                            run_db.dispose()
                            run_poll.dispose()
                            shutil.rmtree(run_bench.workdir, ignore_errors=True)
                    label = f"ours ({what})"
                else:
                    row = peer(python, sink, what[0], what[1], n, delay, args.max_seconds)
                    label = f"apprise {what[0]}"
                row["rep"] = rep
                row.update(quiet)
                rows.append(row)
                print(
                    f"[rep {rep}] {label:<14} {delay:>3} ms receiver, N={n}:"
                    f" {row['msgs_per_s']:,.0f} msg/s, cpu {row['cpu_us_per_msg']} us/msg,"
                    f" peak RSS {row['peak_rss_mb']} MB, verified={row['verified']}"
                    + (
                        f", other processes {row['other_processes_cpu_pct']}% CPU"
                        if "other_processes_cpu_pct" in row
                        else ""
                    ),
                    flush=True,
                )
        ok = True
    finally:
        sink.stop()
        log = log_summary(tmp / "worker.log")
        if not ok:
            print(f"kept {tmp}", file=sys.stderr)
    db.dispose()
    poll.dispose()

    summary: dict[str, Any] = {}
    for delay, peer_label in ((0, PEER_INSTANT[0]), (args.delay_ms, PEER_DELAY[0])):
        apr = {r["rep"]: r for r in rows if r["who"] == peer_label and r["delay_ms"] == delay}
        entry: dict[str, Any] = {
            f"apprise {peer_label} msgs/s": med([r["msgs_per_s"] for r in apr.values()]),
            f"apprise {peer_label} cpu_us_per_msg": med(
                [r["cpu_us_per_msg"] for r in apr.values()]
            ),
            f"apprise {peer_label} peak_rss_mb": med([r["peak_rss_mb"] for r in apr.values()]),
            f"apprise {peer_label} verified": all(r["verified"] for r in apr.values()),
            f"apprise {peer_label} truncated": any(r.get("truncated") for r in apr.values()),
        }
        for kind in kinds:
            mine = [
                r
                for r in rows
                if r["who"] == "ours" and r["kind"] == kind and r["delay_ms"] == delay
            ]
            ratios = [
                r["msgs_per_s"] / apr[r["rep"]]["msgs_per_s"]
                for r in mine
                if r["rep"] in apr and apr[r["rep"]]["msgs_per_s"]
            ]
            entry[f"ours ({kind})"] = {
                "msgs_per_s": med([r["msgs_per_s"] for r in mine]),
                "msgs_per_s_range": [
                    min(r["msgs_per_s"] for r in mine),
                    max(r["msgs_per_s"] for r in mine),
                ],
                "msgs_per_s_to_max_finished_at": med(
                    [r["msgs_per_s_to_max_finished_at"] for r in mine]
                ),
                "cpu_us_per_msg": med([r["cpu_us_per_msg"] for r in mine]),
                "peak_rss_mb": med([r["peak_rss_mb"] for r in mine]),
                "other_processes_cpu_pct": med([r["other_processes_cpu_pct"] for r in mine]),
                "create_s": med([r["create_s"] for r in mine]),
                "verified": all(r["verified"] for r in mine),
                "ratio_to_apprise": med(ratios),
                "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)] if ratios else None,
                "meets_1_5x": (med(ratios) or 0) >= 1.5,
            }
        summary[f"{delay}ms"] = entry
    result = {
        "benchmark": NAME,
        "at": stamp,
        "started": started.isoformat(timespec="seconds"),
        "backend": "sqlite",
        "worker": "subprocess `incident worker`, fresh per run, production defaults",
        "source": source,
        "kinds": kinds,
        "n_instant": args.n_instant,
        "n_delay": args.n_delay,
        "delay_ms": args.delay_ms,
        "reps": args.reps,
        "database": "one for all runs" if args.reuse_db else "fresh SQLite file per run",
        "summary": summary,
        "rows": rows,
        "worker_log": log,
        "machine": machine(),
        "target": "ours/apprise >= 1.5 (b' instant, c'i at 100 ms)",
    }
    path = write_result(NAME, stamp, result)
    print(
        f"\ndurable delivery throughput ({source}, sqlite, subprocess `incident worker`),"
        f" median of {args.reps} reps, same sitting as apprise:"
    )
    for key, entry in summary.items():
        peer_key = next(k for k in entry if k.startswith("apprise") and k.endswith("msgs/s"))
        print(
            f"  receiver {key}: {peer_key} {entry[peer_key]}"
            f" (verified {entry[peer_key.replace('msgs/s', 'verified')]})"
        )
        for kind in kinds:
            e = entry[f"ours ({kind})"]
            print(
                f"    ours ({kind}): {e['msgs_per_s']} msgs/s (range {e['msgs_per_s_range']}),"
                f" ratio {e['ratio_to_apprise']}x (range {e['ratio_range']}),"
                f" target >= 1.5x: {'meets' if e['meets_1_5x'] else 'MISSES'};"
                f" cpu {e['cpu_us_per_msg']} us/msg, worker peak RSS {e['peak_rss_mb']} MB,"
                f" verified {e['verified']}"
            )
    print(
        f"  worker log: {log.get('lines_by_level')},"
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
