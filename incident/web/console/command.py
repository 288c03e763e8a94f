"""Command on the console: roles and tasks on the incident page, the printable situation
report and call tree, overdue tasks for the dashboard, and the shift handover page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import response
from incident.command import calltree, handover, roles, tasks
from incident.errors import Conflict, Forbidden, NotFound, ValidationFailed
from incident.models import Department, Incident, Person, Task
from incident.security import Principal
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.command_api import render_calltree, render_sitrep, sitrep_of
from incident.web.console.errors import console_page
from incident.web.console.labels import Pair
from incident.web.console.names import Names
from incident.web.console.pages import HEADERS, render, see_other
from incident.web.console.session import flash, read_form
from incident.web.state import state_of

STAFF = ("staff", *RUNS_INCIDENTS)


@dataclass(frozen=True)
class RoleRow:
    role: str
    person: str | None
    name: str
    source: str


@dataclass(frozen=True)
class TaskRow:
    task: Task
    owner: Pair
    overdue: bool
    may_change: bool


@dataclass(frozen=True)
class CommandView:
    roles: list[RoleRow]
    tasks: list[TaskRow]
    people: list[tuple[str, str]]  # (id, name) of active people, for the forms
    departments: list[tuple[str, Pair]]


def _owner(task: Task, names: Names) -> Pair:
    if task.person_id is not None:
        name = names.person(task.person_id)
        return (name, name)
    return names.department(str(task.department_id))


def task_rows(
    found: list[Task], *, session: Session, now: datetime, user: Principal, names: Names
) -> list[TaskRow]:
    return [
        TaskRow(
            t,
            _owner(t, names),
            tasks.is_overdue(t, now),
            t.status != "done"
            and tasks.may_change(t, role=user.role, person_id=user.person_id, session=session),
        )
        for t in found
    ]


def command_view(
    incident_id: str, *, session: Session, now: datetime, user: Principal
) -> CommandView:
    """The roles and tasks of one incident, with who may change which task."""
    names = Names.load(session)
    people = list(
        session.scalars(select(Person).where(Person.active.is_(True)).order_by(Person.id))
    )
    departments = list(session.scalars(select(Department).order_by(Department.id)))
    return CommandView(
        roles=[
            RoleRow(r.role, r.person_id, names.person(r.person_id), r.source)
            for r in roles.roles_of(incident_id, session=session)
        ],
        tasks=task_rows(
            tasks.tasks_of(incident_id, session=session),
            session=session,
            now=now,
            user=user,
            names=names,
        ),
        people=[(p.id, p.name) for p in people],
        departments=[(d.id, (d.name_zh, d.name_en)) for d in departments],
    )


def overdue_for_dashboard(
    *, session: Session, now: datetime, running: list[str]
) -> list[tuple[Incident, Task, Pair]]:
    """Overdue tasks of running incidents, most overdue first, with their owners."""
    names = Names.load(session)
    found = [t for t in tasks.overdue_tasks(session=session, now=now) if t.incident_id in running]
    incidents = {i: session.get(Incident, i) for i in {t.incident_id for t in found}}
    return [
        (incident, t, _owner(t, names))
        for t in found
        if (incident := incidents[t.incident_id]) is not None
    ]


def _detail(exc: Exception) -> str:
    if isinstance(exc, ValidationFailed) and exc.errors:
        return "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
    return str(exc)


def _print(response_: Response) -> Response:
    response_.headers.update(HEADERS)
    return response_


@console_page
async def assign_role(request: Request, user: Principal) -> Response:
    """Give a command role to someone (they are paged)."""
    user.require(*RUNS_INCIDENTS)
    form = await read_form(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    role = form.get("role", "")

    def run(session: Session, now: datetime) -> None:
        incident = response.get_incident(incident_id, session=session)
        roles.assign(
            incident,
            role,
            {"person": form.get("person", "")},
            session=session,
            now=now,
            actor=user.name,
            policy=state.ctx.policy,
        )

    try:
        await write(request, run)
    except (ValidationFailed, Conflict, NotFound) as exc:
        flash(request, f"未调整分工：{_detail(exc)}", f"Role not assigned: {_detail(exc)}", "error")
    else:
        flash(
            request, "分工已调整，已呼叫新负责人。", "Role assigned; the new holder is paged.", "ok"
        )
    return see_other(f"/incidents/{incident_id}#command")


def task_body(form: Mapping[str, str]) -> dict[str, Any]:
    """The task the form describes: ``owner`` is ``department:ID`` or ``person:ID``."""
    body: dict[str, Any] = {"title": form.get("title", "").strip()}
    kind, _, ident = form.get("owner", "").partition(":")
    if kind in ("department", "person") and ident:
        body[kind] = ident
    minutes = form.get("due_minutes", "").strip()
    if minutes:
        body["due_minutes"] = int(minutes) if minutes.isdigit() else minutes
    return body


@console_page
async def open_task(request: Request, user: Principal) -> Response:
    """Give a task to a department or person, due in some minutes."""
    user.require(*RUNS_INCIDENTS)
    form = await read_form(request)
    incident_id = request.path_params["incident_id"]
    body = task_body(form)

    def run(session: Session, now: datetime) -> None:
        incident = response.get_incident(incident_id, session=session)
        tasks.open_task(incident, body, session=session, now=now, actor=user.name)

    try:
        await write(request, run)
    except (ValidationFailed, Conflict) as exc:
        flash(request, f"未布置任务：{_detail(exc)}", f"Task not given: {_detail(exc)}", "error")
    else:
        flash(request, "任务已布置。", "Task given.", "ok")
    return see_other(f"/incidents/{incident_id}#command")


@console_page
async def change_task(request: Request, user: Principal) -> Response:
    """Acknowledge or finish a task (its owner, or a duty manager)."""
    user.require(*STAFF)
    form = await read_form(request)
    task_id = request.path_params["task_id"]
    status = form.get("status", "")

    def run(session: Session, now: datetime) -> str:
        task = tasks.get_task(task_id, session=session)
        tasks.change(
            task,
            {"status": status},
            session=session,
            now=now,
            actor=user.name,
            role=user.role,
            person_id=user.person_id,
        )
        return task.incident_id

    try:
        incident_id = await write(request, run)
    except (ValidationFailed, Conflict, Forbidden) as exc:
        flash(request, f"任务未更新：{_detail(exc)}", f"Task not changed: {_detail(exc)}", "error")
        incident_id = await read(request, lambda s: tasks.get_task(task_id, session=s).incident_id)
    else:
        flash(request, "任务已更新。", "Task updated.", "ok")
    return see_other(f"/incidents/{incident_id}#command")


@console_page
async def print_sitrep(request: Request, user: Principal) -> Response:
    """The situation report, printable (``?format=md`` for Markdown)."""
    incident_id = request.path_params["incident_id"]
    fmt = "md" if request.query_params.get("format") == "md" else "html"
    data = await read(request, lambda s: sitrep_of(request, s, incident_id))
    return _print(render_sitrep(request, data, fmt))


@console_page
async def print_calltree(request: Request, user: Principal) -> Response:
    """The call tree of a playbook, printable (numbers masked for roles that need not see
    them; ``?format=md`` for Markdown)."""
    state = state_of(request)
    playbook = state.catalog.get(request.path_params["playbook_id"])
    fmt = "md" if request.query_params.get("format") == "md" else "html"
    tree = await read(
        request,
        lambda s: calltree.call_tree(
            playbook,
            session=s,
            now=state.clock.now(),
            zone=state.settings.zone,
            full=user.sees_personal_data,
        ),
    )
    return _print(render_calltree(request, tree, fmt))


@console_page
async def show_handover(request: Request, user: Principal) -> Response:
    """What the outgoing duty manager hands over; the incoming one acknowledges it here."""
    state = state_of(request)

    def run(session: Session) -> tuple[dict[str, Any], list[Any]]:
        listing = handover.handover_list(session=session, now=state.clock.now())
        return listing, handover.handovers(session=session, limit=10)

    listing, recent = await read(request, run)
    return render(
        request,
        "console/handover.html",
        user=user,
        listing=listing,
        recent=recent,
        as_time=datetime.fromisoformat,
    )


@console_page
async def acknowledge_handover(request: Request, user: Principal) -> Response:
    """The incoming duty manager takes over the shift (recorded with what is open)."""
    user.require(*RUNS_INCIDENTS)
    form = await read_form(request)
    body = {k: form[k].strip() for k in ("outgoing", "note") if form.get(k, "").strip()}

    def run(session: Session, now: datetime) -> None:
        handover.acknowledge(body, session=session, now=now, incoming=user.name)

    try:
        await write(request, run)
    except ValidationFailed as exc:
        flash(request, f"未交接：{_detail(exc)}", f"Not taken over: {_detail(exc)}", "error")
    else:
        flash(request, "已确认交接班。", "Handover acknowledged.", "ok")
    return see_other("/handover")


routes = [
    Route("/incidents/{incident_id}/roles", assign_role, methods=["POST"], include_in_schema=False),
    Route("/incidents/{incident_id}/tasks", open_task, methods=["POST"], include_in_schema=False),
    Route("/tasks/{task_id}", change_task, methods=["POST"], include_in_schema=False),
    Route(
        "/incidents/{incident_id}/sitrep", print_sitrep, methods=["GET"], include_in_schema=False
    ),
    Route(
        "/playbooks/{playbook_id}/calltree",
        print_calltree,
        methods=["GET"],
        include_in_schema=False,
    ),
    Route("/handover", show_handover, methods=["GET"], include_in_schema=False),
    Route("/handover", acknowledge_handover, methods=["POST"], include_in_schema=False),
]
