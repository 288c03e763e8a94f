"""Start of 50 scheduled drills due at the same minute: lateness and duplicates.

Makes a SQLite (or, with --database-url, PostgreSQL) database with the demo roster, adds
``--schedules`` drill schedules whose cron names the next whole minute, starts ``--workers``
`incident worker` processes, waits until the minute has passed and every drill has started
(bounded), stops the workers, then reads the database: for each schedule, how many drills it
started (must be 1) and how late each started (declared_at minus the minute it was due).

    .venv/bin/python bench/drills_start.py [--schedules 50] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import (
    INCIDENT,
    REPO,
    bench_env,
    machine,
    prepare,
    stats_ms,
    utc_stamp,
    write_result,
)
from incident import drills
from incident.app import load_catalog
from incident.db import Database
from incident.models import Incident
from incident.settings import Settings

FACTS = {"line": "G", "trains_affected": 4, "expected_delay_min": 30}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schedules", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="incident-drills-"))
    url = args.database_url or f"sqlite:///{workdir}/incident.db"
    env = bench_env(
        url, REPO / "playbooks", INCIDENT_LOG_LEVEL="WARNING", INCIDENT_WORKER_POLL_SECONDS="1"
    )
    prepare(workdir, env)
    settings = Settings(database_url=url, playbooks_dir=REPO / "playbooks")
    db = Database.from_url(url)
    catalog = load_catalog(settings, db)
    now = datetime.now(UTC)
    due = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if (due - now).total_seconds() < 20:
        due += timedelta(minutes=1)
    local = due.astimezone(settings.zone)
    cron = f"{local.minute} {local.hour} * * *"
    with db.transaction() as session:
        ids = [
            drills.add_schedule(
                session=session,
                now=now,
                zone=settings.zone,
                catalog=catalog,
                playbook_id="mass-delay",
                cron=cron,
                severity="IV",
                facts=FACTS,
                title=f"bench drill {n}",
                participants=["coordination"],
                actor="bench",
            ).id
            for n in range(args.schedules)
        ]
    log = (workdir / "workers.log").open("ab")
    workers = [
        subprocess.Popen([str(INCIDENT), "worker"], cwd=workdir, env=env, stdout=log, stderr=log)
        for _ in range(args.workers)
    ]
    try:
        deadline = time.monotonic() + (due - datetime.now(UTC)).total_seconds() + 60
        while time.monotonic() < deadline:
            with db.reading() as session:
                started = session.scalars(
                    select(Incident.id).where(Incident.drill_schedule_id.in_(ids))
                ).all()
            if len(started) >= args.schedules and datetime.now(UTC) > due + timedelta(seconds=5):
                break
            time.sleep(0.5)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
    with db.reading() as session:
        rows = session.execute(
            select(Incident.drill_schedule_id, Incident.declared_at).where(
                Incident.drill_schedule_id.in_(ids)
            )
        ).all()
    per_schedule: dict[str, int] = {}
    lateness = []
    for schedule_id, declared_at in rows:
        per_schedule[schedule_id] = per_schedule.get(schedule_id, 0) + 1
        lateness.append((declared_at - due).total_seconds() * 1000)
    result = {
        "benchmark": "drills_start",
        "at": utc_stamp(),
        "machine": machine(),
        "backend": "postgresql" if url.startswith("postgresql") else "sqlite",
        "schedules": args.schedules,
        "workers": args.workers,
        "due": due.isoformat(),
        "drills_started": len(rows),
        "schedules_started": len(per_schedule),
        "duplicates": sum(n - 1 for n in per_schedule.values()),
        "missing": args.schedules - len(per_schedule),
        "lateness_ms": stats_ms(lateness),
    }
    print(json.dumps(result, indent=1))
    write_result("drills_start", result["at"], result)


if __name__ == "__main__":
    main()
