"""Pages: who is paged, acknowledgement, and escalation along the roster's chains.

A page targets a department (its people on duty, then its escalation chain), a role or a
person. Each level of the chain pages its people through their first contact method; a
delivery that fails for good moves on to the person's next method; when every recipient of a
level is unreachable, or nobody acknowledges within ``ack_within``, the next level is paged.
At the end of the chain the duty director is alerted that nobody answered.
Functions here add and flush; they never commit and never send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from incident import delivery, jobs, roster, timeline
from incident.errors import Conflict, Forbidden, Gone, NotFound
from incident.logs import get_logger
from incident.models import (
    AckToken,
    Delivery,
    Incident,
    Page,
    PageRecipient,
    Person,
    new_id,
)
from incident.playbook import Action, Playbook, render_template
from incident.security import AckLinks

log = get_logger(__name__)

DEADLINE_JOB = "page.deadline"
BUNDLE_JOB = "delivery.bundle"
DUTY_LEVEL = "duty_director"
SMS_LIMIT = 280
DRILL_MARK = "【演练 DRILL】"
_DRILL_PREFIXES = ("【演练", "[DRILL", "DRILL", "[EXERCISE", "演练")


@dataclass(frozen=True)
class PagingPolicy:
    """What paging needs from the settings."""

    links: AckLinks
    zone: ZoneInfo
    flood_limit: int = 5
    flood_window: timedelta = timedelta(minutes=15)
    duty_ack_within: timedelta = timedelta(minutes=10)


# -- who --------------------------------------------------------------------------------
def chain_for(target_kind: str, target_id: str, *, session: Session) -> list[Any]:
    """The escalation levels of a page's target, first level first."""
    if target_kind == "department":
        return roster.escalation_chain(target_id, session=session)
    default = list(roster.DEFAULT_ESCALATION)
    if target_kind == "role":
        later = default[default.index(target_id) + 1 :] if target_id in default else [DUTY_LEVEL]
        return [target_id, *later]
    if target_kind == "person":
        person = session.get(Person, target_id)
        rest: list[Any] = []
        if person is not None and person.department_id:
            chain = roster.escalation_chain(person.department_id, session=session)
            rest = [level for level in chain if level not in ("on_duty",)]
        return [f"person:{target_id}", *rest]
    return [target_id]


def _people_at(
    page: Page, level: int, at: datetime, *, session: Session, zone: ZoneInfo
) -> list[Person]:
    spec = page.chain[level]
    names = spec if isinstance(spec, list) else [spec]
    department = page.target_id if page.target_kind == "department" else None
    if page.target_kind == "person" and department is None:
        person = session.get(Person, page.target_id)
        department = person.department_id if person is not None else None
    found: dict[str, Person] = {}
    for name in names:
        for person in roster.resolve_level(
            str(name), at, session=session, zone=zone, department_id=department
        ):
            found.setdefault(person.id, person)
    return list(found.values())


# -- creating pages -----------------------------------------------------------------------
def page_for_action(
    incident: Incident,
    playbook: Playbook,
    action: Action,
    *,
    origin: str,
    stage_key: str,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
) -> list[Page]:
    """Create the pages a playbook ``page`` action asks for (once per ``origin``)."""
    params = action.params
    ack_within: timedelta = params.get("ack_within") or timedelta(minutes=5)
    template = str(params.get("template") or "page")
    pages: list[Page] = []
    targets: list[tuple[str, str, list[Any]]] = []
    for department in params.get("departments") or []:
        targets.append(
            ("department", department, chain_for("department", department, session=session))
        )
    for role in params.get("roles") or []:
        targets.append(("role", role, chain_for("role", role, session=session)))
    for person in params.get("people") or []:
        targets.append(("person", person, chain_for("person", person, session=session)))
    if params.get("paged_so_far"):
        paged = sorted(
            set(
                session.scalars(
                    select(PageRecipient.person_id)
                    .join(Page)
                    .where(Page.incident_id == incident.id)
                )
            )
        )
        if paged:
            targets.append(("group", "paged_so_far", [[f"person:{p}" for p in paged]]))
    for kind, target, chain in targets:
        page = open_page(
            incident,
            playbook,
            kind=kind,
            target=target,
            chain=chain,
            template=template,
            ack_within=ack_within,
            origin=f"{origin}:{kind}:{target}",
            stage_key=stage_key,
            escalates=kind != "group",
            session=session,
            now=now,
            policy=policy,
        )
        if page is not None:
            pages.append(page)
    return pages


