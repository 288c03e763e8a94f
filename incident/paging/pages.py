"""Opening pages and paging each level of their chain, within the flood limit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from incident import delivery, jobs, roster, timeline
from incident.logs import get_logger
from incident.models import Incident, Page, PageRecipient, Person, new_id
from incident.paging.flood import recent_pages, window_end
from incident.paging.messages import messages_for
from incident.paging.policy import (
    BUNDLE_JOB,
    DEADLINE_JOB,
    DUTY_LEVEL,
    PagingPolicy,
    chain_for,
    people_at,
)
from incident.playbook import Action, Playbook

log = get_logger(__name__)
FIRST_PAGES_WITHIN = timedelta(minutes=2)  # of the declaration: its first pages


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
    page_level(incident, playbook, page, 0, session=session, now=now, policy=policy)
    return page


def page_level(
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
            for p in people_at(page, level, now, session=session, zone=policy.zone)
            if p.id not in already
        ]
        people = only_participants(incident, people)
        page.level = level
        if people:
            _page_people(
                incident, playbook, page, level, people, session=session, now=now, policy=policy
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
    exhausted(incident, page, session=session, now=now, policy=policy)


@dataclass
class _NewRecipient:
    """A recipient just inserted (Core: a level may hold a thousand people)."""

    id: int
    contact_position: int = 0
    status: str = "pending"


def _page_people(
    incident: Incident,
    playbook: Playbook | None,
    page: Page,
    level: int,
    people: list[Person],
    *,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
) -> None:
    """Insert the level's recipients and queue their deliveries, set-based."""
    session.flush()
    table = cast(Table, PageRecipient.__table__)
    ids = session.connection().scalars(
        insert(table).returning(table.c.id, sort_by_parameter_order=True),
        [
            {
                "page_id": page.id,
                "level": level,
                "person_id": person.id,
                "status": "pending",
                "contact_position": 0,
                "created_at": now,
            }
            for person in people
        ],
    )
    recipients = [_NewRecipient(int(i)) for i in ids]
    deliver_many(
        incident,
        playbook,
        page,
        list(zip(recipients, people, strict=True)),
        session=session,
        now=now,
        policy=policy,
    )
    unreachable = [r.id for r in recipients if r.status == "failed"]
    if unreachable:
        session.execute(
            update(PageRecipient).where(PageRecipient.id.in_(unreachable)).values(status="failed"),
            execution_options={"synchronize_session": False},
        )
    session.expire(page, ["recipients"])  # loaded again, with these, when next read


def only_participants(incident: Incident, people: list[Person]) -> list[Person]:
    """A drill that names participants pages no one else (people or whole departments)."""
    if incident.mode != "drill" or not incident.participants:
        return people
    allowed = set(incident.participants)
    return [p for p in people if p.id in allowed or p.department_id in allowed]


def deliver(
    incident: Incident,
    playbook: Playbook | None,
    page: Page,
    recipient: PageRecipient,
    person: Person,
    *,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
) -> int | None:
    """Queue a delivery to the recipient's current contact method; its id (None when no
    method is left)."""
    made = deliver_many(
        incident, playbook, page, [(recipient, person)], session=session, now=now, policy=policy
    )
    return made[0] if made else None


