"""Access, proved: every route as every role (the table in ``access_matrix.py``, written from
API.md), on real objects built once for the module; the app has no route the table lacks.
Then the refusals that go with access: another person's page, fields a body may not carry,
bodies over ``INCIDENT_MAX_BODY_BYTES``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from incident import operations, paging, response, roster, security
from incident.app import create_app
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.models import (
    AuthorityReport,
    Broadcast,
    CareEntry,
    CorrectiveAction,
    DrillSchedule,
    Evaluation,
    Handover,
    Incident,
    Inquiry,
    Job,
    Notice,
    NoticeVersion,
    Page,
    PassengerGroup,
    Task,
    TimelineEvent,
)
from incident.settings import Secret, Settings
from incident.worker import Worker
from tests.conftest import DEMO_ROSTER, PLAYBOOKS
from tests.factories import MASS_DELAY_FACTS
from tests.web.access_matrix import LOGIN, ROLES, ROUTES, SIGNED_IN, Row

STAFF_PERSON = "zhang.wei"  # the staff user answers for this roster person
OTHER_PERSON = "wang.fang"
INBOUND_SECRET = "matrix-inbound-secret"
DECLARATION: dict[str, Any] = {
    "playbook": "mass-delay",
    "severity": "III",
    "title": "Line G signal fault",
    "facts": MASS_DELAY_FACTS,
}
DRILL = {"playbook": "mass-delay", "severity": "III", "facts": MASS_DELAY_FACTS}
QUESTION = {"question": "When does my train leave?", "phone": "13812345678"}
MANIFEST = "name,phone,seat\n张三,13812345678,1A\n李四,13912345678,1B\n".encode()
PARAM = re.compile(r"{(\w+)(?::\w+)?}")


# -- the world: one app, one database, a user and a client per role, real objects ----------------
@dataclass
class World:
    app: Starlette
    db: Database
    clock: FrozenClock
    clients: dict[str, TestClient]
    csrf: dict[str, str]
    ids: dict[str, str]
    stack: ExitStack

    def fresh_page(self, person: str = STAFF_PERSON) -> tuple[str, int]:
        """A new page to ``person`` in the live incident: its id and its recipient's id."""
        with self.db.transaction() as session:
            incident = response.get_incident(self.ids["incident_id"], session=session)
            page = paging.open_page(
                incident,
                None,
                kind="person",
                target=person,
                chain=[f"person:{person}"],
                template="",
                ack_within=timedelta(hours=1),
                origin=f"matrix-{uuid.uuid4().hex[:8]}",
                stage_key=None,
                session=session,
                now=self.clock.now(),
                policy=self.app.state.incident.ctx.policy,
                text={"zh": "测试", "en": "test"},
            )
            assert page is not None
            return page.id, page.recipients[0].id

    def ack_token(self, recipient_id: int) -> str:
        links = self.app.state.incident.ctx.policy.links
        return str(links.token(recipient_id, now=self.clock.now()))

    def task(self) -> str:
        """A new task of the live incident for the staff user's person."""
        made = self.clients["admin"].post(
            f"/api/incidents/{self.ids['incident_id']}/tasks",
            json={"title": "Publish the hotline script", "person": STAFF_PERSON, "due_minutes": 30},
        )
        return created(made)

    def incident(self) -> str:
        return created(self.clients["admin"].post("/api/incidents", json=DECLARATION))

    def page_status(self, page_id: str) -> str:
        with self.db.reading() as session:
            return paging.get_page(page_id, session=session).status

    def new_client(self) -> TestClient:
        """A client of its own (a session of its own), closed with the module."""
        return self.stack.enter_context(TestClient(self.app, raise_server_exceptions=False))

    def draft_notice(self) -> str:
        made = self.clients["admin"].post(
            f"/api/incidents/{self.ids['incident_id']}/notices", json={"template": "notice-initial"}
        )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    def published_notice(self) -> str:
        notice_id = self.draft_notice()
        published = self.clients["admin"].post(f"/api/notices/{notice_id}/publish")
        assert published.status_code == 200, published.text
        return notice_id


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page carries a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, name: str) -> str:
    """Sign ``client`` in to the console (password = name); return its CSRF token."""
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"csrf": token, "name": name, "password": name, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/").text)


