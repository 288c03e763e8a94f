"""Incident command over HTTP: roles, tasks, the situation report (JSON, Markdown, HTML),
reports to the railway authority, the call tree, "reached by hand", and shift handover.

Personal data: the call tree shows contact addresses in full only to roles that may see
personal data (``Principal.sees_personal_data``); the sitrep carries counts only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from incident import idempotency, response
from incident.command import calltree, handover, reports, roles, sitrep, tasks
from incident.models import AuthorityReport, IncidentRole
from incident.security import Principal
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.auth import principal
from incident.web.problems import BadRequest
from incident.web.requests import limit_param, read_json_object
from incident.web.state import state_of
from incident.web.views import iso

STAFF = ("staff", *RUNS_INCIDENTS)
FORMATS = ("json", "md", "html")
ROLE_FIELDS = ("person", "note")
TASK_FIELDS = ("title", "department", "person", "due_at", "due_minutes", "note")
TASK_CHANGE_FIELDS = ("status", "note", "due_at", "department", "person")
REPORT_FIELDS = ("fields",)
SUBMIT_FIELDS = ("to", "via")
HAND_FIELDS = ("person", "by", "note")
HANDOVER_FIELDS = ("outgoing", "note")
PRINT_CSS = Path(__file__).resolve().parent / "static" / "print.css"

pages = Environment(
    loader=PackageLoader("incident.web", "templates"), autoescape=select_autoescape(default=True)
)


def _local(value: object, zone: ZoneInfo) -> str:
    """An ISO time shown in the centre's time zone, ``—`` when there is none."""
    if not isinstance(value, str):
        return "—"
    try:
        return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


pages.filters["local"] = _local


def _format(request: Request, default: str = "json") -> str:
    chosen = request.query_params.get("format", default)
    if chosen not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}")
    return chosen


def role_json(row: IncidentRole) -> dict[str, Any]:
    return {
        "role": row.role,
        "title": roles.TITLES[row.role],
        "person": row.person_id,
        "source": row.source,
        "assigned_at": iso(row.assigned_at),
        "assigned_by": row.assigned_by,
        "changes": row.changes,
    }


def report_json(report: AuthorityReport) -> dict[str, Any]:
    return {
        "id": report.id,
        "incident_id": report.incident_id,
        "number": report.number,
        "kind": report.kind,
        "reason": report.reason,
        "status": report.status,
        "fields": report.fields,
        "due_at": iso(report.due_at),
        "overdue": report.overdue_at is not None and report.status == "draft",
        "created_at": iso(report.created_at),
        "created_by": report.created_by,
        "submitted_at": iso(report.submitted_at),
        "submitted_by": report.submitted_by,
        "submitted_to": report.submitted_to,
        "submitted_via": report.submitted_via,
    }


Made = tuple[int, dict[str, Any]]


async def _create(
    request: Request,
    who: Principal,
    route: str,
    raw: bytes,
    make: Callable[[Session, datetime], Made],
) -> Made:
    """Run a creating request, honouring ``Idempotency-Key`` (scoped to user and route)."""
    key = request.headers.get("idempotency-key")
    digest = idempotency.digest(raw)

    def run(session: Session, now: datetime) -> Made:
        if key is not None:
            seen = idempotency.recall(who.user_id, route, key, digest, session=session, now=now)
            if seen is not None:
                return seen
        status, view = make(session, now)
        if key is not None:
            idempotency.remember(
                who.user_id, route, key, digest, status, view, session=session, now=now
            )
        return status, view

    try:
        return await write(request, run)
    except IntegrityError:
        if key is None:
            raise
        return await write(request, run)  # a concurrent twin won: return its result


# -- situation report ---------------------------------------------------------------------------
async def get_sitrep(request: Request) -> Response:
    """The situation report (``?format=md`` or ``html`` for the renderings)."""
    return await _sitrep(request, _format(request))


async def get_sitrep_md(request: Request) -> Response:
    """The situation report as Markdown."""
    return await _sitrep(request, "md")


async def get_sitrep_html(request: Request) -> Response:
    """The situation report as a printable HTML page."""
    return await _sitrep(request, "html")


