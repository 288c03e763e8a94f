"""Moving a page on: failed deliveries, missed deadlines, declines."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from incident import timeline
from incident.db import locked
from incident.models import Delivery, Incident, Page, PageRecipient, Person
from incident.paging.pages import deliver, page_level
from incident.paging.policy import PagingPolicy
from incident.playbook import Playbook


def mark_delivered(delivered: list[Delivery], *, session: Session) -> None:
    """Pages whose messages were delivered are ``sent``: set-based, for many at once
    (a delivered bundle counts for every page it carried)."""
    recipient_ids = [d.recipient_id for d in delivered if d.recipient_id is not None]
    bundles = [d.id for d in delivered if d.recipient_id is None]
    if bundles:
        recipient_ids += [
            r
            for r in session.scalars(
                select(Delivery.recipient_id).where(
                    Delivery.bundled_into.in_(bundles), Delivery.recipient_id.is_not(None)
                )
            )
            if r is not None
        ]
    if not recipient_ids:
        return
    session.execute(
        update(PageRecipient)
        .where(PageRecipient.id.in_(recipient_ids), PageRecipient.status == "pending")
        .values(status="sent"),
        execution_options={"synchronize_session": False},
    )
    page_ids = select(PageRecipient.page_id).where(PageRecipient.id.in_(recipient_ids))
    session.execute(
        update(Page).where(Page.id.in_(page_ids), Page.status == "pending").values(status="sent"),
        execution_options={"synchronize_session": False},
    )


def on_delivery_outcome(
    sent: Delivery,
    *,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
    playbook: Playbook | None,
) -> None:
    """Move a page on after one of its deliveries failed for good: the recipient's next
    contact method, or, when a whole level is unreachable, the next level (a failed bundle
    moves each page it carried). Each page is locked before its state is read (an
    acknowledgement may be committing meanwhile)."""
    if sent.status == "delivered":
        mark_delivered([sent], session=session)
        return
    if sent.recipient_id is not None:
        failed = [(sent.recipient_id, sent.contact_position)]
    else:  # a bundle of pages held by the flood limit: each of them failed with it
        failed = [
            (recipient_id, position)
            for recipient_id, position in session.execute(
                select(Delivery.recipient_id, Delivery.contact_position)
                .where(Delivery.bundled_into == sent.id, Delivery.recipient_id.is_not(None))
                .order_by(Delivery.id)
            ).all()
            if recipient_id is not None
        ]
    for recipient_id, position in failed:
        found = session.get(PageRecipient, recipient_id)
        page = locked(session, Page, found.page_id) if found is not None else None
        recipient = session.get(PageRecipient, recipient_id, populate_existing=True)
        if recipient is None or page is None:
            continue
        incident = session.get(Incident, page.incident_id)
        assert incident is not None
        if recipient.status not in ("pending", "sent") or page.status == "acked":
            continue
        if position is not None and position != recipient.contact_position:
            continue  # this outcome was recorded already: the recipient moved on

        person = session.get(Person, recipient.person_id)
        assert person is not None
        recipient.contact_position += 1
        if (
            deliver(
                incident, playbook, page, recipient, person, session=session, now=now, policy=policy
            )
            is None
        ):
            recipient.status = "failed"
            timeline.append(
                incident,
                timeline.Kind.PAGE_UNREACHABLE,
                {"page": page.id, "person": person.id},
                session=session,
                at=now,
            )
            level_people = [r for r in page.recipients if r.level == page.level]
            if all(r.status == "failed" for r in level_people):
                page.status = "unreachable"
                escalate(
                    page,
                    reason="unreachable",
                    session=session,
                    now=now,
                    policy=policy,
                    playbook=playbook,
                )


def escalate(
    page: Page,
    *,
    reason: str,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
    playbook: Playbook | None,
) -> None:
    """Page the next level of the chain (or alert the duty director at its end)."""
    page = locked(session, Page, page.id) or page
    if page.status == "acked" or page.exhausted_at is not None:
        return
    incident = session.get(Incident, page.incident_id)
    assert incident is not None
    if incident.status in ("resolved", "closed") and page.target_kind != "group":
        return
    level = page.level + 1
    timeline.append(
        incident,
        timeline.Kind.PAGE_ESCALATED,
        {"page": page.id, "from_level": page.level, "reason": reason},
        session=session,
        at=now,
        dedup_key=f"escalate:{page.id}:{page.level}",
    )
    if page.status != "unreachable" or level < len(page.chain):
        page.status = "escalated"
    page_level(incident, playbook, page, level, session=session, now=now, policy=policy)


def on_deadline(
    page_id: str,
    level: int,
    *,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
    playbook: Playbook | None,
) -> None:
    page = locked(session, Page, page_id)  # an acknowledgement may be committing meanwhile
    if page is None or page.level != level or page.status == "acked":
        return
    if page.target_kind == "duty" or (len(page.chain) <= 1 and page.target_kind == "group"):
        if page.exhausted_at is None and page.target_kind == "duty":
            incident = session.get(Incident, page.incident_id)
            assert incident is not None
            page.exhausted_at = now
            timeline.append(
                incident, timeline.Kind.PAGE_EXHAUSTED, {"page": page.id}, session=session, at=now
            )
        return
    escalate(page, reason="no_ack", session=session, now=now, policy=policy, playbook=playbook)
