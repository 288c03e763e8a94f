"""Who may call what: every route of the service by role, written by hand from docs/api.md (the
founders' contract), docs/api.md (the routes added since) and the console's pages (README,
Console). ``test_access_matrix.py`` calls each route as each role on real objects and compares
the status with this table; a route the app has and this table lacks fails the suite.

Reading of the contract:
- ``admin`` may do everything (``Principal.may``); no other role is above another.
- "any role" is every signed-in role; anonymous callers get 401 on the API.
- "staff" work on passengers (inquiries, call-backs, care) is open to the duty manager who runs
  the incident as well (docs/api.md says so).
- The console answers a visitor who is not signed in with 303 to ``/login?next=...`` (a page)
  or 401 (a part polled by a page's script); a role that may not act gets a 403 page.
- An allowed call expects the route's own success status: 200, 201 (created), 202 (accepted:
  work goes on in the background), 303 (a console form, redirected after POST).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("anonymous", "viewer", "staff", "evaluator", "duty_manager", "admin")
SIGNED_IN = ROLES[1:]
LOGIN = "login"  # 303 to /login?next=...: the console's answer to a visitor not signed in
Expect = Mapping[str, int | str]


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expect: Expect
    source: str
    pending: str | None = None  # the issue whose routes are not in the app yet


def public(status: int = 200) -> Expect:
    return dict.fromkeys(ROLES, status)


def any_role(status: int = 200) -> Expect:
    return {"anonymous": 401, **dict.fromkeys(SIGNED_IN, status)}


def only(status: int, *roles: str) -> Expect:
    allowed = {*roles, "admin"}
    return {"anonymous": 401, **{r: status if r in allowed else 403 for r in SIGNED_IN}}


def page(status: int = 200, *roles: str) -> Expect:
    """A console page or form: ``roles`` (none: every role) get ``status``."""
    allowed = {*roles, "admin"} if roles else set(SIGNED_IN)
    return {"anonymous": LOGIN, **{r: status if r in allowed else 403 for r in SIGNED_IN}}


def part() -> Expect:
    """A part of a console page, polled by its script."""
    return {"anonymous": 401, **dict.fromkeys(SIGNED_IN, 200)}


DUTY = "duty_manager"
DESK = ("staff", DUTY)  # staff work, open to the duty manager who runs the incident
API, DOCS, CONSOLE = "API.md", "docs/api.md", "console"
COMMAND = "#10 (incident command; docs/api.md to follow)"

ROUTES: list[Row] = [
    # -- system and public (API.md, docs/api.md) ----------------------------------------------
    Row("GET", "/healthz", public(), API),
    Row("GET", "/readyz", public(), API),
    Row("GET", "/openapi.json", public(), API),
    # loopback peers or INCIDENT_METRICS_TOKEN only (#16): the test client is neither
    Row("GET", "/metrics", public(403), DOCS),
    Row("GET", "/notices", public(), API),
    Row("GET", "/notices/{notice_id}", public(), API),
    Row("GET", "/notices.atom", public(), API),
    Row("GET", "/notices/{notice_id}.cap", public(), API),
    Row("GET", "/notices.cap", public(), API),
    Row("GET", "/gtfs-rt/alerts.pb", public(), API),
    Row("GET", "/ack/{token}", public(), API),
    Row("POST", "/ack/{token}", public(), API),
    Row("POST", "/inbound/{channel}", public(), "docs/api.md: signed with the shared secret"),
    Row("GET", "/demo/inbox", public(), DOCS),
    # -- the JSON API -------------------------------------------------------------------------
    Row("GET", "/api/me", any_role(), DOCS),
    Row("GET", "/api/playbooks", any_role(), API),
    Row("GET", "/api/playbooks/{playbook_id}", any_role(), API),
    Row("POST", "/api/incidents", only(201, DUTY), API),
    Row("GET", "/api/incidents", any_role(), API),
    Row("GET", "/api/incidents/{incident_id}", any_role(), API),
    Row("PATCH", "/api/incidents/{incident_id}", only(200, DUTY), API),
    Row("POST", "/api/incidents/{incident_id}/stages/{stage}/fire", only(202, DUTY), API),
    Row("GET", "/api/incidents/{incident_id}/timeline", any_role(), API),
    Row("GET", "/api/incidents/{incident_id}/sitrep", any_role(), API),
    Row("PUT", "/api/incidents/{incident_id}/roles/{role}", only(200, DUTY), API),
    Row("POST", "/api/incidents/{incident_id}/tasks", only(201, DUTY), API),
    Row("PATCH", "/api/tasks/{task_id}", only(200, "staff", DUTY), API),
    # incident command beyond API.md (#10): reading is for any role, running the incident for
    # the duty manager; staff record what they did (own tasks, people reached by hand)
    Row("GET", "/api/incidents/{incident_id}/sitrep.md", any_role(), COMMAND),
    Row("GET", "/api/incidents/{incident_id}/sitrep.html", any_role(), COMMAND),
    Row("GET", "/api/incidents/{incident_id}/roles", any_role(), COMMAND),
    Row("GET", "/api/incidents/{incident_id}/tasks", any_role(), COMMAND),
    Row("GET", "/api/tasks", any_role(), COMMAND),
    Row("GET", "/api/tasks/{task_id}", any_role(), COMMAND),
    Row("POST", "/api/incidents/{incident_id}/authority-reports", only(201, DUTY), COMMAND),
    Row("GET", "/api/incidents/{incident_id}/authority-reports", any_role(), COMMAND),
    Row("GET", "/api/authority-reports/{report_id}", any_role(), COMMAND),
    Row("PATCH", "/api/authority-reports/{report_id}", only(200, DUTY), COMMAND),
    Row("POST", "/api/authority-reports/{report_id}/submit", only(200, DUTY), COMMAND),
    Row("POST", "/api/incidents/{incident_id}/reached-by-hand", only(201, *DESK), COMMAND),
    Row("GET", "/api/playbooks/{playbook_id}/calltree", any_role(), COMMAND),
    Row("GET", "/api/handover", any_role(), COMMAND),
    Row("GET", "/api/handovers", any_role(), COMMAND),
    Row("POST", "/api/handovers", only(201, DUTY), COMMAND),
    Row("GET", "/api/handovers/{handover_id}", any_role(), COMMAND),
    Row("GET", "/api/incidents/{incident_id}/pages", any_role(), API),
    Row("POST", "/api/pages/{page_id}/ack", only(200, "staff", DUTY), API),
    Row("POST", "/api/incidents/{incident_id}/notices", only(201, DUTY), API),
    Row("GET", "/api/incidents/{incident_id}/notices", any_role(), DOCS),
    Row("GET", "/api/notices/{notice_id}", any_role(), DOCS),
    Row("GET", "/api/notices/{notice_id}/cap", any_role(), DOCS),
    Row("POST", "/api/notices/{notice_id}/publish", only(200, DUTY), API),
    Row("POST", "/api/notices/{notice_id}/versions", only(201, DUTY), API),
    Row("POST", "/api/incidents/{incident_id}/passenger-groups", only(201, DUTY), API),
    Row("GET", "/api/incidents/{incident_id}/passenger-groups", any_role(), DOCS),
    Row("GET", "/api/incidents/{incident_id}/broadcasts", any_role(), DOCS),
    Row("GET", "/api/incidents/{incident_id}/inquiries", any_role(), DOCS),
    Row("POST", "/api/incidents/{incident_id}/inquiries", only(201, *DESK), DOCS),
    Row("GET", "/api/incidents/{incident_id}/passengers/summary", any_role(), DOCS),
    Row("GET", "/api/passenger-groups/{group_id}", any_role(), DOCS),
    Row("PATCH", "/api/passenger-groups/{group_id}", only(200, DUTY), DOCS),
    Row("POST", "/api/passenger-groups/{group_id}/care", only(201, *DESK), DOCS),
    Row("POST", "/api/passenger-groups/{group_id}/passengers", only(201, DUTY), API),
    Row("GET", "/api/passenger-groups/{group_id}/passengers", any_role(), DOCS),
    Row("GET", "/api/passenger-groups/{group_id}/passengers.csv", only(200, DUTY), DOCS),
    Row("GET", "/api/manifest-uploads/{upload_id}", any_role(), DOCS),
    Row("POST", "/api/passenger-groups/{group_id}/broadcasts", only(202, DUTY), API),
    Row("POST", "/api/passenger-groups/{group_id}/inquiries", only(201, *DESK), API),
    Row("GET", "/api/broadcasts/{broadcast_id}", any_role(), API),
    Row("POST", "/api/broadcasts/{broadcast_id}/resend", only(202, DUTY), DOCS),
    Row("GET", "/api/inquiries/{inquiry_id}", any_role(), DOCS),
    Row("PATCH", "/api/inquiries/{inquiry_id}", only(200, *DESK), API),
    Row("GET", "/api/complaints", any_role(), DOCS),
    Row("GET", "/api/drill-schedules", any_role(), API),
    Row("POST", "/api/drill-schedules", only(201, "evaluator", DUTY), API),
    Row("GET", "/api/drills", any_role(), DOCS),
    Row("POST", "/api/drills", only(201, "evaluator", DUTY), API),
    Row("GET", "/api/drills/report", any_role(), API),
    Row("GET", "/api/drills/{incident_id}/metrics", any_role(), API),
    Row("POST", "/api/drills/{incident_id}/evaluations", only(201, "evaluator"), API),
    Row("GET", "/api/drills/{incident_id}/report", any_role(), DOCS),
    Row("GET", "/api/corrective-actions", any_role(), DOCS),
    Row(
        "PATCH",
        "/api/corrective-actions/{action_id}",
        only(200, "staff", "evaluator", DUTY),
        DOCS,
    ),
    # -- the console (README, Console): a login session, CSRF on every form ----------------------
    Row("GET", "/login", {"anonymous": 200, **dict.fromkeys(SIGNED_IN, 303)}, CONSOLE),
    Row("POST", "/login", public(303), CONSOLE),
    Row("POST", "/logout", page(303), CONSOLE),
    Row("GET", "/lang/{lang}", public(303), CONSOLE),
    Row("GET", "/static/{path}", public(), CONSOLE),
    Row("GET", "/", page(), CONSOLE),
    Row("GET", "/parts/dashboard", part(), CONSOLE),
    Row("GET", "/declare", page(200, DUTY), CONSOLE),
    Row("GET", "/declare/{playbook_id}", page(200, DUTY), CONSOLE),
    Row("POST", "/declare/{playbook_id}", page(303, DUTY), CONSOLE),
    Row("GET", "/incidents", page(), CONSOLE),
    Row("GET", "/incidents/{incident_id}", page(), CONSOLE),
    Row("GET", "/incidents/{incident_id}/parts/{part}", part(), CONSOLE),
    Row("GET", "/incidents/{incident_id}/parts/passengers", part(), CONSOLE),
    Row("POST", "/incidents/{incident_id}/severity", page(303, DUTY), CONSOLE),
    Row("POST", "/incidents/{incident_id}/facts", page(303, DUTY), CONSOLE),
    Row("POST", "/incidents/{incident_id}/status", page(303, DUTY), CONSOLE),
    Row("POST", "/incidents/{incident_id}/stages/{stage}/fire", page(303, DUTY), CONSOLE),
    Row("POST", "/incidents/{incident_id}/pages/{page_id}/ack", page(303, "staff", DUTY), CONSOLE),
    Row("GET", "/incidents/{incident_id}/notices/new", page(200, DUTY), CONSOLE),
    Row("POST", "/incidents/{incident_id}/notices", page(303, DUTY), CONSOLE),
    Row("GET", "/incidents/{incident_id}/notices/{notice_id}", page(), CONSOLE),
    Row("POST", "/incidents/{incident_id}/notices/{notice_id}/publish", page(303, DUTY), CONSOLE),
    Row("POST", "/incidents/{incident_id}/notices/{notice_id}/versions", page(303, DUTY), CONSOLE),
    Row("POST", "/incidents/{incident_id}/passenger-groups", page(303, DUTY), CONSOLE),
    Row("POST", "/incidents/{incident_id}/inquiries", page(303, *DESK), CONSOLE),
    Row(
        "POST",
        "/incidents/{incident_id}/inquiries/{inquiry_id}/done",
        page(303, *DESK),
        CONSOLE,
    ),
    Row("POST", "/incidents/{incident_id}/roles", page(303, DUTY), COMMAND),
    Row("POST", "/incidents/{incident_id}/tasks", page(303, DUTY), COMMAND),
    Row("POST", "/tasks/{task_id}", page(303, *DESK), COMMAND),
    Row("GET", "/incidents/{incident_id}/sitrep", page(), COMMAND),
    Row("GET", "/playbooks/{playbook_id}/calltree", page(), COMMAND),
    Row("GET", "/handover", page(), COMMAND),
    Row("POST", "/handover", page(303, DUTY), COMMAND),
    Row("GET", "/playbooks", page(), CONSOLE),
    Row("GET", "/playbooks/{playbook_id}", page(), CONSOLE),
    Row("GET", "/roster", page(), CONSOLE),
    Row("POST", "/roster/people/{person_id}/test", page(303, DUTY), CONSOLE),
    Row("GET", "/drills", page(), CONSOLE),
    Row("GET", "/drills/trend.svg", page(), CONSOLE),
    Row("GET", "/drills/{incident_id}", page(), CONSOLE),
    Row("POST", "/drills/{incident_id}/evaluations", page(303, "evaluator"), CONSOLE),
    Row(
        "POST",
        "/drills/{incident_id}/actions/{action_id}",
        page(303, "staff", "evaluator", DUTY),
        CONSOLE,
    ),
]
