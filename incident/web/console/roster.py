"""Departments, people and who is on duty now; a test message to a person's contacts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import paging, roster
from incident.models import Delivery, Department, Person
from incident.roster import mask_contact
from incident.security import Principal
from incident.web.api import read, write
from incident.web.console.errors import console_page
from incident.web.console.labels import Pair
from incident.web.console.names import Names
from incident.web.console.pages import render, see_other
from incident.web.console.session import flash, read_form
from incident.web.state import state_of

TESTS_SHOWN = 3
TESTS_LOOKED_AT = 500


@dataclass(frozen=True)
class TestResult:
    contact: int
    status: str
    at: datetime


@dataclass(frozen=True)
class PersonRow:
    id: str
    name: str
    department: Pair
    roles: list[str]
    language: str
    contacts: list[str]
    on_duty: bool
    tests: list[TestResult]


@dataclass(frozen=True)
class DepartmentRow:
    id: str
    name: Pair
    head: str
    escalation: list[Pair]
    on_duty: list[str]


@dataclass(frozen=True)
class RosterView:
    departments: list[DepartmentRow]
    people: list[PersonRow]


def roster_view(*, session: Session, now: datetime, zone: ZoneInfo, user: Principal) -> RosterView:
    """Departments with who is on duty at ``now``, and active people with their contacts
    (masked for roles that may not see personal data) and their last test messages."""
    names = Names.load(session)
    duty = roster.who_is_on_duty(now, session=session, zone=zone)
    on = {p.id for people in duty.values() for p in people}
    tests: dict[str, list[TestResult]] = {}
    recent = session.scalars(
        select(Delivery)
        .where(Delivery.purpose == "test")
        .order_by(Delivery.id.desc())
        .limit(TESTS_LOOKED_AT)
    )
    for d in recent:
        if d.person_id is not None and len(tests.setdefault(d.person_id, [])) < TESTS_SHOWN:
            tests[d.person_id].append(
                TestResult((d.contact_position or 0) + 1, d.status, d.created_at)
            )
    departments = [
        DepartmentRow(
            id=d.id,
            name=(d.name_zh, d.name_en),
            head=names.person(d.head_id),
            escalation=[
                names.level(level) for level in roster.escalation_chain(d.id, session=session)
            ],
            on_duty=[p.name for p in duty.get(d.id, [])],
        )
        for d in session.scalars(select(Department).order_by(Department.id))
    ]
    people = [
        PersonRow(
            id=p.id,
            name=p.name,
            department=names.department(p.department_id) if p.department_id else ("", ""),
            roles=[str(r) for r in p.roles],
            language=p.language,
            contacts=[
                c.url if user.sees_personal_data else mask_contact(c.url) for c in p.contacts
            ],
            on_duty=p.id in on,
            tests=tests.get(p.id, []),
        )
        for p in session.scalars(
            select(Person).where(Person.active.is_(True)).order_by(Person.department_id, Person.id)
        )
    ]
    return RosterView(departments, people)


@console_page
async def show(request: Request, user: Principal) -> Response:
    """Departments, people, and who is on duty now."""
    state = state_of(request)
    view = await read(
        request,
        lambda session: roster_view(
            session=session, now=state.clock.now(), zone=state.settings.zone, user=user
        ),
    )
    return render(request, "console/roster.html", user=user, view=view)


@console_page
async def test_contacts(request: Request, user: Principal) -> Response:
    """Queue a test message to each of a person's contact methods (the worker sends them)."""
    user.require("duty_manager")
    await read_form(request)
    person_id = request.path_params["person_id"]

    def run(session: Session, now: datetime) -> int:
        return len(paging.test_contacts(person_id, session=session, now=now, direct=False))

    count = await write(request, run)
    flash(
        request,
        f"已向 {person_id} 的 {count} 个联系方式发送测试消息。",
        f"{count} test message(s) queued for {person_id}.",
        "ok",
    )
    return see_other(f"/roster#person-{person_id}")


routes = [
    Route("/roster", show, methods=["GET"], include_in_schema=False),
    Route(
        "/roster/people/{person_id}/test", test_contacts, methods=["POST"], include_in_schema=False
    ),
]
