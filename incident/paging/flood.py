"""The flood limit: pages to one address within a window, and the bundle of those held."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from incident import delivery, jobs
from incident.models import Delivery
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


def send_bundle(address_hash: str, *, session: Session, now: datetime) -> Delivery | None:
    """Send the pages held back by the flood limit as one message."""
    held = list(
        session.scalars(
            select(Delivery)
            .where(
                Delivery.address_hash == address_hash,
                Delivery.status == "held",
            )
            .order_by(Delivery.id)
        )
    )
    if not held:
        return None
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
            lane=jobs.Lane.LIVE,
        )
        return first
    body = "\n".join(f"({n}) {d.body}" for n, d in enumerate(held, 1))
    bundle = delivery.create(
        session=session,
        now=now,
        purpose="page",
        address=first.address,
        subject=f"{len(held)} pages",
        body=body,
        idempotency_key=f"bundle:{address_hash}:{held[0].id}-{held[-1].id}",
        person_id=first.person_id,
        urgent=True,
        lane=jobs.Lane.LIVE,
    )
    for d in held:
        d.status = "bundled"
        d.bundled_into = bundle.id
    return bundle
