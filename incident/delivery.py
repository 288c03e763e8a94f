"""Deliveries: one message to one address, queued with a job; what an outcome means.

Nothing here sends: the ``delivery.send`` job handler does, between transactions, and then
calls :func:`record_outcome` to store what happened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from urllib.parse import urlsplit

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from incident import jobs
from incident.models import Delivery, DeliveryAttempt
from incident.privacy import mask_error

SEND_JOB = "delivery.send"


def address_hash(address: str) -> str:
    return hashlib.sha256(address.strip().encode()).hexdigest()


def lane_for(purpose: str, *, urgent: bool = False, drill: bool = False) -> jobs.Lane:
    """The lane a delivery's send runs in (incident.jobs.Lane)."""
    if drill:
        return jobs.Lane.DRILL
    if purpose == "page":
        return jobs.Lane.FIRST if urgent else jobs.Lane.LIVE
    if purpose == "notice":
        return jobs.Lane.PUBLIC
    if purpose == "broadcast":
        return jobs.Lane.PASSENGERS
    return jobs.Lane.LIVE  # contact tests: someone is waiting for them


def channel_of(address: str) -> str:
    """The scheme of an apprise URL (``json``, ``mailto``, ``inbox`` ...)."""
    return urlsplit(address).scheme.lower() or "unknown"


