"""The incident list and the incident page: live board, stages, facts, severity, status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import paging, response
from incident.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from incident.passengers import Vault
from incident.playbook import LEVELS
from incident.security import Principal
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.console.command import CommandView, command_view
from incident.web.console.errors import console_page, console_partial
from incident.web.console.forms import changed_facts, fact_fields, form_values
from incident.web.console.pages import field_errors, render, see_other
from incident.web.console.passenger_panel import PassengersView, passengers_view
from incident.web.console.session import flash, read_form
from incident.web.console.views import IncidentView, incident_view
from incident.web.state import state_of

PARTS = {
    "summary": ("console/_summary.html", frozenset({"board"})),
    "board": ("console/_board.html", frozenset({"board"})),
    "stages": ("console/_stages.html", frozenset({"progress"})),
    "notices": ("console/_notices.html", frozenset({"progress"})),
    "timeline": ("console/_timeline.html", frozenset({"timeline"})),
}
LIST_LIMIT = 200
ALL_PARTS = frozenset({"board", "progress", "timeline"})


async def _view(
    request: Request, user: Principal, parts: frozenset[str] = ALL_PARTS
) -> IncidentView:
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> IncidentView:
        return incident_view(
            incident_id,
            session=session,
            catalog=state.catalog,
            user=user,
            zone=state.settings.zone,
            parts=parts,
        )

    return await read(request, run)


async def incident_page(
    request: Request,
    user: Principal,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    """The incident page; a form that failed shows again with its values and errors."""
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    vault = Vault.from_settings(state.settings)

    def run(session: Session) -> tuple[IncidentView, PassengersView, CommandView]:
        view = incident_view(
            incident_id,
            session=session,
            catalog=state.catalog,
            user=user,
            zone=state.settings.zone,
        )
        panel = passengers_view(
            incident_id, session=session, now=state.clock.now(), vault=vault, user=user
        )
        command = command_view(incident_id, session=session, now=state.clock.now(), user=user)
        return view, panel, command

    view, panel, command = await read(request, run)
    shown = {
        "severity": view.incident.severity,
        **form_values(view.playbook, view.incident.facts, state.settings.zone),
        **(values or {}),
    }
    return render(
        request,
        "console/incident.html",
        user=user,
        status=status,
        view=view,
        passengers=panel,
        command=command,
        fields=fact_fields(view.playbook),
        levels=LEVELS,
        values=shown,
        errors=errors or {},
    )


@console_page
async def list_incidents(request: Request, user: Principal) -> Response:
    """Incidents, newest first (``?status=&mode=``)."""
    status = request.query_params.get("status") or None
    mode = request.query_params.get("mode") or None
    if status not in (None, *response.STATUSES):
        status = None
    if mode not in (None, *response.MODES):
        mode = None

    def run(session: Session) -> list[Any]:
        return response.list_incidents(session=session, status=status, mode=mode, limit=LIST_LIMIT)

    found = await read(request, run)
    return render(
        request,
        "console/incidents.html",
        user=user,
        incidents=found,
        status_filter=status or "",
        mode_filter=mode or "",
        statuses=response.STATUSES,
        modes=response.MODES,
    )


@console_page
async def show(request: Request, user: Principal) -> Response:
    """The incident page."""
    return await incident_page(request, user)


@console_partial
async def part(request: Request, user: Principal) -> Response:
    """One live part of the incident page, polled by the page's script."""
    found = PARTS.get(request.path_params["part"])
    if found is None:
        raise NotFound("no such part of the incident page")
    template, parts = found
    view = await _view(request, user, parts)
    return render(request, template, user=user, view=view)


async def _change(
    request: Request, user: Principal, changes: dict[str, Any], what: tuple[str, str]
) -> Response:
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session, now: datetime) -> None:
        incident = response.get_incident(incident_id, session=session)
        response.change(
            incident, session=session, now=now, catalog=state.catalog, actor=user.name, **changes
        )

    try:
        await write(request, run)
    except Conflict as exc:
        flash(request, f"无法更改：{exc}", f"Not changed: {exc}", "error")
    else:
        flash(request, *what, "ok")
    return see_other(f"/incidents/{incident_id}")


@console_page
async def change_severity(request: Request, user: Principal) -> Response:
    """Raise or lower the severity; conditions are re-evaluated."""
    user.require(*RUNS_INCIDENTS)
    form = await read_form(request)
    severity = form.get("severity", "")
    if severity not in LEVELS:
        errors = {"severity": "must be one of I, II, III, IV"}
        return await incident_page(request, user, status=422, values=form, errors=errors)
    return await _change(
        request, user, {"severity": severity}, ("级别已调整。", "Severity changed.")
    )


