"""``incident roster test``: its messages are sent once, even when the command dies."""

from __future__ import annotations

from sqlalchemy import select

from incident import paging
from incident.channels import Outcome, Try
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context, record_sent
from incident.models import Delivery, InboxMessage, Job
from incident.worker import Worker

PERSON = "li.na"  # two inbox:// contacts in the demo roster


def test_a_roster_test_killed_before_sending_is_sent_once_by_the_worker_later(
    seeded: Database, clock: FrozenClock, worker: Worker
) -> None:
    with seeded.transaction() as session:
        made = paging.test_contacts(PERSON, session=session, now=clock.now(), direct=True)
        ids = [d.id for d in made]
    assert len(ids) >= 2
    # the command is killed here, before it sends or records anything
    worker.drain()
    with seeded.reading() as session:
        early = session.scalars(select(Delivery.status).where(Delivery.id.in_(ids))).all()
    assert "delivered" not in early, "the worker left them to the command for a while"
    clock.advance(minutes=5)
    worker.drain()
    clock.advance(minutes=5)
    worker.drain()
    with seeded.reading() as session:
        statuses = session.scalars(select(Delivery.status).where(Delivery.id.in_(ids))).all()
        keys = session.scalars(select(Delivery.idempotency_key).where(Delivery.id.in_(ids))).all()
        filed = session.scalars(
            select(InboxMessage.idempotency_key).where(InboxMessage.idempotency_key.in_(keys))
        ).all()
        waiting = session.scalars(
            select(Job.id).where(Job.key.in_([f"delivery:{i}" for i in ids]), Job.status != "done")
        ).all()
    assert statuses == ["delivered"] * len(ids)
    assert sorted(filed) == sorted(keys)
    assert waiting == []


def test_a_roster_test_that_sends_itself_leaves_nothing_for_the_worker(
    seeded: Database, clock: FrozenClock, worker: Worker, context: Context
) -> None:
    with seeded.transaction() as session:
        made = paging.test_contacts(PERSON, session=session, now=clock.now(), direct=True)
        ids = [d.id for d in made]
    sent = [Outcome(i, [Try(clock.now(), 5, "delivered", 200)]) for i in ids]
    with seeded.transaction() as session:  # what the command does after sending them itself
        record_sent(sent, session=session, now=clock.now(), ctx=context)
        paging.finish_direct_tests(ids, session=session, now=clock.now())
    clock.advance(minutes=10)
    assert worker.drain() == 0
    with seeded.reading() as session:
        statuses = session.scalars(select(Delivery.status).where(Delivery.id.in_(ids))).all()
    assert statuses == ["delivered"] * len(ids)