def sitrep_of(request: Request, session: Session, incident_id: str) -> dict[str, Any]:
    state = state_of(request)
    incident = response.get_incident(incident_id, session=session)
    playbook = response.playbook_of(incident, state.catalog)
    return sitrep.situation(incident, playbook, session=session, now=state.clock.now())


def render_sitrep(request: Request, data: dict[str, Any], fmt: str) -> Response:
    zone = state_of(request).settings.zone
    if fmt == "md":
        return PlainTextResponse(sitrep.markdown(data, zone), media_type="text/markdown")
    if fmt == "html":
        html = pages.get_template("sitrep.html").render(
            s=data, markdown=sitrep.markdown(data, zone), zone=zone
        )
        return HTMLResponse(html)
    return JSONResponse(data)


async def _sitrep(request: Request, fmt: str) -> Response:
    principal(request)
    incident_id = request.path_params["incident_id"]
    data = await read(request, lambda s: sitrep_of(request, s, incident_id))
    return render_sitrep(request, data, fmt)


# -- roles --------------------------------------------------------------------------------------
async def list_roles(request: Request) -> Response:
    """Who holds each command role of the incident."""
    principal(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        response.get_incident(incident_id, session=session)
        found = roles.roles_of(incident_id, session=session)
        return {"items": [role_json(r) for r in found], "next_cursor": None}

    return JSONResponse(await read(request, run))


async def assign_role(request: Request) -> Response:
    """Give a command role to a person: on the timeline, and the new holder is paged."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, _ = await read_json_object(request, allowed=ROLE_FIELDS)
    state = state_of(request)
    incident_id, role = request.path_params["incident_id"], request.path_params["role"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        incident = response.get_incident(incident_id, session=session)
        row = roles.assign(
            incident,
            role,
            body,
            session=session,
            now=now,
            actor=who.name,
            policy=state.ctx.policy,
        )
        return role_json(row)

    return JSONResponse(await write(request, run))


# -- tasks --------------------------------------------------------------------------------------
async def open_task(request: Request) -> Response:
    """A task for a department or person with a due time."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, raw = await read_json_object(request, allowed=TASK_FIELDS)
    incident_id = request.path_params["incident_id"]

    def make(session: Session, now: datetime) -> Made:
        incident = response.get_incident(incident_id, session=session)
        task = tasks.open_task(incident, body, session=session, now=now, actor=who.name)
        return 201, sitrep.task_json(task, now)

    status, view = await _create(
        request, who, f"POST /api/incidents/{incident_id}/tasks", raw, make
    )
    return JSONResponse(view, status_code=status, headers={"Location": f"/api/tasks/{view['id']}"})


async def list_incident_tasks(request: Request) -> Response:
    """An incident's tasks, open and done, in the order they were made."""
    principal(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        response.get_incident(incident_id, session=session)
        now = state.clock.now()
        found = tasks.tasks_of(incident_id, session=session)
        return {"items": [sitrep.task_json(t, now) for t in found], "next_cursor": None}

    return JSONResponse(await read(request, run))


async def list_tasks(request: Request) -> Response:
    """Open tasks of every incident, soonest due first (``?overdue=true`` for the late ones)."""
    principal(request)
    state = state_of(request)
    overdue = request.query_params.get("overdue")
    if overdue not in (None, "true", "false"):
        raise BadRequest("overdue must be true or false")
    limit = limit_param(request, default=200)

    def run(session: Session) -> dict[str, Any]:
        now = state.clock.now()
        if overdue == "true":
            found = tasks.overdue_tasks(session=session, now=now, limit=limit)
        else:
            found = tasks.open_tasks(session=session, limit=limit)
        return {"items": [sitrep.task_json(t, now) for t in found], "next_cursor": None}

    return JSONResponse(await read(request, run))


async def get_task(request: Request) -> Response:
    """One task."""
    principal(request)
    state = state_of(request)
    task_id = request.path_params["task_id"]

    def run(session: Session) -> dict[str, Any]:
        return sitrep.task_json(tasks.get_task(task_id, session=session), state.clock.now())

    return JSONResponse(await read(request, run))


async def change_task(request: Request) -> Response:
    """Acknowledge, update or finish a task: its owner (staff) or a duty manager."""
    who = principal(request)
    who.require(*STAFF)
    body, _ = await read_json_object(request, allowed=TASK_CHANGE_FIELDS)
    task_id = request.path_params["task_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        task = tasks.get_task(task_id, session=session)
        tasks.change(
            task,
            body,
            session=session,
            now=now,
            actor=who.name,
            role=who.role,
            person_id=who.person_id,
        )
        return sitrep.task_json(task, now)

    return JSONResponse(await write(request, run))


# -- reports to the railway authority ----------------------------------------------------------
async def open_report(request: Request) -> Response:
    """Draft a report to the authority from what the incident knows (fields given win)."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, raw = await read_json_object(request, allowed=REPORT_FIELDS)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def make(session: Session, now: datetime) -> Made:
        incident = response.get_incident(incident_id, session=session)
        playbook = response.playbook_of(incident, state.catalog)
        report = reports.open_report(
            incident, playbook, body, session=session, now=now, actor=who.name
        )
        return 201, report_json(report)

    status, view = await _create(
        request, who, f"POST /api/incidents/{incident_id}/authority-reports", raw, make
    )
    return JSONResponse(
        view, status_code=status, headers={"Location": f"/api/authority-reports/{view['id']}"}
    )


async def list_reports(request: Request) -> Response:
    """An incident's reports to the authority, first to last."""
    principal(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        response.get_incident(incident_id, session=session)
        found = reports.reports_of(incident_id, session=session)
        return {"items": [report_json(r) for r in found], "next_cursor": None}

    return JSONResponse(await read(request, run))


async def get_report(request: Request) -> Response:
    """One report to the authority (``?format=md`` to read it out or send it)."""
    principal(request)
    fmt = _format(request)
    if fmt == "html":
        raise BadRequest("format must be json or md")
    report_id = request.path_params["report_id"]

    def run(session: Session) -> tuple[dict[str, Any], str]:
        report = reports.get_report(report_id, session=session)
        incident = response.get_incident(report.incident_id, session=session)
        return report_json(report), reports.markdown(report, incident)

    view, text = await read(request, run)
    if fmt == "md":
        return PlainTextResponse(text, media_type="text/markdown")
    return JSONResponse(view)


async def change_report(request: Request) -> Response:
    """Complete a draft report's fields (merged)."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, _ = await read_json_object(request, allowed=REPORT_FIELDS)
    report_id = request.path_params["report_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        report = reports.get_report(report_id, session=session)
        reports.change(report, body, session=session, now=now, actor=who.name)
        return report_json(report)

    return JSONResponse(await write(request, run))


async def submit_report(request: Request) -> Response:
    """Record that the report went up to the authority: to whom, and how."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, _ = await read_json_object(request, allowed=SUBMIT_FIELDS)
    report_id = request.path_params["report_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        report = reports.get_report(report_id, session=session)
        reports.submit(report, body, session=session, now=now, actor=who.name)
        return report_json(report)

    return JSONResponse(await write(request, run))


# -- when chat and phones are down -------------------------------------------------------------
async def get_calltree(request: Request) -> Response:
    """The printable call tree of a playbook's roster (``?format=md`` or ``html``)."""
    who = principal(request)
    fmt = _format(request)
    state = state_of(request)
    playbook = state.catalog.get(request.path_params["playbook_id"])

    def run(session: Session) -> dict[str, Any]:
        return calltree.call_tree(
            playbook,
            session=session,
            now=state.clock.now(),
            zone=state.settings.zone,
            full=who.sees_personal_data,
        )

    tree = await read(request, run)
    return render_calltree(request, tree, fmt)


def render_calltree(request: Request, tree: dict[str, Any], fmt: str) -> Response:
    zone = state_of(request).settings.zone
    if fmt == "md":
        return PlainTextResponse(calltree.markdown(tree, zone), media_type="text/markdown")
    if fmt == "html":
        return HTMLResponse(pages.get_template("calltree.html").render(tree=tree, zone=zone))
    return JSONResponse(tree)


async def reached_by_hand(request: Request) -> Response:
    """Record that someone without working channels was reached by hand, and by whom."""
    who = principal(request)
    who.require(*STAFF)
    body, raw = await read_json_object(request, allowed=HAND_FIELDS)
    incident_id = request.path_params["incident_id"]

    def make(session: Session, now: datetime) -> Made:
        incident = response.get_incident(incident_id, session=session)
        return 201, calltree.reach_by_hand(incident, body, session=session, now=now, actor=who.name)

    status, view = await _create(
        request, who, f"POST /api/incidents/{incident_id}/reached-by-hand", raw, make
    )
    return JSONResponse(view, status_code=status)


# -- shift handover -----------------------------------------------------------------------------
async def get_handover(request: Request) -> Response:
    """What the outgoing duty manager hands over: every incident not closed and what is open."""
    principal(request)
    state = state_of(request)
    view = await read(request, lambda s: handover.handover_list(session=s, now=state.clock.now()))
    return JSONResponse(view)


async def acknowledge_handover(request: Request) -> Response:
    """The incoming duty manager acknowledges the handover (recorded with what was open)."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, raw = await read_json_object(request, allowed=HANDOVER_FIELDS)

    def make(session: Session, now: datetime) -> Made:
        made = handover.acknowledge(body, session=session, now=now, incoming=who.name)
        return 201, handover.handover_json(made)

    status, view = await _create(request, who, "POST /api/handovers", raw, make)
    return JSONResponse(
        view, status_code=status, headers={"Location": f"/api/handovers/{view['id']}"}
    )


async def list_handovers(request: Request) -> Response:
    """Recorded handovers, newest first."""
    principal(request)
    limit = limit_param(request)

    def run(session: Session) -> dict[str, Any]:
        found = handover.handovers(session=session, limit=limit)
        return {
            "items": [handover.handover_json(h, snapshot=False) for h in found],
            "next_cursor": None,
        }

    return JSONResponse(await read(request, run))


async def get_recorded_handover(request: Request) -> Response:
    """One recorded handover with what was open when it was acknowledged."""
    principal(request)
    handover_id = request.path_params["handover_id"]

    def run(session: Session) -> dict[str, Any]:
        return handover.handover_json(handover.get_handover(handover_id, session=session))

    return JSONResponse(await read(request, run))


routes = [
    Route("/api/incidents/{incident_id}/sitrep", get_sitrep, methods=["GET"]),
    Route("/api/incidents/{incident_id}/sitrep.md", get_sitrep_md, methods=["GET"]),
    Route("/api/incidents/{incident_id}/sitrep.html", get_sitrep_html, methods=["GET"]),
    Route("/api/incidents/{incident_id}/roles", list_roles, methods=["GET"]),
    Route("/api/incidents/{incident_id}/roles/{role}", assign_role, methods=["PUT"]),
    Route("/api/incidents/{incident_id}/tasks", open_task, methods=["POST"]),
    Route("/api/incidents/{incident_id}/tasks", list_incident_tasks, methods=["GET"]),
    Route("/api/tasks", list_tasks, methods=["GET"]),
    Route("/api/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/api/tasks/{task_id}", change_task, methods=["PATCH"]),
    Route("/api/incidents/{incident_id}/authority-reports", open_report, methods=["POST"]),
    Route("/api/incidents/{incident_id}/authority-reports", list_reports, methods=["GET"]),
    Route("/api/authority-reports/{report_id}", get_report, methods=["GET"]),
    Route("/api/authority-reports/{report_id}", change_report, methods=["PATCH"]),
    Route("/api/authority-reports/{report_id}/submit", submit_report, methods=["POST"]),
    Route("/api/incidents/{incident_id}/reached-by-hand", reached_by_hand, methods=["POST"]),
    Route("/api/playbooks/{playbook_id}/calltree", get_calltree, methods=["GET"]),
    Route("/api/handover", get_handover, methods=["GET"]),
    Route("/api/handovers", acknowledge_handover, methods=["POST"]),
    Route("/api/handovers", list_handovers, methods=["GET"]),
    Route("/api/handovers/{handover_id}", get_recorded_handover, methods=["GET"]),
]
