"""Drills in the console: the next scheduled runs, past and running drills, corrective actions
that are overdue, and each drill's measured metrics (its evaluation lives in ``evaluations``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import drills, response
from incident.catalog import Catalog
from incident.errors import NotFound
from incident.models import CorrectiveAction, DrillSchedule, Evaluation, Incident
from incident.security import Principal
from incident.web.api import read
from incident.web.console.errors import console_page
from incident.web.console.names import Names
from incident.web.console.pages import render
from incident.web.state import state_of

LISTED = 50
UPCOMING = 10


@dataclass(frozen=True)
class ActionRow:
    action: CorrectiveAction
    owner: str
    overdue: bool


@dataclass(frozen=True)
class DrillsOverview:
    upcoming: list[dict[str, Any]]
    schedules: list[DrillSchedule]
    drills: list[tuple[Incident, int]]
    overdue: list[ActionRow]


def action_rows(actions: list[CorrectiveAction], names: Names, now: datetime) -> list[ActionRow]:
    return [
        ActionRow(a, names.person(a.owner_id), a.status != "done" and a.due_at < now)
        for a in actions
    ]


def overview(*, session: Session, now: datetime, zone: Any, catalog: Catalog) -> DrillsOverview:
    """The next runs of every schedule, drills newest first with their evaluation count,
    and corrective actions past due."""
    found = list(
        session.scalars(
            select(Incident)
            .where(Incident.mode == "drill")
            .order_by(Incident.declared_at.desc())
            .limit(LISTED)
        )
    )
    evaluated = dict(
        session.execute(
            select(Evaluation.incident_id, func.count())
            .where(Evaluation.incident_id.in_([i.id for i in found]))
            .group_by(Evaluation.incident_id)
        ).all()
    )
    upcoming = drills.upcoming(session=session, now=now, zone=zone, per_schedule=2)[:UPCOMING]
    for run in upcoming:
        playbook = catalog.get(run["playbook"]) if catalog.has(run["playbook"]) else None
        run["playbook_title"] = playbook.title if playbook is not None else None
    return DrillsOverview(
        upcoming=upcoming,
        schedules=list(session.scalars(select(DrillSchedule).order_by(DrillSchedule.created_at))),
        drills=[(i, int(evaluated.get(i.id, 0))) for i in found],
        overdue=action_rows(
            drills.overdue_actions(session=session, now=now), Names.load(session), now
        ),
    )


@console_page
async def show(request: Request, user: Principal) -> Response:
    """Upcoming and past drills, and overdue corrective actions."""
    state = state_of(request)

    def run(session: Session) -> DrillsOverview:
        return overview(
            session=session, now=state.clock.now(), zone=state.settings.zone, catalog=state.catalog
        )

    return render(request, "console/drills.html", user=user, view=await read(request, run))


@console_page
async def trend_chart(request: Request, user: Principal) -> Response:
    """The trend of one playbook's drills as an SVG chart (``?playbook=``)."""
    state = state_of(request)
    playbook = state.catalog.get(request.query_params.get("playbook", ""))

    def run(session: Session) -> str:
        rows = drills.trend(playbook.id, session=session, catalog=state.catalog)
        return drills.trend_svg(rows)

    svg = await read(request, run)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


def drill_of(incident_id: str, *, session: Session) -> Incident:
    incident = response.get_incident(incident_id, session=session)
    if incident.mode != "drill":
        raise NotFound(f"{incident_id} is not a drill")
    return incident


routes = [
    Route("/drills", show, methods=["GET"], include_in_schema=False),
    Route("/drills/trend.svg", trend_chart, methods=["GET"], include_in_schema=False),
]