def create(
    *,
    session: Session,
    now: datetime,
    purpose: str,
    address: str,
    subject: str,
    body: str,
    idempotency_key: str,
    incident_id: str | None = None,
    person_id: str | None = None,
    recipient_id: int | None = None,
    contact_position: int | None = None,
    urgent: bool = False,
    status: str = "queued",
    lane: jobs.Lane | None = None,
) -> Delivery:
    """Queue one delivery and the job that sends it (a held delivery gets no job)."""
    found = session.query(Delivery).filter_by(idempotency_key=idempotency_key).one_or_none()
    if found is not None:
        return found
    delivery = Delivery(
        idempotency_key=idempotency_key,
        purpose=purpose,
        incident_id=incident_id,
        person_id=person_id,
        recipient_id=recipient_id,
        contact_position=contact_position,
        address=address,
        address_hash=address_hash(address),
        channel=channel_of(address),
        subject=subject[:300],
        body=body,
        status=status,
        attempts=0,
        urgent=urgent,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    if status == "queued":
        jobs.enqueue(
            session,
            SEND_JOB,
            {"delivery_id": delivery.id},
            key=f"delivery:{delivery.id}",
            run_at=now,
            incident_id=incident_id,
            lane=lane if lane is not None else lane_for(purpose, urgent=urgent),
        )
    return delivery


@dataclass(frozen=True)
class Spec:
    """What one new delivery says, to whom."""

    purpose: str
    address: str
    subject: str
    body: str
    idempotency_key: str
    incident_id: str | None = None
    person_id: str | None = None
    recipient_id: int | None = None
    contact_position: int | None = None
    urgent: bool = False
    status: str = "queued"
    lane: jobs.Lane | None = None  # by purpose and urgency when not given
    run_at: datetime | None = None  # when its send is due (now when not given)

    @property
    def send_lane(self) -> jobs.Lane:
        return self.lane if self.lane is not None else lane_for(self.purpose, urgent=self.urgent)


def create_many(specs: list[Spec], *, session: Session, now: datetime) -> list[Delivery]:
    """Queue new deliveries (keys not used before) and their send jobs, in one batch."""
    made = [
        Delivery(
            idempotency_key=spec.idempotency_key,
            purpose=spec.purpose,
            incident_id=spec.incident_id,
            person_id=spec.person_id,
            recipient_id=spec.recipient_id,
            contact_position=spec.contact_position,
            address=spec.address,
            address_hash=address_hash(spec.address),
            channel=channel_of(spec.address),
            subject=spec.subject[:300],
            body=spec.body,
            status=spec.status,
            attempts=0,
            urgent=spec.urgent,
            created_at=now,
        )
        for spec in specs
    ]
    session.add_all(made)
    session.flush()
    jobs.enqueue_many(
        session,
        [
            jobs.NewJob(
                SEND_JOB,
                {"delivery_id": d.id},
                f"delivery:{d.id}",
                now,
                d.incident_id,
                spec.send_lane,
            )
            for d, spec in zip(made, specs, strict=True)
            if d.status == "queued"
        ],
    )
    return made


def insert_many(specs: list[Spec], *, session: Session, now: datetime) -> list[int]:
    """Like :func:`create_many`, without ORM objects (a broadcast makes thousands): one
    multi-row ``INSERT .. RETURNING`` for the deliveries, one for their send jobs; returns
    the new ids in the order of ``specs``."""
    if not specs:
        return []
    table = cast(Table, Delivery.__table__)
    ids = list(
        session.connection().scalars(  # Core, not the ORM's bulk path: a third of the cost
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [
                {
                    "idempotency_key": spec.idempotency_key,
                    "purpose": spec.purpose,
                    "incident_id": spec.incident_id,
                    "person_id": spec.person_id,
                    "recipient_id": spec.recipient_id,
                    "contact_position": spec.contact_position,
                    "address": spec.address,
                    "address_hash": address_hash(spec.address),
                    "channel": channel_of(spec.address),
                    "subject": spec.subject[:300],
                    "body": spec.body,
                    "status": spec.status,
                    "attempts": 0,
                    "urgent": spec.urgent,
                    "created_at": now,
                }
                for spec in specs
            ],
        )
    )
    jobs.enqueue_many(
        session,
        [
            jobs.NewJob(
                SEND_JOB,
                {"delivery_id": i},
                f"delivery:{i}",
                spec.run_at or now,
                spec.incident_id,
                spec.send_lane,
            )
            for i, spec in zip(ids, specs, strict=True)
            if spec.status == "queued"
        ],
    )
    return ids


@dataclass(frozen=True)
class Attempt:
    """One try at sending, as the channel reported it."""

    started_at: datetime
    duration_ms: int
    outcome: str  # delivered | transient | permanent
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Recorded:
    """A delivery whose outcome was just stored."""

    id: int
    status: str  # delivered | failed
    purpose: str
    channel: str


def record_outcomes(
    outcomes: Mapping[int, list[Attempt]],
    *,
    session: Session,
    now: datetime,
    notes: Mapping[int, str] | None = None,
    final: bool = True,
) -> list[Recorded]:
    """Store the attempts and final status of many deliveries, set-based (Core statements,
    no ORM objects: a broadcast records thousands). A delivery already delivered or failed
    was recorded by an earlier run of its job and is left as it is. ``notes`` say why a
    delivery has no attempt. With ``final=False`` only the attempts are stored: the
    delivery stays queued (its send was deferred or handed back) and nothing is returned."""
    if not outcomes:
        return []
    table = cast(Table, Delivery.__table__)
    conn = session.connection()
    found = conn.execute(
        select(table.c.id, table.c.status, table.c.attempts, table.c.purpose, table.c.channel)
        .where(table.c.id.in_(list(outcomes)))
        .order_by(table.c.id)
    ).all()
    attempt_rows: list[dict[str, object]] = []
    delivered: list[dict[str, object]] = []
    failed: list[dict[str, object]] = []
    counted: list[dict[str, object]] = []
    recorded: list[Recorded] = []
    for row in found:
        if row.status in ("delivered", "failed"):
            continue
        number = row.attempts
        attempts = outcomes[row.id]
        for attempt in attempts:
            number += 1
            attempt_rows.append(
                {
                    "delivery_id": row.id,
                    "number": number,
                    "started_at": attempt.started_at,
                    "duration_ms": attempt.duration_ms,
                    "outcome": attempt.outcome,
                    "status_code": attempt.status_code,
                    # aiohttp's errors quote the URL, and so a passenger's number (#16)
                    "error": mask_error(attempt.error)[:500] if attempt.error else None,
                }
            )
        last = attempts[-1] if attempts else None
        if not final:
            if attempts:
                counted.append({"b_id": row.id, "b_attempts": number})
        elif last is not None and last.outcome == "delivered":
            delivered.append({"b_id": row.id, "b_attempts": number})
            recorded.append(Recorded(row.id, "delivered", row.purpose, row.channel))
        else:
            error = (last.error if last else None) or (notes or {}).get(row.id) or "no attempt made"
            failed.append({"b_id": row.id, "b_attempts": number, "b_error": mask_error(error)})
            recorded.append(Recorded(row.id, "failed", row.purpose, row.channel))
    if attempt_rows:
        conn.execute(insert(cast(Table, DeliveryAttempt.__table__)), attempt_rows)
    where = table.c.id == bindparam("b_id")
    if counted:
        conn.execute(update(table).where(where).values(attempts=bindparam("b_attempts")), counted)
    if delivered:
        conn.execute(
            update(table)
            .where(where)
            .values(status="delivered", attempts=bindparam("b_attempts"), finished_at=now),
            delivered,
        )
    if failed:
        conn.execute(
            update(table)
            .where(where)
            .values(
                status="failed",
                attempts=bindparam("b_attempts"),
                last_error=bindparam("b_error"),
                finished_at=now,
            ),
            failed,
        )
    return recorded
