"""One app for the whole fuzz module: SQLite, the demo roster, an admin token, and a real
incident with pages, a published notice, a passenger group with a manifest, care, an inquiry
and a broadcast, a drill with an evaluation and a corrective action, a drill schedule.

Fuzzing runs on SQLite only: it proves the handlers and the schemas, not the database, and
keeps the PostgreSQL run short.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from incident import roster, security
from incident.app import create_app
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.models import InboxMessage
from incident.settings import Settings
from incident.worker import Worker
from tests.conftest import DEMO_ROSTER, PG_URL, PLAYBOOKS
from tests.factories import MASS_DELAY_FACTS

MANIFEST = (
    "name,phone,seat,coach,language,ticket\n"
    "张三,13812340001,12A,05,zh,E100000001\n"
    "Ann Lee,+8613812340002,12B,05,en,E100000002\n"
)


@dataclass
class FuzzApp:
    """The app under fuzzing, a client on it, an admin's headers and the ids it holds."""

    app: Starlette
    client: TestClient
    headers: dict[str, str]
    known: dict[str, str] = field(default_factory=dict)  # path parameter -> a real object's id


def _created(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def seed(
    client: TestClient, headers: dict[str, str], worker: Worker, db: Database
) -> dict[str, str]:
    """Make one of every object through the API; return their ids by path parameter name."""
    declaration = {
        "playbook": "mass-delay",
        "severity": "III",
        "title": "Line G signal fault",
        "facts": MASS_DELAY_FACTS,
    }
    incident = _created(client.post("/api/incidents", json=declaration, headers=headers))
    worker.drain()
    pages = client.get(f"/api/incidents/{incident['id']}/pages", headers=headers).json()["items"]
    assert pages, "the declaration paged no one"
    notice = _created(
        client.post(
            f"/api/incidents/{incident['id']}/notices",
            json={"languages": {"zh": {"headline": "G线晚点", "body": "请您耐心等候。"}}},
            headers=headers,
        )
    )
    _created(client.post(f"/api/notices/{notice['id']}/publish", headers=headers), 200)
    group = _created(
        client.post(
            f"/api/incidents/{incident['id']}/passenger-groups",
            json={"train": "G1234", "station": "Langfang", "count": 300, "needs": ["water"]},
            headers=headers,
        )
    )
    _created(
        client.post(
            f"/api/passenger-groups/{group['id']}/care",
            json={"need": "water", "what": "bottled water", "quantity": 300},
            headers=headers,
        )
    )
    upload = _created(
        client.post(
            f"/api/passenger-groups/{group['id']}/passengers",
            content=MANIFEST.encode(),
            headers={**headers, "Content-Type": "text/csv"},
        )
    )
    inquiry = _created(
        client.post(
            f"/api/passenger-groups/{group['id']}/inquiries",
            json={"question": "When do we leave?", "phone": "13812340001"},
            headers=headers,
        )
    )
    broadcast = _created(
        client.post(
            f"/api/passenger-groups/{group['id']}/broadcasts",
            json={"texts": {"zh": "列车预计一小时后开出。"}},
            headers=headers,
        ),
        202,
    )
    drill = _created(client.post("/api/drills", json=declaration, headers=headers))
    evaluation = _created(
        client.post(
            f"/api/drills/{drill['id']}/evaluations",
            json={
                "ratings": [{"task": "Page the duty director", "rating": "S"}],
                "corrective_actions": [
                    {"title": "Fix the rota", "owner": _a_person(db), "due_at": "2031-01-01T00:00Z"}
                ],
            },
            headers=headers,
        )
    )
    schedule = {**declaration, "cron": "0 10 * * 1"}
    _created(client.post("/api/drill-schedules", json=schedule, headers=headers))
    command = _command_objects(client, headers, incident["id"])
    worker.drain()
    return {
        **command,
        "incident_id": incident["id"],
        "playbook_id": "mass-delay",
        "stage": "situation-report",
        "page_id": pages[0]["id"],
        "notice_id": notice["id"],
        "group_id": group["id"],
        "upload_id": upload["id"],
        "inquiry_id": inquiry["id"],
        "broadcast_id": broadcast["id"],
        "action_id": evaluation["corrective_actions"][0]["id"],
        "token": _an_ack_token(db),
    }


def _command_objects(
    client: TestClient, headers: dict[str, str], incident_id: str
) -> dict[str, str]:
    """A task, an authority report and a handover (#10), for whichever of them the API makes:
    more real ids for the fuzzer, never a reason to stop."""
    made: dict[str, str] = {"role": "commander"}
    attempts = {
        "task_id": (
            f"/api/incidents/{incident_id}/tasks",
            {"title": "Publish the hotline script", "department": "inquiry", "due_minutes": 15},
        ),
        "report_id": (f"/api/incidents/{incident_id}/authority-reports", {}),
        "handover_id": ("/api/handovers", {"outgoing": "night shift", "note": "line G"}),
    }
    for name, (path, body) in attempts.items():
        response = client.post(path, json=body, headers=headers)
        if response.is_success and isinstance(response.json().get("id"), str):
            made[name] = response.json()["id"]
    return made


def _a_person(db: Database) -> str:
    with db.reading() as session:
        return sorted(roster.known_ids(session=session)[2])[0]


def _an_ack_token(db: Database) -> str:
    with db.reading() as session:
        bodies = session.scalars(select(InboxMessage.body)).all()
    for body in bodies:
        found = re.search(r"/ack/([^\s/]+)", body)
        if found:
            return found.group(1)
    raise AssertionError("no page carried an acknowledgement link")


@pytest.fixture(scope="module")
def fuzz_app(
    template_db: str,
    tmp_path_factory: pytest.TempPathFactory,
    catalog: Catalog,
    roster_doc: roster.RosterDoc,
) -> Iterator[FuzzApp]:
    if PG_URL:
        pytest.skip("fuzzing runs in the SQLite run only (INCIDENT_TEST_DATABASE_URL is set)")
    path = tmp_path_factory.mktemp("fuzz") / "incident.db"
    shutil.copyfile(template_db, path)
    settings = Settings(
        database_url=f"sqlite:///{path}",
        playbooks_dir=PLAYBOOKS,
        demo_roster=DEMO_ROSTER,
        worker_poll_seconds=0.05,
        rate_limit_per_minute=0,  # budgets have their own tests; here they would answer 429
    )
    db = Database.from_url(settings.database_url)
    clock = FrozenClock()
    with db.transaction() as session:
        roster.apply_roster(roster_doc, session=session)
        _, token = security.add_user("fuzz-admin", "admin", session=session, now=clock.now())
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(settings, db=db, clock=clock, catalog=catalog, run_worker=False)
    context = Context.build(settings, catalog)
    sender = Sender(context.send_policy())
    worker = Worker(db, context, clock, sender=sender, owner="fuzz")
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            known = seed(client, headers, worker, db)
            worker.heartbeat()  # a worker is alive (frozen clock: for good), so /readyz is 200
            yield FuzzApp(app=app, client=client, headers=headers, known=known)
    finally:
        sender.close()
        db.dispose()


def served_document() -> dict[str, Any]:
    """``/openapi.json`` as an app built the production way serves it (no database needed)."""
    settings = Settings(database_url="sqlite://", playbooks_dir=PLAYBOOKS, demo_roster=DEMO_ROSTER)
    catalog = Catalog.from_paths([PLAYBOOKS], None)
    db = Database.from_url(settings.database_url)
    try:
        app = create_app(settings, db=db, catalog=catalog, run_worker=False)
        document: dict[str, Any] = TestClient(app).get("/openapi.json").json()
    finally:
        db.dispose()
    return document
