"""Drills over HTTP: schedules, starting a drill, metrics, evaluations, reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from incident import drills
from incident.drills.reports import report_data
from incident.errors import FieldError, ValidationFailed
from incident.models import CorrectiveAction, DrillSchedule, Evaluation, Incident
from incident.web.api import read, write
from incident.web.auth import principal
from incident.web.problems import BadRequest
from incident.web.requests import read_json_object, unknown_fields
from incident.web.state import state_of
from incident.web.views import iso

RUNS_DRILLS = ("evaluator", "duty_manager")
DRILL_FIELDS = ("playbook", "severity", "facts", "title", "participants", "channels")
SCHEDULE_FIELDS = (*DRILL_FIELDS, "cron")
EVALUATION_FIELDS = ("ratings", "strengths", "improvements", "corrective_actions", "notes")
EVALUATION_ITEM_FIELDS = {
    "ratings": ("task", "rating", "notes"),
    "improvements": ("finding", "root_cause"),
    "corrective_actions": ("title", "owner", "due_at", "playbook"),
}
_pages = Environment(
    loader=PackageLoader("incident.web", "templates"), autoescape=select_autoescape(default=True)
)


def schedule_json(s: DrillSchedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "playbook": s.playbook_id,
        "cron": s.cron,
        "title": s.title,
        "severity": s.severity,
        "facts": s.facts,
        "participants": s.participants,
        "channels": s.channels,
        "active": s.active,
        "next_run_at": iso(s.next_run_at),
        "last_run_at": iso(s.last_run_at),
        "created_at": iso(s.created_at),
        "created_by": s.created_by,
    }


def evaluation_json(e: Evaluation) -> dict[str, Any]:
    return {
        "id": e.id,
        "incident": e.incident_id,
        "evaluator": e.evaluator,
        "ratings": e.ratings,
        "strengths": e.strengths,
        "improvements": e.improvements,
        "notes": e.notes,
        "created_at": iso(e.created_at),
    }


def action_json(a: CorrectiveAction, now: datetime) -> dict[str, Any]:
    return {
        "id": a.id,
        "incident": a.incident_id,
        "evaluation": a.evaluation_id,
        "title": a.title,
        "owner": a.owner_id,
        "due_at": iso(a.due_at),
        "status": a.status,
        "overdue": a.status != "done" and a.due_at < now,
        "playbook": a.playbook_id,
        "done_at": iso(a.done_at),
    }


def _strings(value: object, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{field} must be a list of strings", status=422)
    return list(value)


def _channel_names(value: object, allowed: dict[str, str]) -> list[str]:
    """The drill channels a request names: names an admin configured
    (``INCIDENT_DRILL_CHANNELS``, and ``default``), never URLs."""
    names = _strings(value, "channels")
    errors = [
        FieldError(
            f"channels.{n}",
            "give the name of a configured drill channel, not a URL"
            if "://" in name or ":" in name
            else f"is not a configured drill channel (choose from {', '.join(sorted(allowed))})",
        )
        for n, name in enumerate(names)
        if name not in allowed
    ]
    if errors:
        raise ValidationFailed(
            "drill channels are named from the configured list (INCIDENT_DRILL_CHANNELS)", errors
        )
    return list(dict.fromkeys(names))


def _reject_unknown_items(body: dict[str, Any]) -> None:
    """An evaluation's rows take only their own fields (``corrective_actions.0.status`` is
    refused, not ignored)."""
    errors = [
        error
        for key, allowed in EVALUATION_ITEM_FIELDS.items()
        if isinstance(body.get(key), list)
        for n, item in enumerate(body[key])
        if isinstance(item, dict)
        for error in unknown_fields(item, allowed, prefix=f"{key}.{n}.")
    ]
    if errors:
        raise ValidationFailed("the evaluation has fields it does not take", errors)


async def list_schedules(request: Request) -> Response:
    """Cron schedules of drills per playbook, with the next runs."""
    principal(request)
    state = state_of(request)

    def run(session: Session) -> dict[str, Any]:
        items = [
            schedule_json(s)
            for s in session.scalars(
                select(DrillSchedule).order_by(DrillSchedule.created_at.desc())
            )
        ]
        upcoming = drills.upcoming(session=session, now=state.clock.now(), zone=state.settings.zone)
        return {
            "items": items,
            "next_cursor": None,
            "upcoming": [{**u, "at": iso(u["at"])} for u in upcoming[:20]],
        }

    return JSONResponse(await read(request, run))


async def add_schedule(request: Request) -> Response:
    """Add a drill schedule (cron in the centre's time zone)."""
    who = principal(request)
    who.require(*RUNS_DRILLS)
    body, _ = await read_json_object(request, allowed=SCHEDULE_FIELDS)
    state = state_of(request)
    participants = _strings(body.get("participants"), "participants")
    channels = _channel_names(body.get("channels"), state.settings.drill_channel_urls())

    def run(session: Session, now: datetime) -> dict[str, Any]:
        schedule = drills.add_schedule(
            session=session,
            now=now,
            zone=state.settings.zone,
            catalog=state.catalog,
            playbook_id=body.get("playbook"),
            cron=body.get("cron"),
            severity=body.get("severity"),
            facts=body.get("facts", {}),
            title=body.get("title"),
            participants=participants,
            channels=channels,
            actor=who.name,
        )
        return schedule_json(schedule)

    return JSONResponse(await write(request, run), status_code=201)


async def start_drill(request: Request) -> Response:
    """Start a drill now: an incident in mode drill running the real playbook."""
    who = principal(request)
    who.require(*RUNS_DRILLS)
    body, _ = await read_json_object(request, allowed=DRILL_FIELDS)
    state = state_of(request)
    participants = _strings(body.get("participants"), "participants")
    channels = _channel_names(body.get("channels"), state.settings.drill_channel_urls())

    def run(session: Session, now: datetime) -> dict[str, Any]:
        incident = drills.start_drill(
            session=session,
            now=now,
            catalog=state.catalog,
            playbook_id=body.get("playbook"),
            severity=body.get("severity"),
            facts=body.get("facts", {}),
            title=body.get("title"),
            participants=participants,
            channels=channels,
            actor=who.name,
        )
        return {
            "id": incident.id,
            "mode": incident.mode,
            "playbook": incident.playbook_id,
            "participants": incident.participants or [],
            "declared_at": iso(incident.declared_at),
        }

    view = await write(request, run)
    return JSONResponse(view, status_code=201, headers={"Location": f"/api/incidents/{view['id']}"})


async def list_drills(request: Request) -> Response:
    """Past and running drills, newest first, with the upcoming scheduled ones."""
    principal(request)
    state = state_of(request)

    def run(session: Session) -> dict[str, Any]:
        found = session.scalars(
            select(Incident)
            .where(Incident.mode == "drill")
            .order_by(Incident.declared_at.desc())
            .limit(100)
        )
        upcoming = drills.upcoming(
            session=session, now=state.clock.now(), zone=state.settings.zone, per_schedule=1
        )
        return {
            "items": [
                {
                    "id": i.id,
                    "playbook": i.playbook_id,
                    "title": i.title,
                    "status": i.status,
                    "declared_at": iso(i.declared_at),
                    "schedule": i.drill_schedule_id,
                }
                for i in found
            ],
            "upcoming": [{**u, "at": iso(u["at"])} for u in upcoming],
            "next_cursor": None,
        }

    return JSONResponse(await read(request, run))


async def metrics(request: Request) -> Response:
    """Measured: time to first page, to acknowledge per department and level, to first
    notice, escalations, unreachable people, stages on time."""
    principal(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        return drills.measure(incident_id, session=session, catalog=state.catalog).as_json()

    return JSONResponse(await read(request, run))


async def add_evaluation(request: Request) -> Response:
    """Ratings per critical task (P/S/M/U), strengths, areas for improvement, corrective
    actions (owner, due)."""
    who = principal(request)
    who.require("evaluator")
    body, _ = await read_json_object(request, allowed=EVALUATION_FIELDS)
    _reject_unknown_items(body)
    incident_id = request.path_params["incident_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        evaluation = drills.evaluate(
            incident_id, body, session=session, now=now, evaluator=who.name
        )
        session.flush()
        found = session.scalars(
            select(CorrectiveAction).where(CorrectiveAction.evaluation_id == evaluation.id)
        ).all()
        return {
            **evaluation_json(evaluation),
            "corrective_actions": [action_json(a, now) for a in found],
        }

    return JSONResponse(await write(request, run), status_code=201)


async def change_action(request: Request) -> Response:
    """Move a corrective action on: open, in_progress, done."""
    who = principal(request)
    who.require(*RUNS_DRILLS, "staff")
    body, _ = await read_json_object(request, allowed=("status",))
    action_id = request.path_params["action_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        action = drills.close_action(
            action_id, body.get("status"), session=session, now=now, actor=who.name
        )
        return action_json(action, now)

    return JSONResponse(await write(request, run))


async def list_actions(request: Request) -> Response:
    """Corrective actions; ``?overdue=true`` for those past due and not done."""
    principal(request)
    state = state_of(request)
    overdue_only = request.query_params.get("overdue") == "true"

    def run(session: Session) -> dict[str, Any]:
        now = state.clock.now()
        if overdue_only:
            found = drills.overdue_actions(session=session, now=now)
        else:
            found = list(
                session.scalars(select(CorrectiveAction).order_by(CorrectiveAction.due_at))
            )
        return {"items": [action_json(a, now) for a in found], "next_cursor": None}

    return JSONResponse(await read(request, run))


async def trend_report(request: Request) -> Response:
    """Trend across the drills of one playbook (``?playbook=``): JSON, or an SVG chart
    with ``?format=svg``."""
    principal(request)
    state = state_of(request)
    playbook_id = request.query_params.get("playbook")
    if not playbook_id:
        raise BadRequest("name the playbook: ?playbook=mass-delay")
    state.catalog.get(playbook_id)

    def run(session: Session) -> list[dict[str, Any]]:
        return drills.trend(playbook_id, session=session, catalog=state.catalog)

    rows = await read(request, run)
    if request.query_params.get("format") == "svg":
        return Response(drills.trend_svg(rows), media_type="image/svg+xml")
    return JSONResponse({"playbook": playbook_id, "drills": rows})


async def report(request: Request) -> Response:
    """The after-action report: HTML, or Markdown with ``?format=md``."""
    principal(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    as_markdown = request.query_params.get("format") == "md"

    def run(session: Session) -> str:
        if as_markdown:
            return drills.markdown_report(incident_id, session=session, catalog=state.catalog)
        data = report_data(incident_id, session=session, catalog=state.catalog)
        incident = data["incident"]
        rows = drills.trend(incident.playbook_id, session=session, catalog=state.catalog)
        return _pages.get_template("report.html").render(
            **data,
            m=data["metrics"].as_json(),
            ratings=drills.RATINGS,
            chart=Markup(drills.trend_svg(rows)) if len(rows) > 1 else None,
        )

    text = await read(request, run)
    if as_markdown:
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
    return HTMLResponse(text)


routes = [
    Route("/api/drill-schedules", list_schedules, methods=["GET"]),
    Route("/api/drill-schedules", add_schedule, methods=["POST"]),
    Route("/api/drills", list_drills, methods=["GET"]),
    Route("/api/drills", start_drill, methods=["POST"]),
    Route("/api/drills/report", trend_report, methods=["GET"]),
    Route("/api/drills/{incident_id}/metrics", metrics, methods=["GET"]),
    Route("/api/drills/{incident_id}/evaluations", add_evaluation, methods=["POST"]),
    Route("/api/drills/{incident_id}/report", report, methods=["GET"]),
    Route("/api/corrective-actions", list_actions, methods=["GET"]),
    Route("/api/corrective-actions/{action_id}", change_action, methods=["PATCH"]),
]
