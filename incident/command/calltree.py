"""When chat and phones are down: a printable call tree of the people a playbook pages (who
calls whom, with their numbers), so the response goes on by landline and by hand; and people
"reached by hand", with who reached them.

The tree starts at the duty director on duty (the incident commander by default), who calls
the head of each department the playbook pages (or whoever is on duty there when it has no
head) and the roles and people it pages; each head calls their people on duty. Contact
addresses are shown in full only to roles that may see personal data, masked for others.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import paging, roster, timeline
from incident.command.events import CommandEvent
from incident.errors import FieldError, ValidationFailed
from incident.logs import get_logger
from incident.models import Department, Incident, Page, PageRecipient, Person
from incident.playbook import Playbook

log = get_logger(__name__)

ROOT_ROLES = ("duty_director", "deputy_director", "director")
_OPEN_PAGES = ("pending", "sent", "escalated", "unreachable")


def _targets(playbook: Playbook) -> tuple[list[str], list[str], list[str]]:
    """The departments, roles and people the playbook pages or gives tasks to, in order."""
    departments: list[str] = []
    roles: list[str] = []
    people: list[str] = []

    def add(into: list[str], values: object) -> None:
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and value and value not in into:
                into.append(value)

    for stage in playbook.stages:
        for action in stage.actions:
            if action.kind == "page":
                add(departments, action.params.get("departments") or [])
                add(roles, action.params.get("roles") or [])
                add(people, action.params.get("people") or [])
            elif action.kind == "task":
                add(departments, action.params.get("department"))
                add(people, action.params.get("person"))
    for source in playbook.roles.values():
        kind, name = next(iter(source.items()))
        add({"department": departments, "role": roles, "person": people}[kind], name)
    return departments, roles, people


def _node(person: Person, on_duty: set[str], full: bool, calls: list[Any]) -> dict[str, Any]:
    return {
        "person": person.id,
        "name": person.name,
        "department": person.department_id,
        "roles": [str(r) for r in person.roles],
        "on_duty": person.id in on_duty,
        "contacts": [
            {
                "label": c.label or f"#{c.position}",
                "address": roster.printable_contact(c.url) if full else roster.mask_contact(c.url),
            }
            for c in person.contacts
        ],
        "calls": calls,
    }


def call_tree(
    playbook: Playbook, *, session: Session, now: datetime, zone: ZoneInfo, full: bool
) -> dict[str, Any]:
    """Who calls whom for ``playbook`` at ``now``; ``full`` shows contact addresses unmasked."""
    departments, role_names, people_ids = _targets(playbook)
    duty = roster.who_is_on_duty(now, session=session, zone=zone)
    on_duty = {p.id for people in duty.values() for p in people}
    root: Person | None = None
    for role in ROOT_ROLES:
        found = roster.resolve_level(role, now, session=session, zone=zone)
        if found:
            root = found[0]
            break
    placed: set[str] = {root.id} if root is not None else set()
    branches: list[dict[str, Any]] = []
    names = {d.id: d for d in session.scalars(select(Department))}
    for department_id in departments:
        head = roster.section_head(department_id, session=session)
        working = [p for p in duty.get(department_id, []) if p.id not in placed]
        lead = head if head is not None and head.id not in placed else None
        if lead is None and working:
            lead, working = working[0], working[1:]
        if lead is None:
            continue
        placed.add(lead.id)
        calls = [_node(p, on_duty, full, []) for p in working if p.id != lead.id]
        placed.update(p.id for p in working)
        node = _node(lead, on_duty, full, calls)
        department = names.get(department_id)
        node["for"] = {
            "department": department_id,
            "name": {"zh": department.name_zh, "en": department.name_en}
            if department is not None
            else {"zh": department_id, "en": department_id},
        }
        branches.append(node)
    extra: list[Person] = []
    for role in role_names:
        extra += roster.resolve_level(role, now, session=session, zone=zone)
    for person_id in people_ids:
        extra += roster.resolve_level(f"person:{person_id}", now, session=session, zone=zone)
    for person in extra:
        if person.id not in placed:
            placed.add(person.id)
            branches.append(_node(person, on_duty, full, []))
    return {
        "playbook": playbook.id,
        "title": playbook.title,
        "as_of": now.isoformat(),
        "masked": not full,
        "root": _node(root, on_duty, full, branches) if root is not None else None,
        "unplaced": [] if root is not None else branches,
    }


def _md_node(node: Mapping[str, Any], depth: int, out: list[str]) -> None:
    contacts = "; ".join(f"{c['label']}: {c['address']}" for c in node["contacts"])
    team = node.get("for")
    lead = f" — {team['name']['zh']} {team['name']['en']}" if team else ""
    duty = " (on duty 值班)" if node["on_duty"] else ""
    out.append(f"{'  ' * depth}- [ ] **{node['name']}** `{node['person']}`{lead}{duty}: {contacts}")
    for child in node["calls"]:
        _md_node(child, depth + 1, out)


def markdown(tree: Mapping[str, Any], zone: ZoneInfo) -> str:
    """The call tree as a printable Markdown checklist, times in the centre's time zone."""
    at = datetime.fromisoformat(tree["as_of"]).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    out = [
        f"# 电话树 Call tree: {tree['title'].get('zh', '')} / {tree['title'].get('en', '')}",
        "",
        f"Playbook `{tree['playbook']}`, who is on duty at {at}. Each person calls the people "
        "listed under them; tick when reached, and note who was reached by hand.",
        "每人负责呼叫其下所列人员；联系上后打勾，当面通知的请注明由谁通知。",
        "",
    ]
    if tree["root"] is not None:
        _md_node(tree["root"], 0, out)
    for node in tree["unplaced"]:
        _md_node(node, 0, out)
    if tree["masked"]:
        out += ["", "Contact addresses are masked for your role."]
    return "\n".join(out) + "\n"


def reach_by_hand(
    incident: Incident,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
) -> dict[str, Any]:
    """Record that someone without working channels was reached by hand (``{person, by,
    note}``); their open pages in this incident count as acknowledged."""
    errors = [
        FieldError(n, "is not a field here") for n in sorted(set(body) - {"person", "by", "note"})
    ]
    person_id, by, note = body.get("person"), body.get("by"), body.get("note")
    person = session.get(Person, person_id) if isinstance(person_id, str) else None
    if person is None:
        errors.append(FieldError("person", "a roster person id"))
    if not isinstance(by, str) or not by.strip() or len(by) > 100:
        errors.append(FieldError("by", "who reached them (a name or roster id)"))
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        errors.append(FieldError("note", "text of at most 500 characters"))
    if errors:
        raise ValidationFailed("the record is not valid", errors)
    assert person is not None and isinstance(by, str)
    pages = session.scalars(
        select(Page)
        .join(PageRecipient)
        .where(
            Page.incident_id == incident.id,
            Page.status.in_(_OPEN_PAGES),
            PageRecipient.person_id == person.id,
        )
        .order_by(Page.created_at, Page.id)
    ).unique()
    acked = []
    for page in pages:
        paging.acknowledge(
            page, person_id=person.id, via="hand", actor=actor, session=session, now=now
        )
        acked.append(page.id)
    timeline.append(
        incident,
        CommandEvent.REACHED_BY_HAND,
        {"person": person.id, "by": by.strip(), "note": note, "pages": acked},
        session=session,
        at=now,
        actor=actor,
    )
    log.info("reached_by_hand", incident_id=incident.id, person_id=person.id, pages=len(acked))
    return {"person": person.id, "by": by.strip(), "at": now.isoformat(), "pages": acked}