def created(answer: httpx.Response, status: int = 201) -> str:
    assert answer.status_code == status, answer.text
    return str(answer.json()["id"])


@pytest.fixture(scope="module")
def world(
    module_database_url: str, catalog: Catalog, roster_doc: roster.RosterDoc
) -> Iterator[World]:
    settings = Settings(
        database_url=module_database_url,
        playbooks_dir=PLAYBOOKS,
        demo_roster=DEMO_ROSTER,
        inbound_secret=Secret(INBOUND_SECRET),
        sms_gateway=Secret("inbox://sms-{phone}"),  # the demo inbox: delivered at once
    )
    db = Database.from_url(module_database_url)
    with db.transaction() as session:
        roster.apply_roster(roster_doc, session=session)
    clock = FrozenClock()
    app = create_app(settings, db=db, clock=clock, catalog=catalog, run_worker=False)
    tokens = {}
    with db.transaction() as session:
        for role in SIGNED_IN:
            _, tokens[role] = security.add_user(
                role,
                role,
                session=session,
                now=clock.now(),
                person_id=STAFF_PERSON if role == "staff" else None,
                password=role,
            )
        operations.beat(  # a worker is alive (the clock is frozen): /readyz answers 200
            "matrix",
            host="h",
            pid=1,
            started_at=clock.now(),
            jobs_done=0,
            session=session,
            now=clock.now(),
        )
    with ExitStack() as stack:
        clients = {"anonymous": stack.enter_context(TestClient(app, raise_server_exceptions=False))}
        csrf: dict[str, str] = {}
        for role in SIGNED_IN:
            client = TestClient(
                app,
                raise_server_exceptions=False,
                headers={"Authorization": f"Bearer {tokens[role]}"},
            )
            clients[role] = stack.enter_context(client)
            csrf[role] = sign_in(client, role)
        duty, staff, evaluator = clients["duty_manager"], clients["staff"], clients["evaluator"]
        incident = created(duty.post("/api/incidents", json=DECLARATION))
        spare = created(duty.post("/api/incidents", json=DECLARATION))
        ids = {"incident_id": incident, "spare": spare}
        world = World(app, db, clock, clients, csrf, ids, stack)
        ids["notice_id"] = world.published_notice()
        group = created(
            duty.post(
                f"/api/incidents/{incident}/passenger-groups",
                json={"train": "G1234", "location": "Nanjing South", "count": 120},
            )
        )
        ids["group_id"] = group
        ids["upload_id"] = created(
            duty.post(
                f"/api/passenger-groups/{group}/passengers",
                content=MANIFEST,
                headers={"Content-Type": "text/csv"},
            )
        )
        ids["broadcast_id"] = created(
            duty.post(
                f"/api/passenger-groups/{group}/broadcasts",
                json={
                    "texts": {"zh": "列车晚点，请留意广播。", "en": "Delayed; listen for calls."}
                },
            ),
            202,
        )
        sender = Sender(Context.build(settings, catalog).send_policy())
        Worker(db, app.state.incident.ctx, clock, sender=sender, owner="matrix").drain()
        sender.close()  # the broadcast is prepared and sent: it may be sent again
        ids["inquiry_id"] = created(
            staff.post(f"/api/incidents/{incident}/inquiries", json=QUESTION)
        )
        drill = created(evaluator.post("/api/drills", json=DRILL))
        ids["drill"] = drill
        evaluation = evaluator.post(
            f"/api/drills/{drill}/evaluations",
            json={
                "ratings": [{"task": "Activate the plan", "rating": "S"}],
                "corrective_actions": [
                    {"title": "Rehearse", "owner": "li.na", "due_at": "2026-12-01T10:00:00+08:00"}
                ],
            },
        )
        assert evaluation.status_code == 201, evaluation.text
        ids["action_id"] = evaluation.json()["corrective_actions"][0]["id"]
        ids["task_id"] = world.task()
        ids["report_id"] = created(
            duty.post(f"/api/incidents/{incident}/authority-reports", json={"fields": {}})
        )
        ids["handover_id"] = created(duty.post("/api/handovers", json={"outgoing": "night"}))
        ids.update(
            playbook_id="mass-delay",
            stage="notice-update",  # an `every` stage: it may be fired again and again
            part="board",
            lang="en",
            person_id="li.na",
            channel="inbox",
            path="console.css",
            role="commander",
        )
        yield world
    db.dispose()


