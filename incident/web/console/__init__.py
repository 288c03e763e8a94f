"""The duty manager's console: server-rendered pages behind a login (see README, Console).

Each area has its module (auth, dashboard, declare, incidents, notices, passengers, command,
playbooks, roster, drills, evaluations);
templates are under ``web/templates/console/``, the stylesheet and script under ``web/static/``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from incident.web.console import (
    auth,
    command,
    dashboard,
    declare,
    drills,
    evaluations,
    incidents,
    notices,
    passengers,
    playbooks,
    roster,
)

STATIC = Path(__file__).resolve().parent.parent / "static"

routes: list[BaseRoute] = [
    *auth.routes,
    *dashboard.routes,
    *declare.routes,
    *notices.routes,
    *passengers.routes,
    *command.routes,
    *incidents.routes,
    *playbooks.routes,
    *roster.routes,
    *drills.routes,
    *evaluations.routes,
    Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
]