def open_page(
    incident: Incident,
    playbook: Playbook | None,
    *,
    kind: str,
    target: str,
    chain: list[Any],
    template: str,
    ack_within: timedelta,
    origin: str,
    stage_key: str | None,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
    text: dict[str, str] | None = None,
    escalates: bool = True,
) -> Page | None:
    """Open one page and page its first level; None if this origin was paged already."""
    seen = session.scalar(
        select(Page.id).where(Page.incident_id == incident.id, Page.origin == origin)
    )
    if seen is not None:
        return None
    page = Page(
        id=new_id("pg"),
        incident_id=incident.id,
        origin=origin,
        stage_key=stage_key,
        target_kind=kind,
        target_id=target,
        chain=chain if escalates else chain[:1],
        level=0,
        status="pending",
        template=template,
        text=text,
        ack_within_s=int(ack_within.total_seconds()),
        created_at=now,
    )
    session.add(page)
    session.flush()
    timeline.append(
        incident,
        timeline.Kind.PAGE_SENT,
        {"page": page.id, "target": f"{kind}:{target}", "stage": stage_key},
        session=session,
        at=now,
    )
    _page_level(incident, playbook, page, 0, session=session, now=now, policy=policy)
    return page


def _page_level(
    incident: Incident,
    playbook: Playbook | None,
    page: Page,
    level: int,
    *,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
) -> None:
    """Page the people of ``level``, skipping anyone paged before; climb if it is empty."""
    while level < len(page.chain):
        already = {r.person_id for r in page.recipients}
        people = [
            p
            for p in _people_at(page, level, now, session=session, zone=policy.zone)
            if p.id not in already
        ]
        page.level = level
        if people:
            for person in people:
                recipient = PageRecipient(
                    page_id=page.id,
                    level=level,
                    person_id=person.id,
                    status="pending",
                    contact_position=0,
                    created_at=now,
                )
                page.recipients.append(recipient)
                session.flush()
                _deliver(
                    incident,
                    playbook,
                    page,
                    recipient,
                    person,
                    session=session,
                    now=now,
                    policy=policy,
                )
            if len(page.chain) > 1 or page.target_kind != "group":
                page.ack_deadline = now + timedelta(seconds=page.ack_within_s)
                jobs.enqueue(
                    session,
                    DEADLINE_JOB,
                    {"page_id": page.id, "level": level},
                    key=f"deadline:{page.id}:{level}",
                    run_at=page.ack_deadline,
                    incident_id=incident.id,
                )
            return
        level += 1
    _exhausted(incident, page, session=session, now=now, policy=policy)