# -- how each route is called ----------------------------------------------------------------
@dataclass
class Call:
    ids: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] | None = None  # a console form: the role's CSRF token is added
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    client: TestClient | None = None  # a client of its own (signing in and out)


Recipe = Callable[[World, str], Call]
RECIPES: dict[tuple[str, str], Recipe] = {}


def recipe(method: str, path: str) -> Callable[[Recipe], Recipe]:
    def register(fn: Recipe) -> Recipe:
        RECIPES[(method, path)] = fn
        return fn

    return register


def _static(method: str, path: str, call: Call) -> None:
    RECIPES[(method, path)] = lambda w, role: call


def _drill(method: str, path: str, **extra: Any) -> None:
    RECIPES[(method, path)] = lambda w, role: Call(ids={"incident_id": w.ids["drill"]}, **extra)


@recipe("GET", "/ack/{token}")
@recipe("POST", "/ack/{token}")
def _ack_link(w: World, role: str) -> Call:
    _, recipient = w.fresh_page()
    return Call(ids={"token": w.ack_token(recipient)})


@recipe("POST", "/inbound/{channel}")
def _reply(w: World, role: str) -> Call:
    w.fresh_page()
    return Call(
        json={"from": STAFF_PERSON, "text": "1"}, headers={"X-Incident-Secret": INBOUND_SECRET}
    )


@recipe("POST", "/api/pages/{page_id}/ack")
@recipe("POST", "/incidents/{incident_id}/pages/{page_id}/ack")
def _ack(w: World, role: str) -> Call:
    page_id, _ = w.fresh_page()
    return Call(ids={"page_id": page_id}, form={})


@recipe("POST", "/api/notices/{notice_id}/publish")
@recipe("POST", "/incidents/{incident_id}/notices/{notice_id}/publish")
def _publish(w: World, role: str) -> Call:
    return Call(ids={"notice_id": w.draft_notice()}, form={})


@recipe("POST", "/api/notices/{notice_id}/versions")
def _next_version(w: World, role: str) -> Call:
    return Call(
        ids={"notice_id": w.published_notice()},
        json={"kind": "update", "template": "notice-update"},
    )


@recipe("POST", "/incidents/{incident_id}/notices/{notice_id}/versions")
def _next_version_form(w: World, role: str) -> Call:
    return Call(
        ids={"notice_id": w.published_notice()},
        form={"kind": "update", "template": "notice-update"},
    )


@recipe("POST", "/login")
def _login(w: World, role: str) -> Call:
    client = w.new_client()
    name = "viewer" if role == "anonymous" else role
    token = csrf_of(client.get("/login").text)
    return Call(client=client, form={"csrf": token, "name": name, "password": name})


@recipe("POST", "/logout")
def _logout(w: World, role: str) -> Call:
    """Logout ends every session of the user (#16): a user of the role's own signs out."""
    if role == "anonymous":
        return Call(form={})
    name = f"{role}-leaving-{uuid.uuid4().hex[:6]}"
    with w.db.transaction() as session:
        security.add_user(name, role, session=session, now=w.clock.now(), password=name)
    client = w.new_client()
    return Call(client=client, form={"csrf": sign_in(client, name)})


