"""The JSON API (see docs/api.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from incident import idempotency, passengers, response, timeline
from incident.models import Incident
from incident.web.auth import principal
from incident.web.passengers_views import group_json
from incident.web.problems import BadRequest
from incident.web.requests import (
    encode_cursor,
    limit_param,
    read_action_body,
    read_json_object,
    seq_cursor,
    time_cursor,
)
from incident.web.state import AppState, state_of
from incident.web.views import event_json, incident_json, incident_summary, pages_summary

T = TypeVar("T")
RUNS_INCIDENTS = ("duty_manager",)
DECLARATION_FIELDS = ("playbook", "severity", "title", "facts", "mode")
CHANGE_FIELDS = ("severity", "facts", "status")


async def write(request: Request, fn: Callable[[Session, datetime], T]) -> T:
    """Run ``fn`` in one write transaction, off the event loop."""
    state = state_of(request)

    def run() -> T:
        with state.db.transaction() as session:
            session.connection()  # take the write lock first: "now" is after any wait
            return fn(session, state.clock.now())

    return await run_in_threadpool(run)


async def read(request: Request, fn: Callable[[Session], T]) -> T:
    state = state_of(request)

    def run() -> T:
        with state.db.reading() as session:
            return fn(session)

    return await run_in_threadpool(run)


def incident_view(state: AppState, session: Session, incident: Incident) -> dict[str, Any]:
    """The incident as the API shows it, with its pages summarised and its passenger
    groups."""
    session.flush()
    now = state.clock.now()
    return incident_json(
        incident,
        response.playbook_of(incident, state.catalog),
        pages=pages_summary(incident.id, session=session),
        passenger_groups=[
            group_json(group, now=now)
            for group in passengers.groups.groups_of(incident.id, session=session)
        ],
    )


def _incident_view(state: AppState, session: Session, incident_id: str) -> dict[str, Any]:
    return incident_view(state, session, response.get_incident(incident_id, session=session))


async def list_playbooks(request: Request) -> Response:
    """List playbooks with their stages, inputs and version."""
    principal(request)
    items = [p.to_summary() for p in state_of(request).catalog]
    return JSONResponse({"items": items, "next_cursor": None})


async def get_playbook(request: Request) -> Response:
    """One playbook with its stages, inputs and version."""
    principal(request)
    playbook = state_of(request).catalog.get(request.path_params["playbook_id"])
    return JSONResponse(playbook.to_summary())


async def declare(request: Request) -> Response:
    """Declare an incident from a playbook."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, raw = await read_json_object(request, allowed=DECLARATION_FIELDS)
    state = state_of(request)
    key = request.headers.get("idempotency-key")
    route = "POST /api/incidents"
    body_digest = idempotency.digest(raw)

    def run(session: Session, now: datetime) -> tuple[int, dict[str, Any]]:
        if key is not None:
            seen = idempotency.recall(
                who.user_id, route, key, body_digest, session=session, now=now
            )
            if seen is not None:
                return seen
        incident = response.declare(
            session=session,
            now=now,
            catalog=state.catalog,
            playbook_id=body.get("playbook"),
            severity=body.get("severity"),
            title=body.get("title"),
            facts=body.get("facts", {}),
            mode=body.get("mode", "live"),
            actor=who.name,
            zone=state.settings.zone,
        )
        session.flush()
        view = incident_view(state, session, incident)
        if key is not None:
            idempotency.remember(
                who.user_id, route, key, body_digest, 201, view, session=session, now=now
            )
        return 201, view

    try:
        status, view = await write(request, run)
    except IntegrityError:
        if key is None:
            raise
        status, view = await write(request, run)  # a concurrent twin won: return its result
    headers = {"Location": f"/api/incidents/{view['id']}"}
    return JSONResponse(view, status_code=status, headers=headers)


async def list_incidents(request: Request) -> Response:
    """List incidents, newest first (``?status=&mode=&limit=&cursor=``)."""
    principal(request)
    limit = limit_param(request)
    before = time_cursor(request)
    status = request.query_params.get("status")
    mode = request.query_params.get("mode")
    if status is not None and status not in response.STATUSES:
        raise BadRequest(f"status must be one of {', '.join(response.STATUSES)}")
    if mode is not None and mode not in response.MODES:
        raise BadRequest("mode must be live or drill")

    def run(session: Session) -> dict[str, Any]:
        found = response.list_incidents(
            session=session, status=status, mode=mode, limit=limit + 1, before=before
        )
        items = [incident_summary(i) for i in found[:limit]]
        nxt = None
        if len(found) > limit:
            last = found[limit - 1]
            nxt = encode_cursor(last.declared_at.isoformat(), last.id)
        return {"items": items, "next_cursor": nxt}

    return JSONResponse(await read(request, run))


async def get_incident(request: Request) -> Response:
    """One incident with its stages."""
    principal(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    return JSONResponse(await read(request, lambda s: _incident_view(state, s, incident_id)))


async def change_incident(request: Request) -> Response:
    """Change severity, facts (merged) or status; conditions are re-evaluated."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, _ = await read_json_object(request, allowed=CHANGE_FIELDS)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        incident = response.get_incident(incident_id, session=session)
        response.change(
            incident,
            session=session,
            now=now,
            catalog=state.catalog,
            severity=body.get("severity"),
            facts=body.get("facts"),
            status=body.get("status"),
            actor=who.name,
        )
        return incident_view(state, session, incident)

    return JSONResponse(await write(request, run))


async def fire_stage(request: Request) -> Response:
    """Fire a manual stage, or a pending one early."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    await read_action_body(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    stage_key = request.path_params["stage"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        incident = response.get_incident(incident_id, session=session)
        response.fire_manually(incident, stage_key, session=session, now=now, actor=who.name)
        return incident_view(state, session, incident)

    return JSONResponse(await write(request, run), status_code=202)


async def get_timeline(request: Request) -> Response:
    """The incident's events in order, with their hash chain."""
    principal(request)
    limit = limit_param(request, default=500, maximum=5000)
    after = seq_cursor(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        response.get_incident(incident_id, session=session)
        found = timeline.events(incident_id, session=session, after_seq=after, limit=limit + 1)
        nxt = encode_cursor(str(found[limit - 1].seq)) if len(found) > limit else None
        return {"items": [event_json(e) for e in found[:limit]], "next_cursor": nxt}

    return JSONResponse(await read(request, run))


async def me(request: Request) -> Response:
    """The caller's user and role."""
    who = principal(request)
    return JSONResponse(
        {"id": who.user_id, "name": who.name, "role": who.role, "person_id": who.person_id}
    )


routes = [
    Route("/api/me", me, methods=["GET"]),
    Route("/api/playbooks", list_playbooks, methods=["GET"]),
    Route("/api/playbooks/{playbook_id}", get_playbook, methods=["GET"]),
    Route("/api/incidents", declare, methods=["POST"]),
    Route("/api/incidents", list_incidents, methods=["GET"]),
    Route("/api/incidents/{incident_id}", get_incident, methods=["GET"]),
    Route("/api/incidents/{incident_id}", change_incident, methods=["PATCH"]),
    Route("/api/incidents/{incident_id}/stages/{stage}/fire", fire_stage, methods=["POST"]),
    Route("/api/incidents/{incident_id}/timeline", get_timeline, methods=["GET"]),
]
