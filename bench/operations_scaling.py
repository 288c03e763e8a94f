"""Several workers on PostgreSQL (#8): durable deliveries/s to a receiver answering in 100 ms
with 1 and 2 `incident worker` processes (a fixed number in flight per worker), and the pickup
latency of a new job with LISTEN/NOTIFY versus polling alone.

Starts a throwaway PostgreSQL cluster (scripts/pg-cluster) unless --database-url is given, and
the bench-peers uvicorn sink. Everything talks to 127.0.0.1 only; every loop is bounded.

    .venv/bin/python bench/operations_scaling.py [--n 3000] [--in-flight 64] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import REPO, bench_env, machine, stats_ms, utc_stamp, write_result
from bench.paging_common import Sink, WorkerProc, peers_python
from incident import delivery
from incident.db import Database
from incident.migrate import upgrade
from incident.models import Delivery, DeliveryAttempt, Job

PG_CLUSTER = REPO / "scripts" / "pg-cluster"


def reset(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("TRUNCATE delivery_attempts, deliveries, jobs, worker_heartbeats"))


def queue(db: Database, n: int, url: str, tag: str) -> None:
    with db.transaction() as session:
        delivery.create_many(
            [delivery.Spec("test", url, f"{tag}-{i}", "body", f"{tag}:{i}") for i in range(n)],
            session=session,
            now=datetime.now(UTC),
        )


def delivered(db: Database) -> int:
    with db.reading() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status == "delivered")
            )
            or 0
        )


def throughput(
    db: Database, env: dict[str, str], workdir: Path, sink: Sink, n: int, workers: int, tag: str
) -> dict[str, float]:
    reset(db)
    sink.reset()
    procs = [WorkerProc(workdir, env, workdir / f"worker-{tag}-{k}.log") for k in range(workers)]
    for proc in procs:
        proc.start()
    started = time.monotonic()
    queue(db, n, f"json://127.0.0.1:{sink.port}/notify/delay/100", tag)
    deadline = started + 120
    while delivered(db) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    took = time.monotonic() - started
    for proc in procs:
        proc.stop()
    done = delivered(db)
    stats = sink.stats()
    return {
        "workers": workers,
        "n": n,
        "delivered": done,
        "seconds": round(took, 3),
        "msgs_per_s": round(done / took, 1),
        "sink_unique": stats.get("unique", 0),
        "sink_duplicates": stats.get("duplicates", 0),
    }


def pickup(
    db: Database, env: dict[str, str], workdir: Path, listen: bool, samples: int
) -> dict[str, object]:
    """Enqueue one job at a time into an idle worker; time until its first attempt began."""
    reset(db)
    proc = WorkerProc(
        workdir,
        {**env, "INCIDENT_WORKER_LISTEN": "true" if listen else "false"},
        workdir / f"worker-pickup-{listen}.log",
    )
    proc.start()
    try:
        time.sleep(1.5)
        latencies = []
        for i in range(samples):
            tag = f"pick-{listen}-{i}"
            queue(db, 1, f"inbox://pickup/{i}", tag)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with db.reading() as session:
                    row = session.execute(
                        select(Job.created_at, DeliveryAttempt.started_at)
                        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
                        .join(Job, Job.key == func.concat("delivery:", Delivery.id))
                        .where(Delivery.idempotency_key == f"{tag}:0")
                    ).first()
                if row is not None:
                    latencies.append((row[1] - row[0]).total_seconds() * 1000)
                    break
                time.sleep(0.005)
            time.sleep(0.13)  # land at different points of the poll interval
    finally:
        proc.stop()
    return {
        "listen": listen,
        "poll_seconds": float(env["INCIDENT_WORKER_POLL_SECONDS"]),
        "latency_ms": stats_ms(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--peers-python", default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="incident-ops-"))
    cluster = None
    url = args.database_url
    if url is None:
        cluster = Path(tempfile.mkdtemp(prefix="incident-ops-pg-"))  # the postgres user
        out = subprocess.run(
            [str(PG_CLUSTER), "start", str(cluster)], capture_output=True, text=True, check=True
        )
        url = out.stdout.strip().splitlines()[-1]
    sink = Sink(peers_python(args.peers_python), workdir / "sink.log")
    try:
        db = Database.from_url(url)
        upgrade(db.engine)
        env = bench_env(
            url,
            REPO / "playbooks",
            INCIDENT_LOG_LEVEL="INFO",
            INCIDENT_DELIVERY_IN_FLIGHT=str(args.in_flight),
            INCIDENT_WORKER_POLL_SECONDS="1",
            INCIDENT_EMBEDDED_WORKER="false",
        )
        sink.start()
        rows = []
        for rep in range(args.reps):
            for workers in (1, 2):
                rows.append(
                    {
                        "rep": rep,
                        **throughput(db, env, workdir, sink, args.n, workers, f"r{rep}w{workers}"),
                    }
                )
                print(json.dumps(rows[-1]))
        one = statistics.median(r["msgs_per_s"] for r in rows if r["workers"] == 1)
        two = statistics.median(r["msgs_per_s"] for r in rows if r["workers"] == 2)
        picks = [pickup(db, env, workdir, listen, args.samples) for listen in (True, False)]
        for p in picks:
            print(json.dumps(p))
        result = {
            "benchmark": "operations_scaling",
            "at": utc_stamp(),
            "machine": machine(),
            "in_flight_per_worker": args.in_flight,
            "delay_ms": 100,
            "runs": rows,
            "median_msgs_per_s": {"1": one, "2": two},
            "ratio_2_to_1": round(two / one, 2),
            "pickup": picks,
        }
        print(json.dumps({k: result[k] for k in ("median_msgs_per_s", "ratio_2_to_1")}))
        write_result("operations_scaling", result["at"], result)
        db.dispose()
    finally:
        sink.stop()
        if cluster is not None:
            subprocess.run([str(PG_CLUSTER), "stop", str(cluster)], check=False)


if __name__ == "__main__":
    main()