_static("POST", "/api/incidents", Call(json=DECLARATION))
_static("PATCH", "/api/incidents/{incident_id}", Call(json={"facts": {"trains_affected": 41}}))
_static("POST", "/api/incidents/{incident_id}/notices", Call(json={"template": "notice-initial"}))
_static(
    "POST",
    "/api/incidents/{incident_id}/passenger-groups",
    Call(json={"station": "Nanjing South", "count": 30}),
)
_static("PATCH", "/api/passenger-groups/{group_id}", Call(json={"count": 125}))
_static(
    "POST",
    "/api/passenger-groups/{group_id}/care",
    Call(json={"need": "water", "what": "bottled water", "quantity": 120}),
)
_static(
    "POST",
    "/api/passenger-groups/{group_id}/passengers",
    Call(content=MANIFEST, headers={"Content-Type": "text/csv"}),
)
_static(
    "POST",
    "/api/passenger-groups/{group_id}/broadcasts",
    Call(json={"texts": {"zh": "请留意广播。", "en": "Listen for calls."}}),
)
_static("POST", "/api/passenger-groups/{group_id}/inquiries", Call(json=QUESTION))
_static("POST", "/api/incidents/{incident_id}/inquiries", Call(json=QUESTION))
_static(
    "PATCH",
    "/api/inquiries/{inquiry_id}",
    Call(json={"callback_status": "done", "outcome": "called back"}),
)
_static(
    "POST",
    "/api/drill-schedules",
    Call(json={**DRILL, "cron": "0 3 * * 1", "title": "Monday drill"}),
)
_static("POST", "/api/drills", Call(json=DRILL))
_static("GET", "/api/drills/report", Call(query="?playbook=mass-delay"))
_static("PATCH", "/api/corrective-actions/{action_id}", Call(json={"status": "in_progress"}))
_drill("GET", "/api/drills/{incident_id}/metrics")
_drill("GET", "/api/drills/{incident_id}/report")
_drill(
    "POST",
    "/api/drills/{incident_id}/evaluations",
    json={
        "ratings": [{"task": "First notice", "rating": "P"}],
        "corrective_actions": [
            {"title": "Template", "owner": "li.na", "due_at": "2026-12-08T10:00:00+08:00"}
        ],
    },
)
_static(
    "POST",
    "/declare/{playbook_id}",
    Call(
        form={
            "severity": "III",
            "title": "Console declaration",
            "mode": "live",
            "intent": "declare",
            "facts.line": "G",
            "facts.trains_affected": "40",
            "facts.expected_delay_min": "90",
        }
    ),
)
_static("POST", "/incidents/{incident_id}/severity", Call(form={"severity": "III"}))
_static(
    "POST",
    "/incidents/{incident_id}/facts",
    Call(form={"facts.line": "G", "facts.expected_delay_min": "90", "facts.trains_affected": "41"}),
)
RECIPES[("POST", "/incidents/{incident_id}/status")] = lambda w, role: Call(
    ids={"incident_id": w.ids["spare"]}, form={"status": "contained"}
)
_static("POST", "/incidents/{incident_id}/stages/{stage}/fire", Call(form={}))
_static("POST", "/incidents/{incident_id}/notices", Call(form={"template": "notice-initial"}))
_static(
    "POST",
    "/incidents/{incident_id}/passenger-groups",
    Call(form={"group.train": "G5678", "group.count": "40"}),
)
_static(
    "POST",
    "/incidents/{incident_id}/inquiries",
    Call(form={"inquiry.question": "Is there water?", "inquiry.phone": "13812345678"}),
)
_static(
    "POST", "/incidents/{incident_id}/inquiries/{inquiry_id}/done", Call(form={"outcome": "ok"})
)
_static("POST", "/roster/people/{person_id}/test", Call(form={}))
_static("GET", "/drills/trend.svg", Call(query="?playbook=mass-delay"))
_drill("GET", "/drills/{incident_id}")
_drill(
    "POST",
    "/drills/{incident_id}/evaluations",
    form={"ratings.0.task": "First notice", "ratings.0.rating": "P"},
)
_drill("POST", "/drills/{incident_id}/actions/{action_id}", form={"status": "in_progress"})


