"""Stranded passengers over HTTP: groups and care, broadcasts, inquiries, summary (manifests:
``manifests_api``).

Personal data (names, phone numbers, ticket numbers) is shown in full only to roles that
need it (``Principal.sees_personal_data``) and masked for the others; broadcast recipients
are always masked. A manifest upload is streamed from the request into batches, each its own
short transaction, and shows only when it is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from incident import idempotency, passengers, response
from incident.errors import ValidationFailed
from incident.models import (
    Incident,
)
from incident.passengers import broadcasts, checks, groups, inquiries, manifests
from incident.passengers.privacy import Vault
from incident.security import Principal
from incident.web import manifests_api
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.auth import principal
from incident.web.passengers_views import (
    broadcast_json,
    care_json,
    group_json,
    inquiry_json,
    recipient_json,
    upload_json,
)
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

RECORDS_INQUIRIES = ("staff", *RUNS_INCIDENTS)
EXPORTS = ("duty_manager",)
BROADCAST_FIELDS = ("template", "texts", "groups", "offer")
CHUNK = 65536


# -- helpers ----------------------------------------------------------------------------------
def _vault(state: AppState) -> Vault:
    return Vault.from_settings(state.settings)


def _sync_facts(state: AppState, incident: Incident, *, session: Session, now: datetime) -> None:
    """Groups changed: carry their counts and times into the incident's facts (those the
    playbook declares) and evaluate its conditions again."""
    if incident.status not in ("active", "contained"):
        return
    playbook = response.playbook_of(incident, state.catalog)
    changes = groups.fact_changes(incident, playbook, session=session)
    if changes:
        response.change(
            incident,
            session=session,
            now=now,
            catalog=state.catalog,
            facts=changes,
            actor="passengers",
        )


Made = tuple[int, dict[str, Any], dict[str, Any]]  # status, view, view to remember


async def _create(
    request: Request,
    who: Principal,
    route: str,
    raw: bytes,
    make: Callable[[Session, datetime], Made],
) -> tuple[int, dict[str, Any]]:
    """Run a creating request, honouring ``Idempotency-Key`` (the remembered view never holds
    personal data: a repeat gets the masked view)."""
    key = request.headers.get("idempotency-key")
    digest = idempotency.digest(raw)

    def run(session: Session, now: datetime) -> tuple[int, dict[str, Any]]:
        if key is not None:
            seen = idempotency.recall(who.user_id, route, key, digest, session=session, now=now)
            if seen is not None:
                return seen
        status, view, stored = make(session, now)
        if key is not None:
            idempotency.remember(
                who.user_id, route, key, digest, status, stored, session=session, now=now
            )
        return status, view

    try:
        return await write(request, run)
    except IntegrityError:
        if key is None:
            raise
        return await write(request, run)


# -- groups -----------------------------------------------------------------------------------
async def open_group(request: Request) -> Response:
    """Register a passenger group of an incident."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, raw = await read_json_object(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def make(session: Session, now: datetime) -> Made:
        incident = response.get_incident(incident_id, session=session)
        group = groups.open_group(incident, body, session=session, now=now, actor=who.name)
        _sync_facts(state, incident, session=session, now=now)
        view = group_json(group, now=now)
        return 201, view, view

    status, view = await _create(
        request, who, f"POST /api/incidents/{incident_id}/passenger-groups", raw, make
    )
    return JSONResponse(
        view, status_code=status, headers={"Location": f"/api/passenger-groups/{view['id']}"}
    )


