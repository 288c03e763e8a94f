"""The hash-chained timeline and its verification."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from incident import timeline
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.models import TimelineEvent
from incident.worker import Worker
from tests.factories import change, declare


def _incident_with_events(
    db: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> str:
    incident_id = declare(db, catalog, clock)
    worker.drain()
    clock.advance(minutes=11)
    worker.drain()
    change(db, catalog, clock, incident_id, severity="II")
    worker.drain()
    return incident_id


def _problems(db: Database, incident_id: str) -> list[str]:
    with db.reading() as session:
        return timeline.verify(incident_id, session=session)


def test_an_untouched_timeline_verifies(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = _incident_with_events(seeded, catalog, clock, worker)
    with seeded.reading() as session:
        events = timeline.events(incident_id, session=session)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].kind == "incident:declared"
    assert _problems(seeded, incident_id) == []


def test_an_altered_event_is_detected(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = _incident_with_events(seeded, catalog, clock, worker)
    with seeded.transaction() as session:
        session.execute(
            update(TimelineEvent)
            .where(TimelineEvent.incident_id == incident_id, TimelineEvent.seq == 2)
            .values(actor="someone-else")
        )
    assert any("#2 was altered" in p for p in _problems(seeded, incident_id))


def test_a_removed_event_is_detected_in_the_middle_and_at_the_end(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = _incident_with_events(seeded, catalog, clock, worker)
    with seeded.transaction() as session:
        last = session.scalar(
            select(TimelineEvent.seq)
            .where(TimelineEvent.incident_id == incident_id)
            .order_by(TimelineEvent.seq.desc())
            .limit(1)
        )
        session.execute(
            delete(TimelineEvent).where(
                TimelineEvent.incident_id == incident_id, TimelineEvent.seq == last
            )
        )
    assert any("removed" in p for p in _problems(seeded, incident_id))
    with seeded.transaction() as session:
        session.execute(
            delete(TimelineEvent).where(
                TimelineEvent.incident_id == incident_id, TimelineEvent.seq == 3
            )
        )
    assert any("#3 missing" in p for p in _problems(seeded, incident_id))


def test_reordered_events_are_detected(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = _incident_with_events(seeded, catalog, clock, worker)
    with seeded.transaction() as session:
        rows = {
            e.seq: e
            for e in session.scalars(
                select(TimelineEvent).where(TimelineEvent.incident_id == incident_id)
            )
        }
        a, b = rows[2], rows[3]
        a.seq, b.seq = -1, -2
        session.flush()
        a.seq, b.seq = 3, 2
    problems = _problems(seeded, incident_id)
    assert any("does not follow" in p for p in problems)


def test_the_same_effect_with_a_dedup_key_is_recorded_once(
    seeded: Database, catalog: Catalog, clock: FrozenClock
) -> None:
    incident_id = declare(seeded, catalog, clock)
    with seeded.transaction() as session:
        from incident.response import get_incident

        incident = get_incident(incident_id, session=session)
        first = timeline.append(
            incident, "stage:fired", {"stage": "x"}, session=session, at=clock.now(), dedup_key="k"
        )
        second = timeline.append(
            incident, "stage:fired", {"stage": "x"}, session=session, at=clock.now(), dedup_key="k"
        )
    assert first is not None and second is None
    assert _problems(seeded, incident_id) == []