@console_page
async def change_facts(request: Request, user: Principal) -> Response:
    """Change the facts (empty fields remove optional facts); errors shown by the fields."""
    user.require(*RUNS_INCIDENTS)
    form = await read_form(request)
    state = state_of(request)
    view = await _view(request, user, frozenset())
    problems: list[FieldError] = []
    changes = changed_facts(
        view.playbook, view.incident.facts, form, state.settings.zone, errors=problems
    )
    if not problems and changes:
        incident_id = view.incident.id

        def run(session: Session, now: datetime) -> None:
            incident = response.get_incident(incident_id, session=session)
            response.change(
                incident,
                session=session,
                now=now,
                catalog=state.catalog,
                facts=changes,
                actor=user.name,
            )

        try:
            await write(request, run)
        except ValidationFailed as exc:
            problems.extend(exc.errors)
        except Conflict as exc:
            flash(request, f"无法更改：{exc}", f"Not changed: {exc}", "error")
            return see_other(f"/incidents/{incident_id}")
    if problems:
        errors = field_errors(problems)
        return await incident_page(request, user, status=422, values=form, errors=errors)
    if changes:
        flash(request, "情况已更新。", "Facts changed.", "ok")
    return see_other(f"/incidents/{view.incident.id}")


@console_page
async def change_status(request: Request, user: Principal) -> Response:
    """Contain, resolve (stand-down stages fire) or close the incident."""
    user.require(*RUNS_INCIDENTS)
    form = await read_form(request)
    status = form.get("status", "")
    if status not in ("contained", "resolved", "closed"):
        raise ValidationFailed("the status is not valid", [FieldError("status", "unknown")])
    words = {
        "contained": ("事件已控制。", "Contained."),
        "resolved": ("事件已解决，解除阶段已启动。", "Resolved; the stand-down stages run."),
        "closed": ("事件已关闭。", "Closed."),
    }[status]
    return await _change(request, user, {"status": status}, words)


@console_page
async def fire_stage(request: Request, user: Principal) -> Response:
    """Fire a manual stage, or a pending one early."""
    user.require(*RUNS_INCIDENTS)
    await read_form(request)
    incident_id = request.path_params["incident_id"]
    stage = request.path_params["stage"]

    def run(session: Session, now: datetime) -> None:
        incident = response.get_incident(incident_id, session=session)
        response.fire_manually(incident, stage, session=session, now=now, actor=user.name)

    try:
        await write(request, run)
    except (Conflict, NotFound) as exc:
        flash(request, f"未执行：{exc}", f"Not fired: {exc}", "error")
    else:
        flash(request, f"阶段 {stage} 即将执行。", f"Stage {stage} fires now.", "ok")
    return see_other(f"/incidents/{incident_id}#stages")


@console_page
async def ack_page(request: Request, user: Principal) -> Response:
    """Acknowledge a page from the board: the paged person, or a duty manager for them."""
    user.require("staff", *RUNS_INCIDENTS)
    await read_form(request)
    incident_id = request.path_params["incident_id"]
    page_id = request.path_params["page_id"]

    def run(session: Session, now: datetime) -> None:
        page = paging.get_page(page_id, session=session)
        if page.incident_id != incident_id:
            raise NotFound(f"no page {page_id!r} in this incident")
        paging.acknowledge_as(
            page,
            role=user.role,
            person_id=user.person_id,
            actor=user.name,
            via="console",
            session=session,
            now=now,
        )

    try:
        await write(request, run)
    except Forbidden as exc:
        flash(request, f"未确认：{exc}", f"Not acknowledged: {exc}", "error")
    else:
        flash(request, "已确认呼叫。", "Page acknowledged.", "ok")
    return see_other(f"/incidents/{incident_id}#board")


routes = [
    Route("/incidents", list_incidents, methods=["GET"], include_in_schema=False),
    Route("/incidents/{incident_id}", show, methods=["GET"], include_in_schema=False),
    Route("/incidents/{incident_id}/parts/{part}", part, methods=["GET"], include_in_schema=False),
    Route(
        "/incidents/{incident_id}/severity",
        change_severity,
        methods=["POST"],
        include_in_schema=False,
    ),
    Route(
        "/incidents/{incident_id}/facts", change_facts, methods=["POST"], include_in_schema=False
    ),
    Route(
        "/incidents/{incident_id}/status", change_status, methods=["POST"], include_in_schema=False
    ),
    Route(
        "/incidents/{incident_id}/stages/{stage}/fire",
        fire_stage,
        methods=["POST"],
        include_in_schema=False,
    ),
    Route(
        "/incidents/{incident_id}/pages/{page_id}/ack",
        ack_page,
        methods=["POST"],
        include_in_schema=False,
    ),
]
