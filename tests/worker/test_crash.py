"""A worker killed with SIGKILL loses nothing: after a restart every due job runs, and
the effect of a job that was in flight appears once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from incident import response, timeline
from incident.catalog import Catalog
from incident.clock import SystemClock
from incident.db import Database
from incident.models import Job, TimelineEvent
from tests.factories import MASS_DELAY_FACTS

ROOT = Path(__file__).resolve().parents[2]
INCIDENTS = 150


def _worker(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "INCIDENT_WORKER_LEASE_SECONDS": "1",
        "INCIDENT_WORKER_POLL_SECONDS": "0.1",
        "INCIDENT_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "incident", "worker"], env=env, stdout=out, stderr=out, cwd=ROOT
        )


def _done(db: Database) -> int:
    """Stage firings done (sends run beside them: the engine's jobs are a lane of their own)."""
    with db.reading() as session:
        return int(
            session.scalar(
                select(func.count()).where(Job.status == "done", Job.kind == "stage.fire")
            )
            or 0
        )


@pytest.mark.slow
def test_sigkilled_worker_loses_no_job_and_duplicates_no_effect(
    seeded: Database, catalog: Catalog, database_url: str, tmp_path: Path
) -> None:
    clock = SystemClock()
    with seeded.transaction() as session:
        for n in range(INCIDENTS):
            response.declare(
                session=session,
                now=clock.now(),
                catalog=catalog,
                playbook_id="mass-delay",
                severity="II",
                title=f"Delay {n}",
                facts=MASS_DELAY_FACTS,
                actor="test",
            )
    with seeded.reading() as session:
        due = int(
            session.scalar(
                select(func.count()).where(Job.run_at <= clock.now(), Job.kind == "stage.fire")
            )
            or 0
        )
    assert due >= INCIDENTS

    log = tmp_path / "worker.log"
    first = _worker(database_url, log)
    deadline = time.monotonic() + 60
    while _done(seeded) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    done_at_kill = _done(seeded)
    assert 0 < done_at_kill < due, "the kill must land mid-run"

    second = _worker(database_url, log)
    try:
        deadline = time.monotonic() + 90
        while _done(seeded) < due and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert _done(seeded) >= due, log.read_text()[-3000:]

    with seeded.reading() as session:
        fired = session.execute(
            select(TimelineEvent.incident_id, TimelineEvent.dedup_key, func.count())
            .where(TimelineEvent.kind == "stage:fired")
            .group_by(TimelineEvent.incident_id, TimelineEvent.dedup_key)
        ).all()
        incident_ids = {row[0] for row in fired}
        problems = [p for i in incident_ids for p in timeline.verify(i, session=session)]
    assert all(count == 1 for _, _, count in fired)
    assert len(incident_ids) == INCIDENTS
    assert problems == []
