"""Incident command roles: filled from the playbook and the rota at declaration, reassigned by
a duty manager; every change is on the timeline and a new holder is paged.

A role is filled by a department (whoever is on duty there, else its section head), a roster
role (the holder on duty: the duty director), or a person. The playbook's ``roles`` choose
per role; the defaults follow the centre's sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import paging, roster, timeline
from incident.command.events import CommandEvent
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.logs import get_logger
from incident.models import Incident, IncidentRole, Person
from incident.playbook import INCIDENT_ROLES, Playbook

log = get_logger(__name__)

ROLES = INCIDENT_ROLES
DEFAULTS: dict[str, dict[str, str]] = {
    "commander": {"role": "duty_director"},
    "public_information": {"department": "inquiry"},
    "liaison": {"department": "complaints"},
    "operations": {"department": "ticketing"},
    "planning": {"department": "coordination"},
}
COMMANDER_FALLBACK = ("deputy_director", "director")
TITLES = {
    "commander": {"zh": "现场指挥", "en": "Incident commander"},
    "public_information": {"zh": "信息发布", "en": "Public information"},
    "liaison": {"zh": "联络", "en": "Liaison"},
    "operations": {"zh": "业务处置", "en": "Operations"},
    "planning": {"zh": "计划协调", "en": "Planning"},
}
PAGE_ACK_WITHIN = timedelta(minutes=10)
_FIELDS = {"person", "note"}


def _holder(
    source: Mapping[str, str],
    at: datetime,
    *,
    session: Session,
    zone: ZoneInfo,
    snapshot: roster.DutySnapshot | None = None,
) -> Any:
    kind, name = next(iter(source.items()))
    if kind == "person":
        person = session.get(Person, name)
        return person if person is not None and person.active else None
    if kind == "department":
        people = roster.resolve_level(
            "on_duty", at, session=session, zone=zone, department_id=name, snapshot=snapshot
        )
    else:
        people = roster.resolve_level(name, at, session=session, zone=zone, snapshot=snapshot)
    return people[0] if people else None


def fill(
    incident: Incident,
    playbook: Playbook,
    *,
    session: Session,
    now: datetime,
    zone: ZoneInfo,
) -> list[IncidentRole]:
    """Fill every role at declaration (one timeline event); nobody is paged: the playbook's
    first stage pages the people it needs."""
    filled: list[IncidentRole] = []
    with session.no_autoflush:  # the roster is read once for all five roles
        snapshot = roster.DutySnapshot.load(now, session=session, zone=zone)
        holders = {}
        for role in ROLES:
            source = playbook.roles.get(role) or DEFAULTS[role]
            person = _holder(source, now, session=session, zone=zone, snapshot=snapshot)
            if person is None and role == "commander" and role not in playbook.roles:
                for fallback in COMMANDER_FALLBACK:
                    person = _holder(
                        {"role": fallback}, now, session=session, zone=zone, snapshot=snapshot
                    )
                    if person is not None:
                        break
            holders[role] = person
    for role in ROLES:
        person = holders[role]
        row = IncidentRole(
            incident_id=incident.id,
            role=role,
            person_id=person.id if person is not None else None,
            source=("playbook" if role in playbook.roles else "rota") if person else "vacant",
            assigned_at=now,
            assigned_by=None,
            changes=0,
        )
        session.add(row)
        filled.append(row)
    session.flush()
    timeline.append(
        incident,
        CommandEvent.ROLES_FILLED,
        {"roles": {r.role: r.person_id for r in filled}},
        session=session,
        at=now,
    )
    return filled


def roles_of(incident_id: str, *, session: Session) -> list[IncidentRole]:
    """The incident's roles in the order of ``ROLES``."""
    found = {
        r.role: r
        for r in session.scalars(
            select(IncidentRole).where(IncidentRole.incident_id == incident_id)
        )
    }
    return [found[role] for role in ROLES if role in found]


def assign(
    incident: Incident,
    role: str,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
    policy: paging.PagingPolicy,
) -> IncidentRole:
    """Give a role to a person: on the timeline, and the new holder is paged."""
    if role not in ROLES:
        raise NotFound(f"no role {role!r}; the roles are {', '.join(ROLES)}")
    errors = [FieldError(name, "is not a field of a role") for name in sorted(set(body) - _FIELDS)]
    person_id = body.get("person")
    person = session.get(Person, person_id) if isinstance(person_id, str) else None
    if person is None or not person.active:
        errors.append(FieldError("person", "an active roster person id is required"))
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        errors.append(FieldError("note", "text of at most 500 characters"))
    if errors:
        raise ValidationFailed("the assignment is not valid", errors)
    assert person is not None
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    row = session.scalar(
        select(IncidentRole).where(
            IncidentRole.incident_id == incident.id, IncidentRole.role == role
        )
    )
    if row is None:
        row = IncidentRole(
            incident_id=incident.id, role=role, source="vacant", assigned_at=now, changes=0
        )
        session.add(row)
    if row.person_id == person.id:
        return row
    before = row.person_id
    row.person_id = person.id
    row.source = "manual"
    row.assigned_at = now
    row.assigned_by = actor
    row.changes += 1
    session.flush()
    title = TITLES[role]
    page = paging.open_page(
        incident,
        None,
        kind="person",
        target=person.id,
        chain=[f"person:{person.id}"],
        template="",
        ack_within=PAGE_ACK_WITHIN,
        origin=f"role:{role}:{row.changes}",
        stage_key=None,
        session=session,
        now=now,
        policy=policy,
        escalates=False,
        text={
            "zh": f"【{incident.severity}级】{incident.title}：您被指定为{title['zh']}。请确认：",
            "en": f"[Level {incident.severity}] {incident.title}: you are now the "
            f"{title['en'].lower()}. Acknowledge:",
        },
    )
    timeline.append(
        incident,
        CommandEvent.ROLE_ASSIGNED,
        {
            "role": role,
            "from": before,
            "to": person.id,
            "page": page.id if page is not None else None,
            "note": note,
        },
        session=session,
        at=now,
        actor=actor,
    )
    log.info("role_assigned", incident_id=incident.id, role=role, person_id=person.id)
    return row