@recipe("PATCH", "/api/tasks/{task_id}")
def _change_task(w: World, role: str) -> Call:
    return Call(ids={"task_id": w.task()}, json={"status": "acknowledged"})


@recipe("POST", "/tasks/{task_id}")
def _change_task_form(w: World, role: str) -> Call:
    return Call(ids={"task_id": w.task()}, form={"status": "acknowledged"})


@recipe("POST", "/api/incidents/{incident_id}/authority-reports")
def _open_report(w: World, role: str) -> Call:
    return Call(ids={"incident_id": w.incident()}, json={"fields": {}})


@recipe("POST", "/api/authority-reports/{report_id}/submit")
def _submit_report(w: World, role: str) -> Call:
    incident = w.incident()
    made = w.clients["admin"].post(
        f"/api/incidents/{incident}/authority-reports", json={"fields": {}}
    )
    return Call(ids={"report_id": created(made)}, json={"to": "bureau dispatch", "via": "phone"})


_static("PUT", "/api/incidents/{incident_id}/roles/{role}", Call(json={"person": "sun.hao"}))
_static(
    "POST",
    "/api/incidents/{incident_id}/tasks",
    Call(json={"title": "Open the waiting room", "department": "inquiry", "due_minutes": 20}),
)
_static("PATCH", "/api/authority-reports/{report_id}", Call(json={"fields": {}}))
_static(
    "POST",
    "/api/incidents/{incident_id}/reached-by-hand",
    Call(json={"person": "li.na", "by": "zhang.wei", "note": "by the desk phone"}),
)
_static("POST", "/api/handovers", Call(json={"outgoing": "night shift"}))
_static("POST", "/incidents/{incident_id}/roles", Call(form={"role": "liaison", "person": "ma.li"}))
_static(
    "POST",
    "/incidents/{incident_id}/tasks",
    Call(form={"title": "Count the stranded", "owner": "department:inquiry", "due_minutes": "15"}),
)
_static("POST", "/handover", Call(form={"outgoing": "night shift"}))


def fill(path: str, ids: dict[str, str]) -> str:
    """``path`` with its parameters replaced by the objects ``ids`` names."""
    return PARAM.sub(lambda m: ids[m.group(1)], path)


def perform(w: World, row: Row, role: str) -> httpx.Response:
    call = RECIPES.get((row.method, row.path), lambda w, role: Call())(w, role)
    ids = {**w.ids, **call.ids}
    url = fill(row.path, ids) + call.query
    data = None
    if call.form is not None and not row.path.startswith("/api/"):
        data = call.form if call.client else {**call.form, "csrf": w.csrf.get(role, "")}
    return (call.client or w.clients[role]).request(
        row.method,
        url,
        json=call.json,
        data=data,
        content=call.content,
        headers=call.headers,
        follow_redirects=False,
    )


def outcome(answer: httpx.Response) -> int | str:
    location = answer.headers.get("location", "")
    if answer.status_code == 303 and location.startswith("/login?next="):
        return LOGIN
    return answer.status_code


# -- the routes of the app, and of the table -------------------------------------------------
def shape(method: str, path: str) -> tuple[str, str]:
    """A route as method and path, whatever its parameters are called."""
    return method, re.sub(r"{[^}]*}", "{}", path)


