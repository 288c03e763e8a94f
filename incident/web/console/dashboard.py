"""The dashboard: what needs the duty manager now, most severe first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import drills, response
from incident.catalog import Catalog
from incident.models import Incident, Notice, Page
from incident.playbook import level_rank
from incident.security import Principal
from incident.web.api import read
from incident.web.console.board import OPEN
from incident.web.console.command import overdue_for_dashboard
from incident.web.console.drills import action_rows
from incident.web.console.errors import console_page, console_partial
from incident.web.console.labels import Pair
from incident.web.console.names import Names
from incident.web.console.pages import render
from incident.web.console.passenger_panel import overdue_callbacks
from incident.web.console.views import RUNNING, NoticeRow, notice_row
from incident.web.state import state_of

DUE_SOON = timedelta(minutes=10)
LISTED = 100
NEXT_DRILLS = 5


@dataclass(frozen=True)
class IncidentRow:
    incident: Incident
    awaiting: int
    acked: int
    pages: int


@dataclass(frozen=True)
class WaitingPage:
    id: str
    incident_id: str
    incident_title: str
    severity: str
    target: Pair
    status: str
    level: int
    ack_deadline: datetime | None


@dataclass(frozen=True)
class DueNotice:
    incident_id: str
    incident_title: str
    severity: str
    row: NoticeRow
    overdue: bool
    awaiting_approval: bool


@dataclass(frozen=True)
class FirstNoticeDue:
    """An incident with no notice yet, whose playbook sets a first-notice target."""

    incident: Incident
    due: datetime


@dataclass
class Dashboard:
    incidents: list[IncidentRow] = field(default_factory=list)
    pages: list[WaitingPage] = field(default_factory=list)
    notices: list[DueNotice] = field(default_factory=list)
    first_notices: list[FirstNoticeDue] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


def dashboard(*, session: Session, now: datetime, catalog: Catalog, zone: ZoneInfo) -> Dashboard:
    """Active incidents with their pages, pages awaiting acknowledgement, notices due."""
    incidents = list(
        session.scalars(select(Incident).where(Incident.status.in_(RUNNING)).limit(LISTED))
    )
    incidents.sort(key=lambda i: (-level_rank(i.severity), i.declared_at))
    by_id = {i.id: i for i in incidents}
    pages = list(
        session.scalars(
            select(Page).where(Page.incident_id.in_(by_id)).order_by(Page.created_at, Page.id)
        )
    )
    found = Dashboard()
    for incident in incidents:
        mine = [p for p in pages if p.incident_id == incident.id]
        found.incidents.append(
            IncidentRow(
                incident,
                awaiting=sum(1 for p in mine if p.status in OPEN),
                acked=sum(1 for p in mine if p.status == "acked"),
                pages=len(mine),
            )
        )
    names = Names.load(session)
    waiting = [p for p in pages if p.status in OPEN or p.status == "unreachable"]
    far = now + timedelta(days=3650)
    waiting.sort(key=lambda p: (p.ack_deadline or far, p.created_at))
    for page in waiting[:LISTED]:
        incident = by_id[page.incident_id]
        found.pages.append(
            WaitingPage(
                page.id,
                incident.id,
                incident.title,
                incident.severity,
                names.target(page.target_kind, page.target_id),
                page.status,
                page.level,
                page.ack_deadline,
            )
        )
    with_notice = set(
        session.scalars(select(Notice.incident_id).where(Notice.incident_id.in_(by_id)))
    )
    for incident in incidents:
        target = response.playbook_of(incident, catalog).targets.get("first_notice")
        if incident.id not in with_notice and target is not None:
            found.first_notices.append(FirstNoticeDue(incident, incident.declared_at + target))
    found.first_notices.sort(key=lambda f: f.due)
    open_notices = session.scalars(
        select(Notice)
        .where(Notice.incident_id.in_(by_id), Notice.status.in_(("draft", "current")))
        .order_by(Notice.created_at)
    )
    for notice in open_notices:
        row = notice_row(notice)
        due = notice.next_update_due
        awaiting = row.latest_status == "draft"
        if due is None and not awaiting:
            continue
        if due is not None and due > now + DUE_SOON and not awaiting:
            continue
        incident = by_id[notice.incident_id]
        found.notices.append(
            DueNotice(
                incident.id,
                incident.title,
                incident.severity,
                row,
                overdue=due is not None and due <= now,
                awaiting_approval=awaiting,
            )
        )
    found.notices.sort(key=lambda n: n.row.next_update_due or far)
    found.extras["drills"] = drills.upcoming(session=session, now=now, zone=zone)[:NEXT_DRILLS]
    found.extras["actions"] = action_rows(
        drills.overdue_actions(session=session, now=now), names, now
    )
    found.extras["tasks"] = overdue_for_dashboard(session=session, now=now, running=list(by_id))
    found.extras["callbacks"] = [
        (by_id[i.incident_id], i)
        for i in overdue_callbacks(session=session, now=now, running=list(by_id))
    ]
    return found


@console_page
async def show(request: Request, user: Principal) -> Response:
    """The dashboard."""
    return render(request, "console/dashboard.html", user=user, board=await _read(request))


@console_partial
async def part(request: Request, user: Principal) -> Response:
    """The dashboard's content, polled by the page's script."""
    return render(request, "console/_dashboard.html", user=user, board=await _read(request))


async def _read(request: Request) -> Dashboard:
    state = state_of(request)
    return await read(
        request,
        lambda session: dashboard(
            session=session,
            now=state.clock.now(),
            catalog=state.catalog,
            zone=state.settings.zone,
        ),
    )


routes = [
    Route("/", show, methods=["GET"], include_in_schema=False),
    Route("/parts/dashboard", part, methods=["GET"], include_in_schema=False),
]