def deliver_many(
    incident: Incident,
    playbook: Playbook | None,
    page: Page,
    pairs: Sequence[tuple[PageRecipient | _NewRecipient, Person]],
    *,
    session: Session,
    now: datetime,
    policy: PagingPolicy,
) -> list[int]:
    """Queue one delivery per recipient to their current contact method, in one batch (Core
    inserts: a level may page a thousand people); recipients with no method left are marked
    failed. Returns the new deliveries' ids."""
    urgent = page.level > 0 or page.target_kind == "duty"
    # The first pages of a live incident go before every other send (#15).
    first = urgent or page.created_at - incident.declared_at <= FIRST_PAGES_WITHIN
    lane = delivery.lane_for("page", urgent=first, drill=incident.mode == "drill")
    reachable = []
    for recipient, person in pairs:
        if recipient.contact_position >= len(person.contacts):
            recipient.status = "failed"
        else:
            reachable.append((recipient, person, person.contacts[recipient.contact_position].url))
    if not reachable:
        return []
    # Never held: the first pages of an incident and escalations (reminders and repeated
    # updates may be bundled).
    counts = (
        {}
        if first
        else recent_pages(
            [address for _, _, address in reachable], session=session, now=now, policy=policy
        )
    )
    texts = messages_for(
        incident,
        playbook,
        page,
        [(person, policy.links.url(recipient.id, now=now)) for recipient, person, _ in reachable],
        now=now,
        zone=policy.zone,
    )
    specs = []
    held_hashes = []
    for (recipient, person, address), (subject, body) in zip(reachable, texts, strict=True):
        hashed = delivery.address_hash(address)
        held = counts.get(hashed, 0) >= policy.flood_limit
        counts[hashed] = counts.get(hashed, 0) + (0 if held else 1)
        if held:
            held_hashes.append(hashed)
        specs.append(
            delivery.Spec(
                purpose="page",
                address=address,
                subject=subject,
                body=body,
                idempotency_key=f"page:{recipient.id}:{recipient.contact_position}",
                incident_id=incident.id,
                person_id=person.id,
                recipient_id=recipient.id,
                contact_position=recipient.contact_position,
                urgent=urgent,
                status="held" if held else "queued",
                lane=lane,
            )
        )
    made = delivery.insert_many(specs, session=session, now=now)
    for hashed in sorted(set(held_hashes)):
        ends = window_end(hashed, session=session, now=now, policy=policy)
        jobs.enqueue(
            session,
            BUNDLE_JOB,
            {"address_hash": hashed},
            key=f"bundle:{hashed}:{ends.isoformat()}",
            run_at=ends,
            incident_id=None,
        )
        log.info("page_held_by_flood_limit", incident_id=incident.id, page_id=page.id)
    return made


def exhausted(
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
    level, people = _who_hears_of_silence(page, session=session, now=now, policy=policy)
    if not people:
        log.warning("page_unanswered_nobody_left", page_id=page.id, incident_id=incident.id)
        return
    open_page(
        incident,
        None,
        kind="duty",
        target=level,
        chain=[[f"person:{person_id}" for person_id in people]],
        template="",
        ack_within=policy.duty_ack_within,
        origin=f"duty:unanswered:{page.id}",
        stage_key=None,
        session=session,
        now=now,
        policy=policy,
        text={
            "zh": f"无人响应：{incident.title} 的呼叫（{target}）已升级到最后一级仍无人确认。",
            "en": f"Nobody answered: the page for {incident.title} ({target}) reached the "
            f"end of its chain unacknowledged.",
        },
    )


ABOVE_THE_SILENT = (DUTY_LEVEL, "director", "deputy_director")
"""Who hears that a page went unanswered: the first of these roles with someone the page did
not page already (the duty director on duty, else the director, else a deputy director);
when the page reached every one of them, all of them again."""


def _who_hears_of_silence(
    page: Page, *, session: Session, now: datetime, policy: PagingPolicy
) -> tuple[str, list[str]]:
    silent = {r.person_id for r in page.recipients}
    everyone: dict[str, list[str]] = {}
    for role in ABOVE_THE_SILENT:
        found = roster.resolve_level(role, now, session=session, zone=policy.zone)
        everyone[role] = [p.id for p in found]
        people = [p.id for p in found if p.id not in silent]
        if people:
            return role, people
    # Everyone above was paged and silent: the end alarm still goes, to all of them (an
    # alarm nobody receives is the one thing worse than one they already had).
    return DUTY_LEVEL, sorted({p for ids in everyone.values() for p in ids})


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
