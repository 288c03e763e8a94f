"""The flood limit: pages to one address within a window, and the bundle of those held."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from incident import delivery, jobs
from incident.models import Delivery, Incident, Person
from incident.paging.messages import DRILL_MARK
from incident.paging.policy import PagingPolicy


def recent_pages(
    addresses: list[str], *, session: Session, now: datetime, policy: PagingPolicy
) -> dict[str, int]:
    """Pages sent (not held, not failed) to each address within the flood window, by
    address hash."""
    hashes = sorted({delivery.address_hash(a) for a in addresses})
    rows = session.execute(
        select(Delivery.address_hash, func.count())
        .where(
            Delivery.address_hash.in_(hashes),
            Delivery.purpose == "page",
            Delivery.status.not_in(("held", "bundled", "failed")),
            Delivery.created_at > now - policy.flood_window,
        )
        .group_by(Delivery.address_hash)
    ).all()
    return {hashed: int(n) for hashed, n in rows}


def window_end(
    address_hash: str, *, session: Session, now: datetime, policy: PagingPolicy
) -> datetime:
    oldest = session.scalar(
        select(func.min(Delivery.created_at)).where(
            Delivery.address_hash == address_hash,
            Delivery.purpose == "page",
            Delivery.status.not_in(("held", "bundled", "failed")),
            Delivery.created_at > now - policy.flood_window,
        )
    )
    if oldest is None:
        return now
    return max(now, oldest + policy.flood_window)


def send_bundle(address_hash: str, *, session: Session, now: datetime) -> list[Delivery]:
    """Send the pages held back by the flood limit: one message per mode (a drill's pages
    are never bundled with live ones), in the person's language. A held page alone goes
    as it is."""
    held = session.execute(
        select(Delivery, Incident.mode)
        .join(Incident, Incident.id == Delivery.incident_id)
        .where(Delivery.address_hash == address_hash, Delivery.status == "held")
        .order_by(Delivery.id)
    ).all()
    sent = []
    for mode in ("live", "drill"):
        group = [d for d, m in held if m == mode]
        if group:
            sent.append(_bundle(group, mode, address_hash, session=session, now=now))
    return sent


def _bundle(
    held: list[Delivery], mode: str, address_hash: str, *, session: Session, now: datetime
) -> Delivery:
    drill = mode == "drill"
    lane = jobs.Lane.DRILL if drill else jobs.Lane.LIVE
    first = held[0]
    if len(held) == 1:
        first.status = "queued"
        jobs.enqueue(
            session,
            delivery.SEND_JOB,
            {"delivery_id": first.id},
            key=f"delivery:{first.id}",
            run_at=now,
            incident_id=first.incident_id,
            lane=lane,
        )
        return first
    person = session.get(Person, first.person_id) if first.person_id else None
    english = person is not None and person.language.lower().startswith("en")
    count = len(held)
    subject = f"{count} pages held back" if english else f"{count} 条呼叫（汇总）"
    if drill:
        subject = f"{DRILL_MARK}{subject}"
    body = "\n".join(f"({n}) {d.body}" for n, d in enumerate(held, 1))
    bundle = delivery.create(
        session=session,
        now=now,
        purpose="page",
        address=first.address,
        subject=subject,
        body=body,
        idempotency_key=f"bundle:{address_hash}:{mode}:{first.id}-{held[-1].id}",
        person_id=first.person_id,
        urgent=True,
        lane=lane,
    )
    for d in held:
        d.status = "bundled"
        d.bundled_into = bundle.id
    return bundle
