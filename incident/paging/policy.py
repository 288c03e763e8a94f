"""What paging needs from the settings, and who a page's levels mean."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from incident import roster
from incident.models import Page, Person
from incident.security import AckLinks

DEADLINE_JOB = "page.deadline"


BUNDLE_JOB = "delivery.bundle"


DUTY_LEVEL = "duty_director"


@dataclass(frozen=True)
class PagingPolicy:
    """What paging needs from the settings."""

    links: AckLinks
    zone: ZoneInfo
    flood_limit: int = 5
    flood_window: timedelta = timedelta(minutes=15)
    duty_ack_within: timedelta = timedelta(minutes=10)


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


def people_at(
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
