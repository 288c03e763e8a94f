"""Departments, people and the duty rota: who is on duty now, and whom to escalate to.

Rota times are wall-clock times in the centre's time zone (``zone``): a shift pattern that starts
at 08:00 with 12-hour shifts changes over at 08:00 and 20:00 every day, whatever the UTC offset.
Overrides (swaps and additions) win over the pattern. Reading a roster file lives in
``roster_file``; the format is documented in ``docs/roster.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session, lazyload

from incident.logs import mask_text
from incident.models import ContactMethod, Department, Person, RotaOverride, RotaPattern
from incident.roster_file import (
    BUILTIN_ROLES,
    DEFAULT_ESCALATION,
    DEFAULT_TIMEZONE,
    ON_DUTY,
    PERSON_PREFIX,
    SECTION_HEAD,
    RosterDoc,
    ids_in_doc,
    load_roster_file,
    parse_roster_text,
)

__all__ = [
    "BUILTIN_ROLES",
    "DEFAULT_ESCALATION",
    "DEFAULT_TIMEZONE",
    "ROTATING_ROLES",
    "RosterDoc",
    "apply_roster",
    "escalation_chain",
    "ids_in_doc",
    "known_ids",
    "load_roster_file",
    "mask_contact",
    "on_duty",
    "parse_roster_text",
    "people_with_role",
    "printable_contact",
    "resolve_level",
    "section_head",
    "who_is_on_duty",
]

# Roles whose holders take turns: a level naming one means the holders on duty at that moment.
ROTATING_ROLES = frozenset({"duty_director", "on_duty_agent"})


def mask_contact(url: str) -> str:
    """A contact address for someone who may not see personal data: scheme and a hint."""
    parts = urlsplit(url)
    rest = url[len(parts.scheme) + 3 :] if parts.scheme and "://" in url else url
    masked = mask_text(rest)
    if masked == rest:
        masked = rest[:1] + "***" + (rest[-2:] if len(rest) > 4 else "")
    return f"{parts.scheme}://{masked}" if parts.scheme else masked


@functools.lru_cache(maxsize=1024)
def printable_contact(url: str) -> str:
    """A contact address for people who may see it (the printed call tree): the number or
    address stays, passwords and robot tokens do not (apprise's privacy form; a URL apprise
    does not know, such as ``tel://`` or ``inbox://``, loses its password only)."""
    import apprise

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is not None:
        private = urlsplit(str(plugin.url(privacy=True)))  # type: ignore[no-untyped-call]
        if not urlsplit(url).query:  # apprise's own defaults are noise on paper
            private = private._replace(query="")
        return urlunsplit(private)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:****@{host}"))


def apply_roster(doc: RosterDoc, *, session: Session) -> dict[str, int]:
    """Make the roster tables say what ``doc`` says; people left out become inactive."""
    session.flush()
    # Rota and contacts are replaced wholesale; nothing else points at their rows.
    for table in (RotaOverride, RotaPattern, ContactMethod):
        session.execute(delete(table).execution_options(synchronize_session=False))
    session.expire_all()

    departments = {d.id: d for d in session.scalars(select(Department))}
    for entry in doc.departments:
        department = departments.get(entry.id)
        if department is None:
            department = Department(id=entry.id)
            session.add(department)
        department.name_zh = entry.name_zh
        department.name_en = entry.name_en
        department.head_id = entry.head
        department.escalation = list(entry.escalation or doc.escalation_default)
    session.flush()

    listed = {entry.id for entry in doc.people}
    kept_departments = {entry.id for entry in doc.departments}
    people = {p.id: p for p in session.scalars(select(Person))}
    for person_entry in doc.people:
        person = people.get(person_entry.id)
        if person is None:
            person = Person(id=person_entry.id)
            session.add(person)
        person.name = person_entry.name
        person.language = person_entry.language
        person.department_id = person_entry.department
        person.roles = list(person_entry.roles)
        person.active = True
        person.contacts = [
            ContactMethod(position=position, url=contact.url, label=contact.label)
            for position, contact in enumerate(person_entry.contacts, start=1)
        ]
    for person in people.values():
        if person.id not in listed:
            # Kept, not deleted: users and past pages may point at them.
            person.active = False
            if person.department_id not in kept_departments:
                person.department_id = None
    session.flush()
    for ident, department in departments.items():
        if ident not in kept_departments:
            session.delete(department)

    for rota in doc.rota:
        session.add(
            RotaPattern(
                department_id=rota.department,
                starts_on=rota.starts_on,
                start_time=rota.start_time,
                shift_hours=rota.shift_hours,
                teams=[list(team) for team in rota.teams],
            )
        )
    for override in doc.overrides:
        session.add(
            RotaOverride(
                department_id=override.department,
                person_id=override.person,
                covers_id=override.covers,
                starts_at=override.starts_at,
                ends_at=override.ends_at,
            )
        )
    session.flush()
    return {
        "departments": len(doc.departments),
        "people": len(doc.people),
        "contacts": sum(len(p.contacts) for p in doc.people),
        "shifts": len(doc.rota),
        "overrides": len(doc.overrides),
    }


def known_ids(*, session: Session) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(department ids, roles held by anyone plus the built-in roles, active person ids)."""
    departments = frozenset(session.scalars(select(Department.id)))
    people = _active_people(session=session)
    roles = {role for person in people for role in person.roles}.union(BUILTIN_ROLES)
    return departments, frozenset(roles), frozenset(p.id for p in people)


def on_duty(department_id: str, at: datetime, *, session: Session, zone: ZoneInfo) -> list[Person]:
    """The department's active people on duty at ``at``, in rota order."""
    local = _wall_clock(at, zone)
    patterns = session.scalars(
        select(RotaPattern)
        .where(RotaPattern.department_id == department_id)
        .order_by(RotaPattern.id)
    ).all()
    overrides = session.scalars(
        _current_overrides(at).where(RotaOverride.department_id == department_id)
    ).all()
    ids = _on_duty_ids(patterns, overrides, local)
    return _people_in_order(ids, session=session)


def who_is_on_duty(
    at: datetime, *, session: Session, zone: ZoneInfo, active: list[Person] | None = None
) -> dict[str, list[Person]]:
    """Every department's people on duty at ``at`` (an empty list when nobody is); ``active``
    are the active people when the caller has read them already."""
    local = _wall_clock(at, zone)
    patterns = session.scalars(select(RotaPattern).order_by(RotaPattern.id)).all()
    overrides = session.scalars(_current_overrides(at)).all()
    duty: dict[str, list[str]] = {}
    for ident in session.scalars(select(Department.id).order_by(Department.id)):
        duty[ident] = _on_duty_ids(
            [p for p in patterns if p.department_id == ident],
            [o for o in overrides if o.department_id == ident],
            local,
        )
    people = {p.id: p for p in (_active_people(session=session) if active is None else active)}
    return {ident: [people[i] for i in ids if i in people] for ident, ids in duty.items()}


@dataclass(frozen=True)
class DutySnapshot:
    """Who is on duty at one moment and who is active, read once: for resolving several
    levels together (filling an incident's roles) without reading the roster each time."""

    on_duty: dict[str, list[Person]]
    people: list[Person]

    @classmethod
    def load(cls, at: datetime, *, session: Session, zone: ZoneInfo) -> DutySnapshot:
        people = _active_people(session=session, contacts=False)  # who, not how to reach
        return cls(who_is_on_duty(at, session=session, zone=zone, active=people), people)


def section_head(
    department_id: str, *, session: Session, snapshot: DutySnapshot | None = None
) -> Person | None:
    """The department's head, or else an active section head working in it."""
    department = session.get(Department, department_id)
    if department is None:
        return None
    if department.head_id is not None:
        head = session.get(Person, department.head_id)
        if head is not None and head.active:
            return head
    people = snapshot.people if snapshot is not None else _active_people(session=session)
    for person in people:
        if person.department_id == department_id and SECTION_HEAD in person.roles:
            return person
    return None


def escalation_chain(department_id: str, *, session: Session) -> list[str]:
    """The department's escalation levels, first to last (the default for unknown ones)."""
    department = session.get(Department, department_id)
    if department is None or not department.escalation:
        return list(DEFAULT_ESCALATION)
    return [str(level) for level in department.escalation]


def people_with_role(role: str, *, session: Session) -> list[Person]:
    """Every active person holding ``role``, by id."""
    return [p for p in _active_people(session=session) if role in p.roles]


def resolve_level(
    level: str,
    at: datetime,
    *,
    session: Session,
    zone: ZoneInfo,
    department_id: str | None = None,
    snapshot: DutySnapshot | None = None,
) -> list[Person]:
    """The people an escalation level means at ``at`` (read from ``snapshot`` when given:
    it must have been taken at ``at``).

    ``on_duty`` falls back to the section head when nobody is on duty; ``on_duty`` and
    ``section_head`` mean nobody without a department. A rotating role (``duty_director``)
    means its holders on duty at ``at``, or all its holders when none is.
    """
    if level == ON_DUTY:
        if department_id is None:
            return []
        people = (
            snapshot.on_duty.get(department_id, [])
            if snapshot is not None
            else on_duty(department_id, at, session=session, zone=zone)
        )
        if people:
            return people
        level = SECTION_HEAD
    if level == SECTION_HEAD:
        if department_id is None:
            return []
        head = section_head(department_id, session=session, snapshot=snapshot)
        return [head] if head is not None else []
    if level.startswith(PERSON_PREFIX):
        person = session.get(Person, level.removeprefix(PERSON_PREFIX))
        return [person] if person is not None and person.active else []
    if snapshot is not None:
        holders = [p for p in snapshot.people if level in p.roles]
    else:
        holders = people_with_role(level, session=session)
    if level in ROTATING_ROLES and holders:
        if snapshot is not None:
            duty = snapshot.on_duty.values()
        else:
            duty = who_is_on_duty(at, session=session, zone=zone).values()
        on = {person.id for people in duty for person in people}
        return [p for p in holders if p.id in on] or holders
    return holders


def _wall_clock(at: datetime, zone: ZoneInfo) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime refused: pass an aware datetime")
    return at.astimezone(zone).replace(tzinfo=None)


def _current_overrides(at: datetime) -> Select[RotaOverride]:
    return (
        select(RotaOverride)
        .where(RotaOverride.starts_at <= at, RotaOverride.ends_at > at)
        .order_by(RotaOverride.starts_at, RotaOverride.id)
    )


def _on_duty_ids(
    patterns: Sequence[RotaPattern], overrides: Iterable[RotaOverride], local: datetime
) -> list[str]:
    """Person ids on duty at wall-clock time ``local``: the pattern in force, then overrides.

    Patterns sharing the latest ``starts_on`` that has begun run side by side; an earlier
    ``starts_on`` is superseded. A swap takes the covered person's place; an addition joins.
    """
    begun = [(p, _first_shift(p)) for p in patterns]
    begun = [(p, start) for p, start in begun if start <= local]
    ids: list[str] = []
    if begun:
        current = max(p.starts_on for p, _ in begun)
        for pattern, start in begun:
            if pattern.starts_on != current or not pattern.teams:
                continue
            shift = (local - start) // timedelta(hours=pattern.shift_hours)
            for ident in pattern.teams[shift % len(pattern.teams)]:
                if ident not in ids:
                    ids.append(str(ident))
    for override in overrides:
        if override.covers_id is not None and override.covers_id in ids:
            place = ids.index(override.covers_id)
            if override.person_id in ids:
                del ids[place]
            else:
                ids[place] = override.person_id
        elif override.person_id not in ids:
            ids.append(override.person_id)
    return ids


def _first_shift(pattern: RotaPattern) -> datetime:
    return datetime.combine(pattern.starts_on, time.fromisoformat(pattern.start_time))


def _active_people(*, session: Session, contacts: bool = True) -> list[Person]:
    """Active people by id; without ``contacts`` their contact methods load only if used."""
    query = select(Person).where(Person.active.is_(True)).order_by(Person.id)
    if not contacts:
        query = query.options(lazyload(Person.contacts))
    return list(session.scalars(query))


def _people_in_order(ids: list[str], *, session: Session) -> list[Person]:
    if not ids:
        return []
    found = session.scalars(select(Person).where(Person.id.in_(ids), Person.active.is_(True)))
    people = {p.id: p for p in found}
    return [people[i] for i in ids if i in people]
