"""The notice routes of the JSON API: draft, draft the next version, approve and publish."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from incident import idempotency, notices, response
from incident.errors import Conflict, FieldError, ValidationFailed
from incident.models import Incident
from incident.notices import cap, reading
from incident.playbook import Playbook
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.auth import principal
from incident.web.public import cache_of
from incident.web.requests import read_action_body, read_json_object, unknown_fields
from incident.web.state import AppState, state_of

DRAFT_KEYS = frozenset(
    {
        "template",
        "languages",
        "lines",
        "stations",
        "trains",
        "cause",
        "effect",
        "impact_start",
        "impact_end",
        "communication_end",
    }
)


def _draft(body: dict[str, Any], *, allowed: frozenset[str]) -> notices.Draft:
    errors = unknown_fields(body, allowed)
    template = body.get("template")
    if template is not None and not isinstance(template, str):
        errors.append(FieldError("template", "must be the name of a playbook template"))
    languages = body.get("languages")
    if template is None and languages is None:
        errors.append(FieldError("languages", "give the text (zh required, en) or a template"))
    fields = notices.check_fields(body, errors=errors)
    if errors:
        raise ValidationFailed("the notice is not valid", errors)
    return notices.Draft(template=template, languages=languages, fields=fields)


def _playbook(state: AppState, incident_id: str, session: Session) -> tuple[Incident, Playbook]:
    incident = response.get_incident(incident_id, session=session)
    return incident, response.playbook_of(incident, state.catalog)


async def draft_notice(request: Request) -> Response:
    """Draft a notice of the incident from a template or text (its initial version)."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, _ = await read_json_object(request)
    draft = _draft(body, allowed=DRAFT_KEYS)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        incident, playbook = _playbook(state, incident_id, session)
        notice = notices.draft_notice(
            incident,
            playbook,
            draft,
            session=session,
            now=now,
            zone=state.settings.zone,
            actor=who.name,
        )
        return reading.notice_json(notice)

    view = await write(request, run)
    return JSONResponse(view, status_code=201, headers={"Location": f"/api/notices/{view['id']}"})


async def draft_version(request: Request) -> Response:
    """Draft the next version of a notice: ``{kind: update|all_clear|withdrawal, ...}``."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, _ = await read_json_object(request)
    kind = body.get("kind")
    draft = _draft({k: v for k, v in body.items() if k != "kind"}, allowed=DRAFT_KEYS)
    state = state_of(request)
    notice_id = request.path_params["notice_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        notice = notices.get_notice(notice_id, session=session)
        playbook = response.playbook_of(notice.incident, state.catalog)
        notices.draft_version(
            notice,
            playbook,
            kind,
            draft,
            session=session,
            now=now,
            zone=state.settings.zone,
            actor=who.name,
        )
        return reading.notice_json(notice)

    return JSONResponse(await write(request, run), status_code=201)


async def publish(request: Request) -> Response:
    """Approve and publish the notice's latest draft (drills: the drill channel only)."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    state = state_of(request)
    notice_id = request.path_params["notice_id"]
    raw = await read_action_body(request)
    key = request.headers.get("idempotency-key")
    route = f"POST /api/notices/{notice_id}/publish"
    body_digest = idempotency.digest(raw)
    policy = notices.PublicationPolicy.from_settings(state.settings)

    def run(session: Session, now: datetime) -> tuple[int, dict[str, Any]]:
        if key is not None:
            seen = idempotency.recall(
                who.user_id, route, key, body_digest, session=session, now=now
            )
            if seen is not None:
                return seen
        notice = notices.get_notice(notice_id, session=session)
        notices.publish(notice, session=session, now=now, actor=who.name, policy=policy)
        view = reading.notice_json(notice)
        if key is not None:
            idempotency.remember(
                who.user_id, route, key, body_digest, 200, view, session=session, now=now
            )
        return 200, view

    try:
        status, view = await write(request, run)
    except IntegrityError:
        if key is None:
            raise
        status, view = await write(request, run)  # a concurrent twin won: return its result
    cache_of(request).invalidate()
    return JSONResponse(view, status_code=status)


async def get_notice(request: Request) -> Response:
    """One notice with all its versions (drafts included)."""
    principal(request)
    notice_id = request.path_params["notice_id"]

    def run(session: Session) -> dict[str, Any]:
        return reading.notice_json(notices.get_notice(notice_id, session=session))

    return JSONResponse(await read(request, run))


async def list_notices(request: Request) -> Response:
    """The incident's notices, oldest first."""
    principal(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        response.get_incident(incident_id, session=session)
        found = reading.notices_of(incident_id, session=session)
        return {"items": [reading.notice_json(n) for n in found], "next_cursor": None}

    return JSONResponse(await read(request, run))


async def notice_cap(request: Request) -> Response:
    """CAP 1.2 of the notice's published version, drills too (status Exercise)."""
    principal(request)
    state = state_of(request)
    notice_id = request.path_params["notice_id"]

    def run(session: Session) -> bytes:
        notice = notices.get_notice(notice_id, session=session)
        if notice.published_number is None:
            raise Conflict("nothing of this notice is published yet")
        return cap.alert(
            notice,
            reading.public_version(notice),
            sender=notices.cap_sender(state.settings),
            public_url=state.settings.public_url.rstrip("/"),
        )

    body = await read(request, run)
    return Response(body, media_type=f"{cap.MEDIA_TYPE}; charset=utf-8")


routes = [
    Route("/api/incidents/{incident_id}/notices", draft_notice, methods=["POST"]),
    Route("/api/incidents/{incident_id}/notices", list_notices, methods=["GET"]),
    Route("/api/notices/{notice_id}", get_notice, methods=["GET"]),
    Route("/api/notices/{notice_id}/versions", draft_version, methods=["POST"]),
    Route("/api/notices/{notice_id}/publish", publish, methods=["POST"]),
    Route("/api/notices/{notice_id}/cap", notice_cap, methods=["GET"]),
]