def app_routes(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            inner = list(route.routes)
            if inner:
                found |= app_routes(inner, prefix + route.path)
            else:  # an app mounted whole (static files): any path under it
                found.add(shape("GET", f"{prefix}{route.path}/{{path}}"))
        elif isinstance(route, Route):
            found |= {shape(m, prefix + route.path) for m in (route.methods or set()) - {"HEAD"}}
        else:
            pytest.fail(f"a route of a kind the matrix does not know: {route!r}")
    return found


def test_the_table_has_each_route_once() -> None:
    shapes = [shape(r.method, r.path) for r in ROUTES]
    assert len(shapes) == len(set(shapes))
    assert all(set(r.expect) == set(ROLES) for r in ROUTES)


def test_every_route_of_the_app_is_in_the_table(world: World) -> None:
    missing = app_routes(list(world.app.routes)) - {shape(r.method, r.path) for r in ROUTES}
    assert not missing, f"add these routes to tests/web/access_matrix.py: {sorted(missing)}"


def test_every_route_of_the_table_is_in_the_app(world: World) -> None:
    served = app_routes(list(world.app.routes))
    absent = [r for r in ROUTES if not r.pending and shape(r.method, r.path) not in served]
    assert not absent, f"the table names routes the app does not serve: {absent}"
    landed = [r for r in ROUTES if r.pending and shape(r.method, r.path) in served]
    assert not landed, f"these routes are served now: drop pending= from their rows: {landed}"


@pytest.mark.parametrize("row", ROUTES, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_each_role_gets_what_the_contract_says(world: World, row: Row) -> None:
    if row.pending and shape(row.method, row.path) not in app_routes(list(world.app.routes)):
        pytest.skip(f"{row.pending}: not in the app yet")
    answers = {role: perform(world, row, role) for role in ROLES}
    got = {role: outcome(answer) for role, answer in answers.items()}
    assert got == dict(row.expect), {
        r: a.text[:300] for r, a in answers.items() if got[r] != row.expect[r]
    }
    for answer in answers.values():
        if row.path.startswith("/api/") and answer.status_code in (401, 403):
            assert answer.headers["content-type"] == "application/problem+json"
    world.clock.advance(seconds=10)  # the walk takes time, as a real one would


# -- a page of one's own ----------------------------------------------------------------------
def test_staff_acknowledge_their_own_pages_and_a_duty_manager_any(world: World) -> None:
    incident = world.ids["incident_id"]
    staff, duty = world.clients["staff"], world.clients["duty_manager"]
    theirs, _ = world.fresh_page(OTHER_PERSON)
    refused = staff.post(f"/api/pages/{theirs}/ack")
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    console = staff.post(
        f"/incidents/{incident}/pages/{theirs}/ack",
        data={"csrf": world.csrf["staff"]},
        follow_redirects=False,
    )
    assert console.status_code == 303  # back to the board, with the refusal as a message
    assert world.page_status(theirs) == "pending"
    own, _ = world.fresh_page(STAFF_PERSON)
    acked = staff.post(f"/api/pages/{own}/ack")
    assert acked.status_code == 200 and acked.json()["status"] == "acked"
    assert acked.json()["acked_by"] == STAFF_PERSON
    by_duty = duty.post(f"/api/pages/{theirs}/ack")
    assert by_duty.status_code == 200 and world.page_status(theirs) == "acked"


def test_a_viewer_who_is_paged_still_cannot_acknowledge_by_api_or_console(world: World) -> None:
    """Acknowledging is for staff (own pages) and duty managers: a viewer or an evaluator
    linked to the paged person is refused too (they use the signed link)."""
    page_id, _ = world.fresh_page(OTHER_PERSON)
    for role in ("viewer", "evaluator"):
        name = f"{role}-paged"
        with world.db.transaction() as session:
            _, token = security.add_user(
                name,
                role,
                session=session,
                now=world.clock.now(),
                person_id=OTHER_PERSON,
                password=name,
            )
        client = world.new_client()
        api = client.post(f"/api/pages/{page_id}/ack", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 403
        csrf = sign_in(client, name)
        console = client.post(
            f"/incidents/{world.ids['incident_id']}/pages/{page_id}/ack",
            data={"csrf": csrf},
            follow_redirects=False,
        )
        assert console.status_code == 403
    assert world.page_status(page_id) == "pending"


# -- fields a body may not carry -------------------------------------------------------------
@dataclass(frozen=True)
class Body:
    method: str
    path: str
    role: str
    fields: tuple[str, ...]  # fields this route does not take: each is refused, alone
    watch: str | None = None  # a GET that must read the same afterwards


NOT_TAKEN = ("id", "role")
BODIES = [
    Body("POST", "/api/incidents", "duty_manager", ("status", "created_by", "declared_by")),
    Body(
        "PATCH",
        "/api/incidents/{incident_id}",
        "duty_manager",
        ("title", "mode", "declared_by"),  # status is allowed here
        watch="/api/incidents/{incident_id}",
    ),
    Body("POST", "/api/incidents/{incident_id}/stages/{stage}/fire", "duty_manager", ("status",)),
    Body("POST", "/api/pages/{page_id}/ack", "duty_manager", ("status", "person")),
    Body("POST", "/api/incidents/{incident_id}/notices", "duty_manager", ("status", "incident_id")),
    Body("POST", "/api/notices/{notice_id}/versions", "duty_manager", ("status", "number")),
    Body("POST", "/api/notices/{notice_id}/publish", "duty_manager", ("status", "approved_by")),
    Body(
        "POST",
        "/api/incidents/{incident_id}/passenger-groups",
        "duty_manager",
        ("status", "incident_id", "created_by"),
    ),
    Body(
        "PATCH",
        "/api/passenger-groups/{group_id}",
        "duty_manager",
        ("incident_id", "created_by"),  # status (stranded, cleared) is allowed here
        watch="/api/passenger-groups/{group_id}",
    ),
    Body("POST", "/api/passenger-groups/{group_id}/care", "staff", ("recorded_by", "status")),
    Body("POST", "/api/passenger-groups/{group_id}/broadcasts", "duty_manager", ("status", "mode")),
    Body("POST", "/api/broadcasts/{broadcast_id}/resend", "duty_manager", ("status",)),
    Body("POST", "/api/passenger-groups/{group_id}/inquiries", "staff", ("status", "created_by")),
    Body("POST", "/api/incidents/{incident_id}/inquiries", "staff", ("status", "incident_id")),
    Body(
        "PATCH",
        "/api/inquiries/{inquiry_id}",
        "staff",
        ("status", "incident_id", "created_by"),
        watch="/api/inquiries/{inquiry_id}",
    ),
    Body("POST", "/api/drill-schedules", "duty_manager", ("active", "next_run_at", "created_by")),
    Body("POST", "/api/drills", "evaluator", ("mode", "status")),
    Body(
        "POST",
        "/api/drills/{drill}/evaluations",
        "evaluator",
        ("evaluator", "incident_id", "corrective_actions.0.status"),
    ),
    Body(
        "PATCH",
        "/api/corrective-actions/{action_id}",
        "staff",
        ("owner", "due_at"),  # status is the point of this route
        watch="/api/corrective-actions",
    ),
    Body("PUT", "/api/incidents/{incident_id}/roles/{role}", "duty_manager", ("status",)),
    Body("POST", "/api/incidents/{incident_id}/tasks", "duty_manager", ("status", "incident_id")),
    Body(
        "PATCH",
        "/api/tasks/{task_id}",
        "staff",
        ("incident_id", "created_by"),  # status is allowed here
        watch="/api/tasks/{task_id}",
    ),
    Body(
        "POST",
        "/api/incidents/{incident_id}/authority-reports",
        "duty_manager",
        ("status", "number"),
    ),
    Body(
        "PATCH",
        "/api/authority-reports/{report_id}",
        "duty_manager",
        ("status", "submitted_by"),
        watch="/api/authority-reports/{report_id}",
    ),
    Body("POST", "/api/authority-reports/{report_id}/submit", "duty_manager", ("status",)),
    Body("POST", "/api/incidents/{incident_id}/reached-by-hand", "staff", ("status",)),
    Body("POST", "/api/handovers", "duty_manager", ("incoming", "status")),
]
# Not here: POST /inbound/{channel} takes what SMS gateways post, extra fields and all (it reads
# only from and text); POST /api/passenger-groups/{id}/passengers takes CSV.
WATCHED = (
    Incident,
    Notice,
    NoticeVersion,
    Page,
    PassengerGroup,
    CareEntry,
    Inquiry,
    Broadcast,
    DrillSchedule,
    Evaluation,
    CorrectiveAction,
    Job,
    TimelineEvent,
    Task,
    AuthorityReport,
    Handover,
)


def counts(w: World) -> dict[str, int]:
    with w.db.reading() as session:
        return {
            m.__name__: int(session.scalar(select(func.count()).select_from(m)) or 0)
            for m in WATCHED
        }


def _with(body: dict[str, Any], name: str) -> dict[str, Any]:
    """``body`` with one more field (``a.0.b`` puts it in the first item of list ``a``)."""
    head, _, rest = name.partition(".0.")
    if not rest:
        return {**body, name: "surprise"}
    return {**body, head: [{**body[head][0], rest: "surprise"}]}


def test_every_json_route_is_checked_for_fields_it_does_not_take() -> None:
    """A new JSON route must say here which fields it refuses."""
    checked = {shape(b.method, b.path) for b in BODIES}
    json_routes = {
        shape(r.method, r.path)
        for r in ROUTES
        if r.path.startswith("/api/") and r.method in ("POST", "PUT", "PATCH")
    }
    skipped = {shape("POST", "/api/passenger-groups/{}/passengers")}
    assert json_routes - skipped == checked


@pytest.mark.parametrize("case", BODIES, ids=[f"{b.method} {b.path}" for b in BODIES])
def test_a_field_the_route_does_not_take_is_refused_and_changes_nothing(
    world: World, case: Body
) -> None:
    row = next(r for r in ROUTES if shape(r.method, r.path) == shape(case.method, case.path))
    for name in (*NOT_TAKEN, *case.fields):
        call = RECIPES.get((row.method, row.path), lambda w, role: Call())(world, case.role)
        ids = {**world.ids, "incident_id": world.ids["incident_id"], **call.ids}
        url = fill(case.path, ids)
        watch = fill(case.watch, ids) if case.watch else None
        client = world.clients[case.role]
        before = (counts(world), client.get(watch).json() if watch else None)
        body = call.json if isinstance(call.json, dict) else {}
        answer = client.request(case.method, url, json=_with(body, name))
        assert answer.status_code == 422, (name, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == [name], answer.text
        assert (counts(world), client.get(watch).json() if watch else None) == before, name


# -- bodies too large ------------------------------------------------------------------------
def _caller(row: Row) -> str:
    """A role the route lets in (anonymous for public routes)."""
    return next(r for r in ROLES if row.expect[r] not in (401, 403, LOGIN))


BODY_ROUTES = [
    r
    for r in ROUTES
    if r.method in ("POST", "PUT", "PATCH")
    and not r.pending
    and r.path != "/api/passenger-groups/{group_id}/passengers"  # its own, larger limit
]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("row", BODY_ROUTES, ids=[f"{r.method} {r.path}" for r in BODY_ROUTES])
def test_a_body_over_the_limit_is_refused_with_413(world: World, row: Row, chunked: bool) -> None:
    limit = world.app.state.incident.settings.max_body_bytes
    role = _caller(row)
    url = fill(row.path, {**dict.fromkeys(PARAM.findall(row.path), "x"), **world.ids})
    console = not row.path.startswith(("/api/", "/ack/", "/inbound/"))
    ctype = "application/x-www-form-urlencoded" if console else "application/json"
    half = b"x" * (limit // 2 + 1)
    content: Any = iter([half, half]) if chunked else half + half
    answer = world.clients[role].request(
        row.method, url, content=content, headers={"Content-Type": ctype}, follow_redirects=False
    )
    assert answer.status_code == 413, answer.text[:300]
    kind = "text/html" if console else "application/problem+json"
    assert answer.headers["content-type"].startswith(kind)
    assert ("content-length" in answer.request.headers) != chunked
