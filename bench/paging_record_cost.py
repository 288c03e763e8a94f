"""CPU cost of recording delivery outcomes (Worker.record_finished), without any network.

    .venv/bin/python bench/paging_record_cost.py [--ns 200,1000,5000] [--kinds pages,test]
        [--history 0,50000] [--commit HEAD]

In this process, on a fresh SQLite file per case: queue N deliveries (pages of a department
of N people, fired by a worker without a sender; or N "test" deliveries), claim their send
jobs as a worker would, hand the worker N made-up "delivered" outcomes (one attempt each),
and time `Worker.record_finished()` until all are recorded (CPU time of this process and
wall time; 200 outcomes per transaction, as the worker does). --history first adds that
many old delivered deliveries to the table (the service never deletes deliveries), to show
costs that grow with the table rather than with the batch.

Beside it, the same outcomes are recorded by a what-if batched recorder written here with
SQLAlchemy Core (one SELECT for the batch, executemany INSERT of the attempts and UPDATE of
the deliveries, one UPDATE of the recipients and one of the pages): a floor for the
"delivered" fast path, not a drop-in replacement (it does not handle failures, bundles or
escalation; the package's code stays as it is).

Also times firing the paging stage for N people (the fire handler: recipients, messages,
flood-limit checks, deliveries, send jobs), which bench/paging_fanout.py counts in its
latency.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import REPO, git_commit, machine, source_tree, utc_stamp, write_result
from paging_common import Bench, apply_roster, roster_doc
from paging_throughput import create_tests

NAME = "paging_record_cost"
SINK = "http://127.0.0.1:9"  # never contacted: nothing is sent here


class _NoSink:
    base = SINK


def add_history(db: Any, rows: int) -> None:
    """Old delivered deliveries (purpose test), inserted in bulk."""
    from sqlalchemy import insert

    from incident.models import Delivery

    old = datetime.now(UTC) - timedelta(days=30)
    batch = [
        {
            "idempotency_key": f"hist:{i}",
            "purpose": "test",
            "address": f"json://127.0.0.1:9/notify/hist/{i}",
            "address_hash": f"{i:064d}",
            "channel": "json",
            "subject": "old",
            "body": "old",
            "status": "delivered",
            "attempts": 1,
            "urgent": False,
            "created_at": old,
            "finished_at": old,
        }
        for i in range(rows)
    ]
    with db.transaction() as session:
        for start in range(0, rows, 5000):
            session.execute(insert(Delivery), batch[start : start + 5000])


def queue(bench: Bench, db: Any, kind: str, n: int, tag: str) -> float:
    """Queue n deliveries; return the CPU seconds the fire handler took (pages)."""
    if kind == "test":
        create_tests(db, _NoSink(), n, tag, 0)  # type: ignore[arg-type]
        return 0.0
    from paging_common import declare

    from incident.app import load_catalog
    from incident.clock import SystemClock
    from incident.handlers import Context
    from incident.worker import Worker

    apply_roster(db, roster_doc(n, SINK, tag, 0))
    settings = bench.settings()
    catalog = load_catalog(settings, db)
    declare(db, catalog, f"Record cost {tag}")
    creator = Worker(db, Context.build(settings, catalog), SystemClock(), sender=None, owner="mk")
    t0 = time.process_time()
    creator.run_due()  # fires the stage: n recipients, n deliveries, n send jobs
    return time.process_time() - t0


def claim_all(db: Any, owner: str, n: int) -> list[Any]:
    from incident import jobs
    from incident.delivery import SEND_JOB

    now = datetime.now(UTC)
    with db.transaction() as session:
        claimed = jobs.claim(
            session, owner=owner, now=now, lease=timedelta(minutes=30), limit=n + 10
        )
    sends = [j for j in claimed if j.kind == SEND_JOB]
    if len(sends) != n:
        raise RuntimeError(f"claimed {len(sends)} send jobs, expected {n}")
    return sends


def outcomes(claimed: list[Any]) -> list[tuple[Any, Any]]:
    from incident.channels import Outcome, Try

    now = datetime.now(UTC)
    return [
        (job, Outcome(int(job.payload["delivery_id"]), [Try(now, 3, "delivered", 200)]))
        for job in claimed
    ]


def make_worker(bench: Bench, db: Any, owner: str) -> Any:
    from incident.app import load_catalog
    from incident.clock import SystemClock
    from incident.handlers import Context
    from incident.worker import Worker

    settings = bench.settings()
    return Worker(
        db, Context.build(settings, load_catalog(settings, db)), SystemClock(), owner=owner
    )


def record_with_worker(w: Any, done: list[tuple[Any, Any]]) -> None:
    for item in done:
        w._finished.put(item)  # what Worker._on_sent does when a send finishes
    while w.record_finished():
        pass


def record_batched(db: Any, owner: str, done: list[tuple[Any, Any]], batch: int = 200) -> None:
    """What-if: the delivered fast path in a few statements per batch (SQLAlchemy Core)."""
    from sqlalchemy import bindparam, insert, select, update

    from incident import jobs
    from incident.models import Delivery, DeliveryAttempt, Page, PageRecipient

    upd = (
        update(Delivery.__table__)
        .where(Delivery.__table__.c.id == bindparam("b_id"))
        .values(status="delivered", attempts=bindparam("b_attempts"), finished_at=bindparam("b_at"))
    )
    for start in range(0, len(done), batch):
        chunk = done[start : start + batch]
        now = datetime.now(UTC)
        with db.transaction() as session:
            ours = jobs.still_ours(session, [job.id for job, _ in chunk], owner=owner)
            by_id = {o.delivery_id: o for job, o in chunk if job.id in ours}
            rows = session.execute(
                select(Delivery.id, Delivery.attempts, Delivery.recipient_id).where(
                    Delivery.id.in_(by_id), Delivery.status.not_in(("delivered", "failed"))
                )
            ).all()
            attempts, updates, recipients = [], [], []
            for row in rows:
                tries = by_id[row.id].tries
                for k, t in enumerate(tries, start=1):
                    attempts.append(
                        {
                            "delivery_id": row.id,
                            "number": row.attempts + k,
                            "started_at": t.started_at,
                            "duration_ms": t.duration_ms,
                            "outcome": t.outcome,
                            "status_code": t.status_code,
                            "error": t.error,
                        }
                    )
                updates.append(
                    {"b_id": row.id, "b_attempts": row.attempts + len(tries), "b_at": now}
                )
                if row.recipient_id is not None:
                    recipients.append(row.recipient_id)
            if attempts:
                session.execute(insert(DeliveryAttempt), attempts)
                session.connection().execute(upd, updates)
            if recipients:
                session.execute(
                    update(PageRecipient)
                    .where(PageRecipient.id.in_(recipients), PageRecipient.status == "pending")
                    .values(status="sent"),
                    execution_options={"synchronize_session": False},
                )
                pages = select(PageRecipient.page_id).where(PageRecipient.id.in_(recipients))
                session.execute(
                    update(Page)
                    .where(Page.id.in_(pages), Page.status == "pending")
                    .values(status="sent"),
                    execution_options={"synchronize_session": False},
                )
            jobs.complete_many(session, sorted(ours), owner=owner, now=now)


def check(db: Any, n: int, kind: str) -> dict[str, int]:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        delivered = conn.execute(
            text(
                "SELECT count(*) FROM deliveries WHERE status = 'delivered'"
                " AND idempotency_key NOT LIKE 'hist:%'"
            )
        ).scalar_one()
        attempts = conn.execute(text("SELECT count(*) FROM delivery_attempts")).scalar_one()
        sent = (
            conn.execute(
                text("SELECT count(*) FROM page_recipients WHERE status = 'sent'")
            ).scalar_one()
            if kind == "pages"
            else n
        )
        conn.rollback()
    return {"delivered": delivered, "attempt_rows": attempts, "recipients_sent": sent}


def one_case(src: Path, kind: str, n: int, history: int, how: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-record-"))
    try:
        bench = Bench.prepare(tmp, src)
        db = bench.database()
        apply_roster(db, roster_doc(1, SINK, "init", 0))
        if history:
            add_history(db, history)
        fire_cpu = queue(bench, db, kind, n, f"{kind}{n}")
        owner = "bench-recorder"
        done = outcomes(claim_all(db, owner, n))
        w = make_worker(bench, db, owner)
        t0, c0 = time.perf_counter(), time.process_time()
        if how == "worker":
            record_with_worker(w, done)
        else:
            record_batched(db, owner, done)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        got = check(db, n, kind)
        db.dispose()
        return {
            "kind": kind,
            "n": n,
            "history_rows": history,
            "recorder": how,
            "record_cpu_us_per_delivery": round(cpu * 1e6 / n),
            "record_wall_us_per_delivery": round(wall * 1e6 / n),
            "record_wall_ms_per_200": round(wall * 1e3 / n * 200, 1),
            "fire_cpu_ms": round(fire_cpu * 1e3, 1) if kind == "pages" else None,
            "fire_cpu_us_per_person": round(fire_cpu * 1e6 / n) if kind == "pages" else None,
            "ok": got["delivered"] == n
            and got["attempt_rows"] == n
            and got["recipients_sent"] == n,
            **got,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="200,1000,5000")
    parser.add_argument("--kinds", default="pages,test")
    parser.add_argument("--history", default="0,50000", help="old deliveries in the table")
    parser.add_argument("--recorders", default="worker,batched")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--commit", default=None)
    args = parser.parse_args(argv)
    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-record-src-"))
    src = source_tree(args.commit, tmp)
    if src != REPO:
        sys.path.insert(0, str(src))
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    from incident.logs import configure_logging

    configure_logging("console", "WARNING")
    rows = []
    for kind in args.kinds.split(","):
        for n in [int(x) for x in args.ns.split(",")]:
            for history in [int(x) for x in args.history.split(",")]:
                for how in args.recorders.split(","):
                    reps = [one_case(src, kind, n, history, how) for _ in range(args.reps)]
                    row = dict(reps[0])
                    for key in (
                        "record_cpu_us_per_delivery",
                        "record_wall_us_per_delivery",
                        "record_wall_ms_per_200",
                        "fire_cpu_us_per_person",
                    ):
                        vals = [r[key] for r in reps if r[key] is not None]
                        row[key] = statistics.median(vals) if vals else None
                    row["ok"] = all(r["ok"] for r in reps)
                    rows.append(row)
                    fire = (
                        f"; fire handler {row['fire_cpu_us_per_person']} us CPU/person"
                        if kind == "pages" and how == "worker"
                        else ""
                    )
                    print(
                        f"{kind:<5} N={n:<5} history={history:<6} {how:<8}: record"
                        f" {row['record_cpu_us_per_delivery']} us CPU/delivery"
                        f" ({row['record_wall_ms_per_200']} ms wall per 200){fire}; ok {row['ok']}",
                        flush=True,
                    )
    shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "benchmark": NAME,
        "at": stamp,
        "source": source,
        "backend": "sqlite",
        "reps": args.reps,
        "rows": rows,
        "machine": machine(),
    }
    path = write_result(NAME, stamp, result)
    print(f"results: {path.relative_to(REPO)}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