async def list_groups(request: Request) -> Response:
    """An incident's passenger groups."""
    principal(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        response.get_incident(incident_id, session=session)
        now = state.clock.now()
        found = groups.groups_of(incident_id, session=session)
        return {"items": [group_json(g, now=now) for g in found], "next_cursor": None}

    return JSONResponse(await read(request, run))


async def get_group(request: Request) -> Response:
    """One group with its care log and its current manifest's report."""
    principal(request)
    state = state_of(request)
    group_id = request.path_params["group_id"]

    def run(session: Session) -> dict[str, Any]:
        group = groups.get_group(group_id, session=session)
        view = group_json(group, now=state.clock.now())
        view["care"] = [care_json(c) for c in groups.care_of(group.id, session=session)]
        upload = (
            manifests.get_upload(group.current_upload_id, session=session)
            if group.current_upload_id
            else None
        )
        view["manifest"] = upload_json(upload) if upload else None
        return view

    return JSONResponse(await read(request, run))


async def change_group(request: Request) -> Response:
    """Change a group (merge); counts and times flow into the incident's facts."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, _ = await read_json_object(request)
    state = state_of(request)
    group_id = request.path_params["group_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        group = groups.get_group(group_id, session=session)
        groups.change_group(group, body, session=session, now=now, actor=who.name)
        incident = response.get_incident(group.incident_id, session=session)
        _sync_facts(state, incident, session=session, now=now)
        return group_json(group, now=now)

    return JSONResponse(await write(request, run))


async def record_care(request: Request) -> Response:
    """Log care given to a group (``met: true`` marks the need met)."""
    who = principal(request)
    who.require(*RECORDS_INQUIRIES)
    body, raw = await read_json_object(request)
    group_id = request.path_params["group_id"]

    def make(session: Session, now: datetime) -> Made:
        group = groups.get_group(group_id, session=session)
        entry = groups.record_care(group, body, session=session, now=now, actor=who.name)
        view = care_json(entry)
        return 201, view, view

    status, view = await _create(
        request, who, f"POST /api/passenger-groups/{group_id}/care", raw, make
    )
    return JSONResponse(view, status_code=status)


# -- broadcasts -------------------------------------------------------------------------------
async def start_broadcast(request: Request) -> Response:
    """Message every passenger of the group (and of ``groups``): 202 with the broadcast."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    body, raw = await read_json_object(request, allowed=BROADCAST_FIELDS)
    state = state_of(request)
    group_id = request.path_params["group_id"]

    def make(session: Session, now: datetime) -> Made:
        group = groups.get_group(group_id, session=session)
        incident = response.get_incident(group.incident_id, session=session)
        extra = body.get("groups") or []
        if not isinstance(extra, list) or not all(isinstance(g, str) for g in extra):
            raise BadRequest("groups must be a list of group ids", status=422)
        template, texts = body.get("template"), body.get("texts")
        if (template is None) == (texts is None):
            raise BadRequest("send either a template or texts {zh, en}", status=422)
        if template is not None:
            if not isinstance(template, str):
                raise BadRequest("template must be a template name", status=422)
            rendered = broadcasts.render(
                incident,
                response.playbook_of(incident, state.catalog),
                template,
                now=now,
                zone=state.settings.zone,
                stage_key=None,
            )
        else:
            errors: list[Any] = []
            rendered = checks.texts(body, "texts", errors) or {}
            if errors:
                raise ValidationFailed("the message is not valid", errors)
        offer = body.get("offer")
        if offer is not None and not isinstance(offer, str):
            raise BadRequest("offer must be text", status=422)
        made = broadcasts.start(
            incident,
            group_ids=[group.id, *extra],
            texts=rendered,
            origin=f"api:{who.user_id}:{now.isoformat()}:{idempotency.digest(raw)[:12]}",
            session=session,
            now=now,
            actor=who.name,
            template=template,
            offer=str(offer)[:40] if offer else None,
        )
        view = broadcast_json(made, broadcasts.counts(made, session=session))
        return 202, view, view

    status, view = await _create(
        request, who, f"POST /api/passenger-groups/{group_id}/broadcasts", raw, make
    )
    return JSONResponse(
        view, status_code=status, headers={"Location": f"/api/broadcasts/{view['id']}"}
    )


async def get_broadcast(request: Request) -> Response:
    """Progress: counts (queued, sent, failed) and each recipient's status, masked."""
    principal(request)
    state = state_of(request)
    broadcast_id = request.path_params["broadcast_id"]
    limit = limit_param(request, default=100, maximum=1000)
    after = seq_cursor(request)
    vault = _vault(state)

    def run(session: Session) -> dict[str, Any]:
        found = broadcasts.get_broadcast(broadcast_id, session=session)
        rows = broadcasts.recipients(found, session=session, after=after, limit=limit + 1)
        items = [recipient_json(r, d, vault) for r, d in rows[:limit]]
        view = broadcast_json(found, broadcasts.counts(found, session=session), items)
        view["next_cursor"] = (
            encode_cursor(str(rows[limit - 1][0].id)) if len(rows) > limit else None
        )
        return view

    return JSONResponse(await read(request, run))


async def list_broadcasts(request: Request) -> Response:
    """An incident's broadcasts with their counts, newest first."""
    principal(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        response.get_incident(incident_id, session=session)
        found = broadcasts.broadcasts_of(incident_id, session=session)
        items = [broadcast_json(b, broadcasts.counts(b, session=session)) for b in found]
        return {"items": items, "next_cursor": None}

    return JSONResponse(await read(request, run))


async def resend_broadcast(request: Request) -> Response:
    """Send again to the recipients whose delivery failed, and only to them."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    await read_action_body(request)
    broadcast_id = request.path_params["broadcast_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        found = broadcasts.get_broadcast(broadcast_id, session=session)
        resent = broadcasts.resend_failed(found, session=session, now=now, actor=who.name)
        view = broadcast_json(found, broadcasts.counts(found, session=session))
        view["resent"] = resent
        return view

    return JSONResponse(await write(request, run), status_code=202)


# -- inquiries --------------------------------------------------------------------------------
async def _record_inquiry(
    request: Request, *, group_id: str | None, incident_id: str | None
) -> Response:
    who = principal(request)
    who.require(*RECORDS_INQUIRIES)
    body, raw = await read_json_object(request)
    state = state_of(request)
    vault = _vault(state)

    def make(session: Session, now: datetime) -> Made:
        group = groups.get_group(group_id, session=session) if group_id else None
        incident = response.get_incident(
            group.incident_id if group else str(incident_id), session=session
        )
        made = inquiries.record(
            incident,
            body,
            group=group,
            session=session,
            now=now,
            actor=who.name,
            vault=vault,
            region=state.settings.phone_region,
            callback_minutes=state.settings.callback_minutes,
        )
        view = inquiry_json(made, vault, full=who.sees_personal_data, now=now)
        return 201, view, inquiry_json(made, vault, full=False, now=now)

    route = request.url.path
    status, view = await _create(request, who, f"POST {route}", raw, make)
    return JSONResponse(
        view, status_code=status, headers={"Location": f"/api/inquiries/{view['id']}"}
    )


async def record_group_inquiry(request: Request) -> Response:
    """Record an inbound inquiry from a passenger of a group, with a call-back deadline."""
    return await _record_inquiry(
        request, group_id=request.path_params["group_id"], incident_id=None
    )


async def record_incident_inquiry(request: Request) -> Response:
    """Record an inquiry about an incident; the caller's group is found by phone number."""
    return await _record_inquiry(
        request, group_id=None, incident_id=request.path_params["incident_id"]
    )


def _list_inquiries(
    request: Request, *, incident_id: str | None = None, only_kind: str | None = None
) -> Any:
    who = principal(request)
    state = state_of(request)
    vault = _vault(state)
    kind = request.query_params.get("kind")
    if kind is not None and kind not in inquiries.KINDS:
        raise BadRequest("kind must be inquiry or complaint")
    open_only = request.query_params.get("open") in ("1", "true", "yes")
    limit = limit_param(request)
    before = time_cursor(request)

    def run(session: Session) -> dict[str, Any]:
        if incident_id:
            response.get_incident(incident_id, session=session)
        found = inquiries.list_inquiries(
            session=session,
            incident_id=incident_id,
            kind=only_kind or kind,
            open_only=open_only,
            limit=limit + 1,
            before=before,
        )
        now = state.clock.now()
        items = [
            inquiry_json(i, vault, full=who.sees_personal_data, now=now) for i in found[:limit]
        ]
        nxt = None
        if len(found) > limit:
            last = found[limit - 1]
            nxt = encode_cursor(last.created_at.isoformat(), last.id)
        return {"items": items, "next_cursor": nxt}

    return read(request, run)


async def list_incident_inquiries(request: Request) -> Response:
    """An incident's inquiries and complaints (``?kind=complaint&open=true``), newest first."""
    return JSONResponse(
        await _list_inquiries(request, incident_id=request.path_params["incident_id"])
    )


async def list_complaints(request: Request) -> Response:
    """Complaints raised during incidents, for the complaints section, newest first."""
    return JSONResponse(await _list_inquiries(request, only_kind="complaint"))


async def get_inquiry(request: Request) -> Response:
    who = principal(request)
    state = state_of(request)
    vault = _vault(state)
    inquiry_id = request.path_params["inquiry_id"]

    def run(session: Session) -> dict[str, Any]:
        found = inquiries.get_inquiry(inquiry_id, session=session)
        return inquiry_json(found, vault, full=who.sees_personal_data, now=state.clock.now())

    return JSONResponse(await read(request, run))


async def change_inquiry(request: Request) -> Response:
    """Record the call-back (``{callback_status: done, outcome}``), change answer or kind."""
    who = principal(request)
    who.require(*RECORDS_INQUIRIES)
    body, _ = await read_json_object(request)
    state = state_of(request)
    vault = _vault(state)
    inquiry_id = request.path_params["inquiry_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        found = inquiries.get_inquiry(inquiry_id, session=session)
        inquiries.complete(found, body, session=session, now=now, actor=who.name, vault=vault)
        return inquiry_json(found, vault, full=who.sees_personal_data, now=now)

    return JSONResponse(await write(request, run))


# -- summary ----------------------------------------------------------------------------------
async def passenger_summary(request: Request) -> Response:
    """Stranded where and how long, needs met or open, messages, call-backs due and late."""
    principal(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        incident = response.get_incident(incident_id, session=session)
        return passengers.summary.summarise(incident, session=session, now=state.clock.now())

    return JSONResponse(await read(request, run))


routes = [
    *manifests_api.routes,
    Route("/api/incidents/{incident_id}/passenger-groups", open_group, methods=["POST"]),
    Route("/api/incidents/{incident_id}/passenger-groups", list_groups, methods=["GET"]),
    Route("/api/incidents/{incident_id}/passengers/summary", passenger_summary, methods=["GET"]),
    Route("/api/incidents/{incident_id}/broadcasts", list_broadcasts, methods=["GET"]),
    Route("/api/incidents/{incident_id}/inquiries", record_incident_inquiry, methods=["POST"]),
    Route("/api/incidents/{incident_id}/inquiries", list_incident_inquiries, methods=["GET"]),
    Route("/api/passenger-groups/{group_id}", get_group, methods=["GET"]),
    Route("/api/passenger-groups/{group_id}", change_group, methods=["PATCH"]),
    Route("/api/passenger-groups/{group_id}/care", record_care, methods=["POST"]),
    Route("/api/passenger-groups/{group_id}/broadcasts", start_broadcast, methods=["POST"]),
    Route("/api/passenger-groups/{group_id}/inquiries", record_group_inquiry, methods=["POST"]),
    Route("/api/broadcasts/{broadcast_id}", get_broadcast, methods=["GET"]),
    Route("/api/broadcasts/{broadcast_id}/resend", resend_broadcast, methods=["POST"]),
    Route("/api/inquiries/{inquiry_id}", get_inquiry, methods=["GET"]),
    Route("/api/inquiries/{inquiry_id}", change_inquiry, methods=["PATCH"]),
    Route("/api/complaints", list_complaints, methods=["GET"]),
]
