"""Test messages to a person's contact methods (``incident roster test`` and the console)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import delivery, jobs
from incident.errors import NotFound
from incident.models import Delivery, Person

DIRECT_GRACE = timedelta(minutes=2)
"""How long the worker leaves a direct test to the command that sends it itself: longer than
one delivery's bound on all its attempts (``INCIDENT_DELIVERY_TOTAL_SECONDS``)."""


def test_contacts(
    person_id: str, *, session: Session, now: datetime, direct: bool = False
) -> list[Delivery]:
    """A test message to each of a person's contact methods (``roster test``): queued for
    the worker, or (``direct``) for the caller to send at once. A direct test's send jobs
    run only after :data:`DIRECT_GRACE`: if the caller dies before it records what it sent,
    the worker sends them then; if it records them, :func:`finish_direct_tests` cancels the
    jobs (and a job that runs anyway finds the delivery recorded and sends nothing)."""
    person = session.get(Person, person_id)
    if person is None or not person.active:
        raise NotFound(f"no active person {person_id!r} in the roster")
    stamp = now.strftime("%Y%m%dT%H%M%S")
    sent = []
    for index, contact in enumerate(person.contacts):
        made = delivery.create(
            session=session,
            now=now,
            purpose="test",
            address=contact.url,
            subject="incident: test message / 测试消息",
            body=f"测试消息：这是 incident 对联系方式 {index + 1} 的测试，无需处理。"
            f" Test message to contact method {index + 1}; no action needed.",
            idempotency_key=f"test:{person.id}:{index}:{stamp}",
            person_id=person.id,
            contact_position=index,
            status="direct" if direct else "queued",  # direct: no job yet (below)
        )
        if direct and made.status == "direct":
            made.status = "queued"
            jobs.enqueue(
                session,
                delivery.SEND_JOB,
                {"delivery_id": made.id},
                key=f"delivery:{made.id}",
                run_at=now + DIRECT_GRACE,
            )
        sent.append(made)
    session.flush()
    return sent


def finish_direct_tests(delivery_ids: list[int], *, session: Session, now: datetime) -> int:
    """The caller sent its direct tests and recorded them: cancel their send jobs (those of
    deliveries still queued stay, for the worker). Returns how many were cancelled."""
    recorded = session.scalars(
        select(Delivery.id).where(Delivery.id.in_(delivery_ids), Delivery.status != "queued")
    ).all()
    return jobs.cancel_keys(session, [f"delivery:{i}" for i in recorded], now=now)
