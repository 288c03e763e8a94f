"""Stranded passengers on the incident page: groups and their needs, messages sent, and
call-backs promised (with their deadlines); forms to register a group and record a call."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import response
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.models import Incident
from incident.passengers import Vault, groups, inquiries
from incident.security import Principal
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.console.errors import console_page, console_partial
from incident.web.console.forms import local_time
from incident.web.console.incidents import incident_page
from incident.web.console.pages import field_errors, render, see_other
from incident.web.console.passenger_panel import passengers_view
from incident.web.console.session import flash, read_form
from incident.web.state import AppState, state_of

RECORDS_INQUIRIES = ("staff", *RUNS_INCIDENTS)


def _number(text: str) -> int | str:
    """A typed count as a number (what the engine checks), or as typed when it is not one."""
    return int(text) if text.isdigit() else text


def group_body(form: Mapping[str, str], zone: Any) -> dict[str, Any]:
    """The group the form describes (``group.*`` fields); blanks are left out."""
    body: dict[str, Any] = {}
    for name in ("train", "station", "location"):
        value = form.get(f"group.{name}", "").strip()
        if value:
            body[name] = value
    count = form.get("group.count", "").strip()
    if count:
        body["count"] = _number(count)
    since = form.get("group.since", "").strip()
    if since:
        body["since"] = local_time(since, zone) or since
    needs = [n for n in groups.NEEDS if form.get(f"group.needs.{n}")]
    if needs:
        body["needs"] = needs
    vulnerable = {
        k: _number(form[f"group.vulnerable.{k}"].strip())
        for k in groups.VULNERABLE
        if form.get(f"group.vulnerable.{k}", "").strip()
    }
    if vulnerable:
        body["vulnerable"] = vulnerable
    return body


def inquiry_body(form: Mapping[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": form.get("inquiry.kind") or "inquiry"}
    for name in ("phone", "name", "question", "answer"):
        value = form.get(f"inquiry.{name}", "").strip()
        if value:
            body[name] = value
    minutes = form.get("inquiry.callback_minutes", "").strip()
    body["callback"] = bool(minutes) or "phone" in body
    if minutes:
        body["callback_minutes"] = _number(minutes)
    return body


def _prefixed(prefix: str, errors: list[FieldError]) -> dict[str, str]:
    return field_errors(FieldError(f"{prefix}.{e.field}", e.message) for e in errors)


def _sync_facts(state: AppState, incident: Incident, *, session: Session, now: datetime) -> None:
    """A group changed the picture: carry counts and times into the facts the playbook
    declares, so that its conditions are evaluated again (as the API does)."""
    if incident.status not in ("active", "contained"):
        return
    changes = groups.fact_changes(
        incident, response.playbook_of(incident, state.catalog), session=session
    )
    if changes:
        response.change(
            incident,
            session=session,
            now=now,
            catalog=state.catalog,
            facts=changes,
            actor="passengers",
        )


async def _form_failed(
    request: Request, user: Principal, form: Mapping[str, str], errors: dict[str, str]
) -> Response:
    return await incident_page(request, user, status=422, values=dict(form), errors=errors)


@console_partial
async def part(request: Request, user: Principal) -> Response:
    """The passengers panel, polled by the incident page."""
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    vault = Vault.from_settings(state.settings)
    view = await read(
        request,
        lambda s: passengers_view(
            incident_id, session=s, now=state.clock.now(), vault=vault, user=user
        ),
    )
    return render(request, "console/_passengers.html", user=user, passengers=view)


@console_page
async def open_group(request: Request, user: Principal) -> Response:
    """Register stranded passengers on a train and/or at a station."""
    user.require(*RUNS_INCIDENTS)
    form = await read_form(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    body = group_body(form, state.settings.zone)

    def run(session: Session, now: datetime) -> None:
        incident = response.get_incident(incident_id, session=session)
        groups.open_group(incident, body, session=session, now=now, actor=user.name)
        _sync_facts(state, incident, session=session, now=now)

    try:
        await write(request, run)
    except ValidationFailed as exc:
        return await _form_failed(request, user, form, _prefixed("group", exc.errors))
    except Conflict as exc:
        flash(request, f"未登记：{exc}", f"Not registered: {exc}", "error")
    else:
        flash(request, "已登记滞留旅客。", "Passenger group registered.", "ok")
    return see_other(f"/incidents/{incident_id}#passengers")


@console_page
async def record_inquiry(request: Request, user: Principal) -> Response:
    """Record a passenger's call and the call-back promised."""
    user.require(*RECORDS_INQUIRIES)
    form = await read_form(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    body = inquiry_body(form)
    vault = Vault.from_settings(state.settings)

    def run(session: Session, now: datetime) -> None:
        incident = response.get_incident(incident_id, session=session)
        inquiries.record(
            incident,
            body,
            group=None,
            session=session,
            now=now,
            actor=user.name,
            vault=vault,
            region=state.settings.phone_region,
            callback_minutes=state.settings.callback_minutes,
        )

    try:
        await write(request, run)
    except ValidationFailed as exc:
        return await _form_failed(request, user, form, _prefixed("inquiry", exc.errors))
    except Conflict as exc:
        flash(request, f"未记录：{exc}", f"Not recorded: {exc}", "error")
    else:
        flash(request, "来电已记录。", "The call is recorded.", "ok")
    return see_other(f"/incidents/{incident_id}#passengers")


@console_page
async def callback_done(request: Request, user: Principal) -> Response:
    """The call-back was made: record how it went."""
    user.require(*RECORDS_INQUIRIES)
    form = await read_form(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    inquiry_id = request.path_params["inquiry_id"]
    vault = Vault.from_settings(state.settings)
    body = {"callback_status": "done", "outcome": form.get("outcome", "").strip() or None}

    def run(session: Session, now: datetime) -> None:
        found = inquiries.get_inquiry(inquiry_id, session=session)
        if found.incident_id != incident_id:
            raise NotFound(f"no inquiry {inquiry_id!r} in this incident")
        inquiries.complete(found, body, session=session, now=now, actor=user.name, vault=vault)

    try:
        await write(request, run)
    except (ValidationFailed, Conflict) as exc:
        detail = str(exc)
        if isinstance(exc, ValidationFailed):
            detail = "; ".join(e.message for e in exc.errors)
        flash(request, f"未记录回访：{detail}", f"Call-back not recorded: {detail}", "error")
    else:
        flash(request, "回访已记录。", "Call-back recorded.", "ok")
    return see_other(f"/incidents/{incident_id}#passengers")


routes = [
    Route(
        "/incidents/{incident_id}/parts/passengers", part, methods=["GET"], include_in_schema=False
    ),
    Route(
        "/incidents/{incident_id}/passenger-groups",
        open_group,
        methods=["POST"],
        include_in_schema=False,
    ),
    Route(
        "/incidents/{incident_id}/inquiries",
        record_inquiry,
        methods=["POST"],
        include_in_schema=False,
    ),
    Route(
        "/incidents/{incident_id}/inquiries/{inquiry_id}/done",
        callback_done,
        methods=["POST"],
        include_in_schema=False,
    ),
]