def message_for(
    incident: Incident,
    playbook: Playbook | None,
    page: Page,
    person: Person,
    ack_url: str,
    *,
    now: datetime,
    zone: ZoneInfo,
) -> tuple[str, str]:
    """The subject and SMS-sized body of a page for one person, in their language."""
    lang = "en" if person.language.lower().startswith("en") else "zh"
    if page.text:
        body = page.text.get(lang) or page.text.get("zh") or ""
        body = f"{body} {ack_url}".strip()
    elif playbook is not None and page.template in playbook.templates:
        context = {
            **incident.facts,
            "incident_id": incident.id,
            "title": incident.title,
            "severity": incident.severity,
            "mode": incident.mode,
            "declared_at": incident.declared_at,
            "now": now,
            "ack_url": ack_url,
            "person_name": person.name,
            "stage": page.stage_key,
        }
        body = render_template(playbook, page.template, lang, context, tz=zone)
    else:
        body = f"[{incident.severity}] {incident.title} {ack_url}"
    if incident.mode == "drill" and not body.lstrip().startswith(_DRILL_PREFIXES):
        body = f"{DRILL_MARK}{body}"
    if len(body) > SMS_LIMIT and ack_url in body:
        room = SMS_LIMIT - len(ack_url) - 2
        body = body.replace(ack_url, "").rstrip()[:room].rstrip() + "… " + ack_url
    drill = "[DRILL] " if incident.mode == "drill" else ""
    return f"{drill}[{incident.severity}] {incident.title}"[:300], body


def _deliver(
    incident: Incident,
    playbook: Playbook | None,
    page: Page,
    recipient: PageRecipient,
    person: Person,
    *,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
) -> Delivery | None:
    """Queue a delivery to the recipient's current contact method (None when none left)."""
    contacts = person.contacts
    if recipient.contact_position >= len(contacts):
        recipient.status = "failed"
        return None
    contact = contacts[recipient.contact_position]
    ack_url = policy.links.url(recipient.id, now=now)
    subject, body = message_for(
        incident, playbook, page, person, ack_url, now=now, zone=policy.zone
    )
    urgent = page.level > 0 or page.target_kind == "duty"
    held = not urgent and _over_flood_limit(contact.url, session=session, now=now, policy=policy)
    sent = delivery.create(
        session=session,
        now=now,
        purpose="page",
        address=contact.url,
        subject=subject,
        body=body,
        idempotency_key=f"page:{recipient.id}:{recipient.contact_position}",
        incident_id=incident.id,
        person_id=person.id,
        recipient_id=recipient.id,
        contact_position=recipient.contact_position,
        urgent=urgent,
        status="held" if held else "queued",
    )
    if held:
        window_end = _window_end(sent.address_hash, session=session, now=now, policy=policy)
        jobs.enqueue(
            session,
            BUNDLE_JOB,
            {"address_hash": sent.address_hash},
            key=f"bundle:{sent.address_hash}:{window_end.isoformat()}",
            run_at=window_end,
            incident_id=None,
        )
        log.info("page_held_by_flood_limit", delivery_id=sent.id, incident_id=incident.id)
    return sent


def _over_flood_limit(
    address: str, *, session: Session, now: datetime, policy: PagingPolicy
) -> bool:
    count = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.address_hash == delivery.address_hash(address),
            Delivery.purpose == "page",
            Delivery.status.not_in(("held", "bundled")),
            Delivery.created_at > now - policy.flood_window,
        )
    )
    return int(count or 0) >= policy.flood_limit


def _window_end(
    address_hash: str, *, session: Session, now: datetime, policy: PagingPolicy
) -> datetime:
    oldest = session.scalar(
        select(func.min(Delivery.created_at)).where(
            Delivery.address_hash == address_hash,
            Delivery.purpose == "page",
            Delivery.status.not_in(("held", "bundled")),
            Delivery.created_at > now - policy.flood_window,
        )
    )
    if oldest is None:
        return now
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
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
    )
    for d in held:
        d.status = "bundled"
        d.bundled_into = bundle.id
    return bundle


