"""Declaring an incident: choose a playbook, fill the form made from its inputs, see what
will happen, declare."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import drills, idempotency, response
from incident.errors import FieldError, IdempotencyMismatch, ValidationFailed
from incident.playbook import LEVELS, Playbook
from incident.security import Principal
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.console.errors import console_page
from incident.web.console.forms import fact_fields, facts_from_form
from incident.web.console.names import Names
from incident.web.console.pages import field_errors, render, see_other
from incident.web.console.preview import preview
from incident.web.console.session import flash, read_form
from incident.web.state import state_of

ROUTE = "console:declare"


def _form(
    request: Request,
    user: Principal,
    playbook: Playbook,
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    rows: list[Any] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "console/declare.html",
        user=user,
        status=status,
        playbook=playbook,
        fields=fact_fields(playbook),
        levels=LEVELS,
        values=values,
        errors=errors or {},
        rows=rows,
    )


@console_page
async def choose(request: Request, user: Principal) -> Response:
    """The playbooks to declare from."""
    user.require(*RUNS_INCIDENTS)
    playbooks = list(state_of(request).catalog)
    drill = request.query_params.get("mode") == "drill"
    return render(
        request, "console/declare_choose.html", user=user, playbooks=playbooks, drill=drill
    )


@console_page
async def form(request: Request, user: Principal) -> Response:
    """The declaration form of one playbook."""
    user.require(*RUNS_INCIDENTS)
    playbook = state_of(request).catalog.get(request.path_params["playbook_id"])
    mode = "drill" if request.query_params.get("mode") == "drill" else "live"
    values = {"severity": "III", "mode": mode, "form_key": secrets.token_urlsafe(16)}
    for name, spec in playbook.inputs.items():
        if spec.default is not None:
            values[f"facts.{name}"] = (
                str(spec.default).lower() if spec.type == "bool" else str(spec.default)
            )
    return _form(request, user, playbook, values=values)


@console_page
async def submit(request: Request, user: Principal) -> Response:
    """Preview (the simulated timeline) or declare; errors shown next to their fields."""
    user.require(*RUNS_INCIDENTS)
    state = state_of(request)
    playbook = state.catalog.get(request.path_params["playbook_id"])
    values = await read_form(request)
    problems: list[FieldError] = []
    facts = facts_from_form(playbook, values, state.settings.zone, errors=problems)
    severity, title = values.get("severity"), values.get("title", "")
    mode = values.get("mode", "live")
    try:
        response.validate_declaration(state.catalog, playbook.id, severity, title, facts, mode)
    except ValidationFailed as exc:
        problems.extend(exc.errors)
    if problems:
        return _form(
            request, user, playbook, values=values, errors=field_errors(problems), status=422
        )
    assert isinstance(severity, str)
    cron = values.get("cron", "").strip()
    if cron and values.get("intent") != "preview":
        if mode != "drill":
            errors = {"cron": "只有演练可以按计划重复。Only drills repeat on a schedule."}
            return _form(request, user, playbook, values=values, errors=errors, status=422)
        return await _schedule(request, user, playbook, values, severity, title, facts, cron)
    if values.get("intent") == "preview":
        names = await read(request, Names.load)
        rows = await run_in_threadpool(
            lambda: preview(
                state.catalog,
                playbook,
                severity=severity,
                facts=facts,
                now=state.clock.now(),
                names=names,
                roster_from=state.db,
            )
        )
        return _form(request, user, playbook, values=values, rows=rows)

    key = values.get("form_key", "")[: idempotency.KEY_MAX]
    digest = idempotency.digest(
        json.dumps([playbook.id, severity, title, facts, mode], sort_keys=True).encode()
    )

    def run(session: Session, now: datetime) -> str:
        if key:
            seen = idempotency.recall(user.user_id, ROUTE, key, digest, session=session, now=now)
            if seen is not None:
                return str(seen[1]["id"])
        incident = response.declare(
            session=session,
            now=now,
            catalog=state.catalog,
            playbook_id=playbook.id,
            severity=severity,
            title=title,
            facts=facts,
            mode=mode,
            actor=user.name,
            zone=state.settings.zone,
        )
        session.flush()
        if key:
            idempotency.remember(
                user.user_id, ROUTE, key, digest, 201, {"id": incident.id}, session=session, now=now
            )
        return incident.id

    try:
        incident_id = await write(request, run)
    except IdempotencyMismatch:
        errors = {
            "form": "此表单已用于启动一个事件，请重新打开表单。This form declared an "
            "incident already; open a new form to declare another."
        }
        return _form(request, user, playbook, values=values, errors=errors, status=422)
    flash(request, "已启动响应。", "Declared.", "ok")
    return see_other(f"/incidents/{incident_id}")


async def _schedule(
    request: Request,
    user: Principal,
    playbook: Playbook,
    values: dict[str, str],
    severity: str,
    title: str,
    facts: dict[str, Any],
    cron: str,
) -> Response:
    """A drill that repeats: a schedule (cron in the centre's time zone), nothing now."""
    state = state_of(request)

    def run(session: Session, now: datetime) -> str:
        schedule = drills.add_schedule(
            session=session,
            now=now,
            zone=state.settings.zone,
            catalog=state.catalog,
            playbook_id=playbook.id,
            cron=cron,
            severity=severity,
            facts=facts,
            title=title,
            actor=user.name,
        )
        return schedule.id

    try:
        await write(request, run)
    except ValidationFailed as exc:
        return _form(
            request, user, playbook, values=values, errors=field_errors(exc.errors), status=422
        )
    flash(request, "演练计划已添加。", "The drill schedule is added.", "ok")
    return see_other("/drills#schedules")


routes = [
    Route("/declare", choose, methods=["GET"], include_in_schema=False),
    Route("/declare/{playbook_id}", form, methods=["GET"], include_in_schema=False),
    Route("/declare/{playbook_id}", submit, methods=["POST"], include_in_schema=False),
]
