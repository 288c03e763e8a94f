"""Browsing playbooks: inputs, targets, stages, and what a declaration would do."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import response
from incident.errors import FieldError, ValidationFailed
from incident.playbook import LEVELS
from incident.security import Principal
from incident.web.api import read
from incident.web.console.errors import console_page
from incident.web.console.forms import fact_fields, facts_from_form
from incident.web.console.names import Names
from incident.web.console.pages import field_errors, render
from incident.web.console.preview import PreviewRow, preview
from incident.web.state import state_of


@console_page
async def list_playbooks(request: Request, user: Principal) -> Response:
    """Every playbook the service runs."""
    catalog = state_of(request).catalog
    return render(
        request,
        "console/playbooks.html",
        user=user,
        playbooks=list(catalog),
        broken=[b.to_summary() for b in catalog.broken],
    )


@console_page
async def show(request: Request, user: Principal) -> Response:
    """One playbook; with ``?simulate=1`` and facts, what would happen when."""
    state = state_of(request)
    playbook = state.catalog.get(request.path_params["playbook_id"])
    values = dict(request.query_params)
    values.setdefault("severity", "III")
    rows: list[PreviewRow] | None = None
    problems: list[FieldError] = []
    status = 200
    if "simulate" in values:
        facts = facts_from_form(playbook, values, state.settings.zone, errors=problems)
        try:
            response.validate_declaration(
                state.catalog, playbook.id, values["severity"], "Simulation", facts, "drill"
            )
        except ValidationFailed as exc:
            problems.extend(exc.errors)
        if problems:
            status = 422
        else:
            names = await read(request, Names.load)
            rows = await run_in_threadpool(
                lambda: preview(
                    state.catalog,
                    playbook,
                    severity=values["severity"],
                    facts=facts,
                    now=state.clock.now(),
                    names=names,
                    roster_from=state.db,
                )
            )
    return render(
        request,
        "console/playbook.html",
        user=user,
        status=status,
        playbook=playbook,
        fields=fact_fields(playbook),
        levels=LEVELS,
        values=values,
        errors=field_errors(problems),
        rows=rows,
    )


routes = [
    Route("/playbooks", list_playbooks, methods=["GET"], include_in_schema=False),
    Route("/playbooks/{playbook_id}", show, methods=["GET"], include_in_schema=False),
]