# -- outcomes -----------------------------------------------------------------------------
def on_delivery_outcome(
    sent: Delivery,
    *,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
    playbook: Playbook | None,
) -> None:
    """Move a page on after one of its deliveries was made or failed for good."""
    recipients = [sent.recipient_id] if sent.recipient_id is not None else []
    if sent.status == "delivered" and sent.bundled_into is None:
        bundled = list(
            session.scalars(
                select(Delivery.recipient_id).where(
                    Delivery.bundled_into == sent.id, Delivery.recipient_id.is_not(None)
                )
            )
        )
        recipients += [r for r in bundled if r is not None]
    for recipient_id in recipients:
        recipient = session.get(PageRecipient, recipient_id)
        if recipient is None:
            continue
        page = recipient.page
        incident = session.get(Incident, page.incident_id)
        assert incident is not None
        if sent.status == "delivered":
            if recipient.status == "pending":
                recipient.status = "sent"
            if page.status == "pending":
                page.status = "sent"
            continue
        if recipient.status not in ("pending", "sent") or page.status == "acked":
            continue
        person = session.get(Person, recipient.person_id)
        assert person is not None
        recipient.contact_position += 1
        if (
            _deliver(
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
    _page_level(incident, playbook, page, level, session=session, now=now, policy=policy)


def _exhausted(
    incident: Incident, page: Page, *, session: Session, now: datetime, policy: PagingPolicy
) -> None:
    page.exhausted_at = now
    page.ack_deadline = None
    timeline.append(
        incident, timeline.Kind.PAGE_EXHAUSTED, {"page": page.id}, session=session, at=now
    )
    if page.target_kind == "duty":
        return
    target = f"{page.target_kind}:{page.target_id}"
    alert_duty(
        incident,
        text={
            "zh": f"无人响应：{incident.title} 的呼叫（{target}）已升级到最后一级仍无人确认。",
            "en": f"Nobody answered: the page for {incident.title} ({target}) reached the "
            f"end of its chain unacknowledged.",
        },
        reason=f"unanswered:{page.id}",
        session=session,
        now=now,
        policy=policy,
    )


def alert_duty(
    incident: Incident,
    *,
    text: dict[str, str],
    reason: str,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
) -> Page | None:
    """Alert the duty director (whoever is on duty) with a short text."""
    return open_page(
        incident,
        None,
        kind="duty",
        target=DUTY_LEVEL,
        chain=[DUTY_LEVEL],
        template="",
        ack_within=policy.duty_ack_within,
        origin=f"duty:{reason}",
        stage_key=None,
        session=session,
        now=now,
        policy=policy,
        text=text,
    )


def on_deadline(
    page_id: str,
    level: int,
    *,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
    playbook: Playbook | None,
) -> None:
    page = session.get(Page, page_id)
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


# -- acknowledgement ----------------------------------------------------------------------
def acknowledge(
    page: Page,
    *,
    person_id: str | None,
    via: str,
    actor: str | None,
    session: Session,
    now: datetime,
) -> Page:
    """Acknowledge a page; pending escalation is cancelled. A repeat changes nothing."""
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
    """Acknowledge through a signed link; each link works once (410 after)."""
    recipient_id, nonce = links.read(token, now=now)
    if session.get(AckToken, nonce) is not None:
        raise Gone("this acknowledgement link was used already")
    recipient = session.get(PageRecipient, recipient_id)
    if recipient is None:
        raise NotFound("this acknowledgement link is not valid")
    session.add(AckToken(nonce=nonce, recipient_id=recipient.id, used_at=now))
    session.flush()
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
    """Acknowledge for a user: the paged person themselves, or a duty manager."""
    paged = {r.person_id for r in page.recipients}
    if role not in ("admin", "duty_manager") and (person_id is None or person_id not in paged):
        raise Forbidden("only a paged person or a duty manager may acknowledge this page")
    return acknowledge(
        page,
        person_id=person_id if person_id in paged else None,
        via=via,
        actor=actor,
        session=session,
        now=now,
    )


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


def test_contacts(person_id: str, *, session: Session, now: datetime) -> list[Delivery]:
    """Queue a test message to each of a person's contact methods (``roster test``)."""
    person = session.get(Person, person_id)
    if person is None or not person.active:
        raise NotFound(f"no active person {person_id!r} in the roster")
    stamp = now.strftime("%Y%m%dT%H%M%S")
    sent = []
    for index, contact in enumerate(person.contacts):
        sent.append(
            delivery.create(
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
            )
        )
    return sent
