"""Tampering with a timeline is detected (#9): an altered payload or hash, a deleted event (in
the middle or the last one: the incident row anchors the head and the count), two events'
sequence numbers swapped. ``incident audit verify`` exits non-zero with one line per problem
naming the incident and the event; untouched incidents verify."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from incident import timeline
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.models import TimelineEvent
from incident.worker import Worker
from tests.factories import change, declare

ROOT = Path(__file__).resolve().parents[2]


def _incident(db: Database, catalog: Catalog, clock: FrozenClock, worker: Worker) -> str:
    """An incident with a dozen events: declared, stages fired, pages, a severity change."""
    incident_id = declare(db, catalog, clock)
    change(db, catalog, clock, incident_id, severity="II")
    worker.drain()
    return incident_id


def _last(session: Session, incident_id: str) -> int:
    return int(
        session.scalar(
            select(func.max(TimelineEvent.seq)).where(TimelineEvent.incident_id == incident_id)
        )
        or 0
    )


def _where(incident_id: str, seq: int) -> tuple[object, object]:
    return TimelineEvent.incident_id == incident_id, TimelineEvent.seq == seq


def alter_payload(session: Session, incident_id: str) -> list[str]:
    (data,) = session.execute(select(TimelineEvent.data).where(*_where(incident_id, 2))).one()
    session.execute(
        update(TimelineEvent).where(*_where(incident_id, 2)).values(data={**data, "x": 1})
    )
    return [f"{incident_id}: event #2 was altered"]


def alter_hash(session: Session, incident_id: str) -> list[str]:
    session.execute(update(TimelineEvent).where(*_where(incident_id, 2)).values(hash="f" * 64))
    return [
        f"{incident_id}: event #2 was altered",
        f"{incident_id}: event #3 does not follow the event before it",
    ]


def delete_middle(session: Session, incident_id: str) -> list[str]:
    session.execute(delete(TimelineEvent).where(*_where(incident_id, 3)))
    return [
        f"{incident_id}: event #3 missing (found #4)",
        f"{incident_id}: event #4 does not follow the event before it",
    ]


def delete_last(session: Session, incident_id: str) -> list[str]:
    last = _last(session, incident_id)
    session.execute(delete(TimelineEvent).where(*_where(incident_id, last)))
    return [
        f"{incident_id}: chain ends at #{last - 1} but the incident records #{last}: "
        "events were removed or added"
    ]


def swap_sequences(session: Session, incident_id: str) -> list[str]:
    ids = dict(
        session.execute(
            select(TimelineEvent.seq, TimelineEvent.id).where(
                TimelineEvent.incident_id == incident_id, TimelineEvent.seq.in_((2, 3))
            )
        ).all()
    )
    # through a free number: (incident, seq) is unique
    for event_id, seq in ((ids[2], -1), (ids[3], 2), (ids[2], 3)):
        session.execute(update(TimelineEvent).where(TimelineEvent.id == event_id).values(seq=seq))
    return [
        f"{incident_id}: event #2 does not follow the event before it",
        f"{incident_id}: event #2 was altered",
        f"{incident_id}: event #3 does not follow the event before it",
        f"{incident_id}: event #3 was altered",
        f"{incident_id}: event #4 does not follow the event before it",
    ]


TAMPERING: dict[str, Callable[[Session, str], list[str]]] = {
    "alter payload": alter_payload,
    "alter hash": alter_hash,
    "delete middle": delete_middle,
    "delete last": delete_last,
    "swap sequences": swap_sequences,
}


@pytest.mark.parametrize("how", TAMPERING)
def test_tampering_is_detected_and_named(
    how: str, seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = _incident(seeded, catalog, clock, worker)
    other = _incident(seeded, catalog, clock, worker)
    with seeded.reading() as session:
        assert _last(session, incident_id) >= 5
        assert timeline.verify(incident_id, session=session) == []
    with seeded.transaction() as session:
        expected = TAMPERING[how](session, incident_id)
    with seeded.reading() as session:
        assert timeline.verify(incident_id, session=session) == expected
        assert timeline.verify(other, session=session) == []


def _lines_of(incident_id: str, expected: list[str]) -> list[str]:
    return [line for line in expected if line.startswith(f"{incident_id}: ")]


def _verify(database_url: str, *incidents: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "INCIDENT_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "incident", "audit", "verify", *incidents],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_audit_verify_exits_non_zero_naming_each_tampered_incident_and_event(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker, database_url: str
) -> None:
    intact = _incident(seeded, catalog, clock, worker)
    tampered = {how: _incident(seeded, catalog, clock, worker) for how in TAMPERING}
    expected: list[str] = []
    with seeded.transaction() as session:  # after the last event: nothing appends later
        for how, incident_id in tampered.items():
            expected += TAMPERING[how](session, incident_id)
    seeded.dispose()

    everything = _verify(database_url)
    assert everything.returncode == 1, everything.stderr
    lines = everything.stdout.splitlines()
    assert sorted(lines) == sorted(expected)
    assert intact not in everything.stdout

    one = _verify(database_url, tampered["delete last"])
    assert one.returncode == 1
    assert one.stdout.splitlines() == _lines_of(tampered["delete last"], expected)

    clean = _verify(database_url, intact)
    assert clean.returncode == 0 and clean.stdout.strip() == "ok: 1 timeline(s) intact"
