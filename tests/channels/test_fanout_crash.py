"""SIGKILL of the worker during a fan-out of 1,000 deliveries: after a restart every delivery
is made, and a receiver sees each idempotency key at least once, with no more duplicates
than deliveries that were in flight when the worker died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from incident import response, roster
from incident.catalog import Catalog
from incident.clock import SystemClock
from incident.db import Database
from incident.models import Delivery, Job
from incident.playbook import parse_playbook_text
from tests.channels.test_paging import PLAYBOOK
from tests.peers import http_receiver

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 1000


def _roster(url: str) -> str:
    people = "\n".join(
        f'  - {{id: p{n}, name: P{n}, department: inquiry, contacts: ["{url}/p{n}"]}}'
        for n in range(PEOPLE)
    )
    team = ", ".join(f"p{n}" for n in range(PEOPLE))
    return f"""
departments:
  - {{id: inquiry, name: {{zh: 问询组, en: Inquiry}}, escalation: [on_duty]}}
people:
{people}
rota:
  - {{department: inquiry, starts_on: 2026-01-01, start_time: "00:00", shift_hours: 24,
      teams: [[{team}]]}}
"""


def _worker(database_url: str, playbooks: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_PLAYBOOKS_DIR": str(playbooks),
        "INCIDENT_WORKER_LEASE_SECONDS": "2",
        "INCIDENT_WORKER_POLL_SECONDS": "0.1",
        "INCIDENT_LOG_LEVEL": "WARNING",
        "INCIDENT_DELIVERY_IN_FLIGHT": "64",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "incident", "worker"], env=env, stdout=out, stderr=out, cwd=ROOT
        )


def _count(db: Database, *where: object) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(Delivery).where(*where)) or 0)  # type: ignore[arg-type]


@pytest.mark.slow
def test_sigkill_mid_fanout_loses_no_delivery_and_duplicates_at_most_those_in_flight(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "page-test.yaml").write_text(PLAYBOOK)
    log = tmp_path / "worker.log"
    with http_receiver() as receiver:
        doc = roster.parse_roster_text(_roster(receiver.url("/slow")), "roster.yaml")
        with db.transaction() as session:
            roster.apply_roster(doc, session=session)
        catalog = Catalog({"page-test": parse_playbook_text(PLAYBOOK, "page-test.yaml")})
        with db.transaction() as session:
            response.declare(
                session=session,
                now=SystemClock().now(),
                catalog=catalog,
                playbook_id="page-test",
                severity="III",
                title="fan-out",
                facts={"line": "G"},
                actor="test",
            )

        first = _worker(database_url, playbooks, log)
        deadline = time.monotonic() + 60
        while len(receiver.received) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        with db.reading() as session:
            in_flight = int(
                session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.kind == "delivery.send", Job.status == "running")
                )
                or 0
            )
        made_before = _count(db, Delivery.status == "delivered")
        assert 0 < made_before < PEOPLE or in_flight > 0, "the kill must land mid-fan-out"

        second = _worker(database_url, playbooks, log)
        try:
            deadline = time.monotonic() + 120
            while (
                _count(db, Delivery.status == "delivered") < PEOPLE and time.monotonic() < deadline
            ):
                time.sleep(0.1)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
        assert _count(db, Delivery.status == "delivered") == PEOPLE, log.read_text()[-2000:]
        with db.reading() as session:
            keys = set(session.scalars(select(Delivery.idempotency_key)))
        seen = Counter(receiver.keys("/slow"))
    assert keys <= set(seen), "every delivery reached the receiver"
    duplicates = sum(n - 1 for n in seen.values())
    assert duplicates <= in_flight
