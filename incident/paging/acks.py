"""Acknowledging pages: by link (signed, single use), by API, by reply; declining."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from incident import jobs, timeline
from incident.db import locked
from incident.errors import Conflict, Forbidden, Gone, NotFound
from incident.logs import get_logger
from incident.models import AckToken, Incident, Page, PageRecipient
from incident.paging.escalation import escalate
from incident.paging.policy import PagingPolicy
from incident.playbook import Playbook
from incident.security import AckLinks

log = get_logger(__name__)


def acknowledge(
    page: Page,
    *,
    person_id: str | None,
    via: str,
    actor: str | None,
    session: Session,
    now: datetime,
) -> Page:
    """Acknowledge a page; pending escalation is cancelled. A repeat changes nothing.

    The page row is locked first: a deadline or a failed delivery moving the page on at the
    same moment either finished before (and this acknowledges the escalated page) or waits
    and then finds it acknowledged."""
    page = _lock(page, session=session)
    if page.status == "acked":
        return page
    incident = session.get(Incident, page.incident_id)
    assert incident is not None
    page.status = "acked"
    page.acked_at = now
    page.acked_by = person_id or actor
    page.acked_via = via
    page.ack_deadline = None
    for recipient in page.recipients:
        if recipient.person_id == person_id:
            recipient.status = "acked"
            recipient.responded_at = now
    jobs.cancel_keys(
        session, [f"deadline:{page.id}:{n}" for n in range(len(page.chain) + 1)], now=now
    )
    timeline.append(
        incident,
        timeline.Kind.PAGE_ACKED,
        {"page": page.id, "person": person_id, "via": via, "level": page.level},
        session=session,
        at=now,
        actor=actor,
    )
    log.info("page_acked", page_id=page.id, incident_id=incident.id, via=via)
    return page


def decline(
    page: Page,
    *,
    person_id: str,
    via: str,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
    playbook: Playbook | None,
) -> Page:
    """A recipient cannot take it: escalate at once."""
    page = _lock(page, session=session)
    if page.status == "acked":
        raise Conflict("the page is already acknowledged")
    incident = session.get(Incident, page.incident_id)
    assert incident is not None
    for recipient in page.recipients:
        if recipient.person_id == person_id and recipient.status in ("pending", "sent"):
            recipient.status = "declined"
            recipient.responded_at = now
    timeline.append(
        incident,
        timeline.Kind.PAGE_DECLINED,
        {"page": page.id, "person": person_id, "via": via},
        session=session,
        at=now,
    )
    escalate(page, reason="declined", session=session, now=now, policy=policy, playbook=playbook)
    return page


def recipient_for_link(
    token: str, *, session: Session, now: datetime, links: AckLinks
) -> PageRecipient:
    """The recipient a signed link names (NotFound if tampered, Gone if expired)."""
    recipient_id, _ = links.read(token, now=now)
    recipient = session.get(PageRecipient, recipient_id)
    if recipient is None:
        raise NotFound("this acknowledgement link is not valid")
    return recipient


def acknowledge_by_link(token: str, *, session: Session, now: datetime, links: AckLinks) -> Page:
    """Acknowledge through a signed link; each link works once (410 after, also to a second
    confirmation racing the first: it waits for the page's lock, then finds the link used)."""
    recipient_id, nonce = links.read(token, now=now)
    recipient = session.get(PageRecipient, recipient_id)
    if recipient is None:
        raise NotFound("this acknowledgement link is not valid")
    _lock(recipient.page, session=session)
    if session.get(AckToken, nonce, populate_existing=True) is not None:
        raise Gone("this acknowledgement link was used already")
    try:
        with session.begin_nested():
            session.add(AckToken(nonce=nonce, recipient_id=recipient.id, used_at=now))
    except IntegrityError:  # used by a transaction that committed meanwhile
        raise Gone("this acknowledgement link was used already") from None
    return acknowledge(
        recipient.page,
        person_id=recipient.person_id,
        via="link",
        actor=recipient.person_id,
        session=session,
        now=now,
    )


def acknowledge_as(
    page: Page,
    *,
    role: str,
    person_id: str | None,
    actor: str,
    via: str,
    session: Session,
    now: datetime,
) -> Page:
    """Acknowledge for a user: staff for a page of their own, or a duty manager (docs/api.md)."""
    paged = {r.person_id for r in page.recipients}
    own = role == "staff" and person_id is not None and person_id in paged
    if role not in ("admin", "duty_manager") and not own:
        raise Forbidden("only the paged staff member or a duty manager may acknowledge this page")
    return acknowledge(
        page,
        person_id=person_id if person_id in paged else None,
        via=via,
        actor=actor,
        session=session,
        now=now,
    )


def _lock(page: Page, *, session: Session) -> Page:
    found = locked(session, Page, page.id)
    if found is None:
        raise NotFound(f"no page {page.id!r}")
    return found


def get_page(page_id: str, *, session: Session) -> Page:
    page = session.get(Page, page_id)
    if page is None:
        raise NotFound(f"no page {page_id!r}")
    return page


def pages_of(incident_id: str, *, session: Session) -> list[Page]:
    return list(
        session.scalars(
            select(Page).where(Page.incident_id == incident_id).order_by(Page.created_at, Page.id)
        )
    )
