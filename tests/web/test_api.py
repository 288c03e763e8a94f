"""The HTTP contract: declaring, changing, reading, and every error as problem+json."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.models import InboxMessage, Incident, Job, TimelineEvent
from incident.worker import Worker
from tests.factories import MASS_DELAY_FACTS, count_rows

Auth = Callable[..., dict[str, str]]
DECLARATION: dict[str, Any] = {
    "playbook": "mass-delay",
    "severity": "III",
    "title": "Line G signal fault",
    "facts": MASS_DELAY_FACTS,
}


def _is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["type"] and body["detail"]
    return body


def test_health_and_readiness(client: TestClient, worker: Worker) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 503  # no worker alive (#14)
    worker.heartbeat()
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["migrations"] == "current"


def test_api_needs_a_valid_token(client: TestClient) -> None:
    _is_problem(client.get("/api/incidents"), 401)
    _is_problem(client.get("/api/incidents", headers={"Authorization": "Bearer nope"}), 401)


def test_a_viewer_cannot_declare(client: TestClient, auth: Auth, seeded: Database) -> None:
    _is_problem(client.post("/api/incidents", json=DECLARATION, headers=auth("viewer")), 403)
    assert count_rows(seeded, Incident) == 0


def test_declare_returns_the_incident_with_its_stages(client: TestClient, auth: Auth) -> None:
    response = client.post("/api/incidents", json=DECLARATION, headers=auth("duty_manager"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "active" and body["mode"] == "live"
    assert body["playbook"]["id"] == "mass-delay" and body["playbook"]["version"] >= 1
    assert {s["id"] for s in body["stages"]} >= {"situation-report", "escalate"}
    assert response.headers["location"] == f"/api/incidents/{body['id']}"
    assert body["declared_at"].endswith("+00:00")


def test_the_same_declaration_with_one_idempotency_key_creates_one_incident(
    client: TestClient, auth: Auth, seeded: Database
) -> None:
    headers = {**auth("duty_manager"), "Idempotency-Key": "decl-1"}
    first = client.post("/api/incidents", json=DECLARATION, headers=headers)
    second = client.post("/api/incidents", json=DECLARATION, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert count_rows(seeded, Incident) == 1
    other = client.post("/api/incidents", json={**DECLARATION, "severity": "II"}, headers=headers)
    _is_problem(other, 422)
    assert count_rows(seeded, Incident) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**DECLARATION, "playbook": "no-such-plan"}, "playbook"),
        ({**DECLARATION, "severity": "V"}, "severity"),
        (
            {**DECLARATION, "facts": {**MASS_DELAY_FACTS, "expected_delay_min": "soon"}},
            "facts.expected_delay_min",
        ),
        ({**DECLARATION, "facts": {"line": "G"}}, "facts.expected_delay_min"),
        ({**DECLARATION, "facts": {**MASS_DELAY_FACTS, "colour": "red"}}, "facts.colour"),
        ({**DECLARATION, "title": "x" * 201}, "title"),
        ({**DECLARATION, "mode": "rehearsal"}, "mode"),
    ],
)
def test_bad_declarations_get_a_field_error_and_write_nothing(
    client: TestClient, auth: Auth, seeded: Database, body: dict[str, Any], field: str
) -> None:
    problem = _is_problem(
        client.post("/api/incidents", json=body, headers=auth("duty_manager")), 422
    )
    assert field in {e["field"] for e in problem["errors"]}
    assert count_rows(seeded, Incident) == 0
    assert count_rows(seeded, Job) == 0
    assert count_rows(seeded, TimelineEvent) == 0


def test_a_one_megabyte_title_and_malformed_json_are_refused(
    client: TestClient, auth: Auth, seeded: Database
) -> None:
    headers = auth("duty_manager")
    _is_problem(
        client.post(
            "/api/incidents", json={**DECLARATION, "title": "x" * 1_000_000}, headers=headers
        ),
        413,
    )
    _is_problem(
        client.post(
            "/api/incidents",
            content=b'{"playbook": ',
            headers={**headers, "Content-Type": "application/json"},
        ),
        400,
    )
    _is_problem(
        client.post(
            "/api/incidents",
            content=b"[1, 2]",
            headers={**headers, "Content-Type": "application/json"},
        ),
        400,
    )
    _is_problem(
        client.post(
            "/api/incidents", content=b"a=b", headers={**headers, "Content-Type": "text/plain"}
        ),
        415,
    )
    assert count_rows(seeded, Incident) == 0


def test_unknown_routes_and_methods_are_problems(client: TestClient, auth: Auth) -> None:
    _is_problem(client.get("/api/nothing-here"), 404)
    _is_problem(client.delete("/api/incidents", headers=auth("viewer")), 405)
    _is_problem(client.get("/api/incidents/inc_missing", headers=auth("viewer")), 404)


def test_raising_severity_over_http_fires_escalation_once(
    client: TestClient, auth: Auth, worker: Worker, clock: FrozenClock
) -> None:
    headers = auth("duty_manager")
    body = {**DECLARATION, "facts": {**MASS_DELAY_FACTS, "expected_delay_min": 45}}
    incident_id = client.post("/api/incidents", json=body, headers=headers).json()["id"]
    worker.drain()
    for severity in ("II", "I"):
        response = client.patch(
            f"/api/incidents/{incident_id}", json={"severity": severity}, headers=headers
        )
        assert response.status_code == 200, response.text
        worker.drain()
    stages = {
        s["id"]: s
        for s in client.get(f"/api/incidents/{incident_id}", headers=headers).json()["stages"]
    }
    assert stages["escalate"]["state"] == "fired" and stages["escalate"]["fire_count"] == 1
    events = client.get(f"/api/incidents/{incident_id}/timeline", headers=headers).json()
    fired = [
        e
        for e in events["items"]
        if e["kind"] == "stage:fired" and e["data"]["stage"] == "escalate"
    ]
    assert len(fired) == 1


def test_patch_merges_facts_and_refuses_bad_transitions(client: TestClient, auth: Auth) -> None:
    headers = auth("duty_manager")
    incident_id = client.post("/api/incidents", json=DECLARATION, headers=headers).json()["id"]
    patched = client.patch(
        f"/api/incidents/{incident_id}", json={"facts": {"trains_affected": 55}}, headers=headers
    ).json()
    assert patched["facts"]["trains_affected"] == 55
    assert patched["facts"]["expected_delay_min"] == 90
    resolved = client.patch(
        f"/api/incidents/{incident_id}", json={"status": "resolved"}, headers=headers
    )
    assert resolved.json()["status"] == "resolved"
    _is_problem(
        client.patch(f"/api/incidents/{incident_id}", json={"status": "active"}, headers=headers),
        409,
    )
    _is_problem(
        client.patch(f"/api/incidents/{incident_id}", json={"severity": "VI"}, headers=headers), 422
    )


def test_firing_a_pending_stage_early(client: TestClient, auth: Auth, worker: Worker) -> None:
    headers = auth("duty_manager")
    incident_id = client.post("/api/incidents", json=DECLARATION, headers=headers).json()["id"]
    response = client.post(
        f"/api/incidents/{incident_id}/stages/situation-report/fire", headers=headers
    )
    assert response.status_code == 202
    worker.drain()
    stage = next(
        s
        for s in client.get(f"/api/incidents/{incident_id}", headers=headers).json()["stages"]
        if s["id"] == "situation-report"
    )
    assert stage["state"] == "fired"
    _is_problem(
        client.post(f"/api/incidents/{incident_id}/stages/situation-report/fire", headers=headers),
        409,
    )
    _is_problem(client.post(f"/api/incidents/{incident_id}/stages/nope/fire", headers=headers), 404)


def test_incident_list_is_paginated_newest_first(
    client: TestClient, auth: Auth, clock: FrozenClock
) -> None:
    headers = auth("duty_manager")
    ids = []
    for _ in range(5):
        ids.append(client.post("/api/incidents", json=DECLARATION, headers=headers).json()["id"])
        clock.advance(minutes=1)
    page = client.get("/api/incidents?limit=2", headers=headers).json()
    seen = [i["id"] for i in page["items"]]
    while page["next_cursor"]:
        page = client.get(
            f"/api/incidents?limit=2&cursor={page['next_cursor']}", headers=headers
        ).json()
        seen += [i["id"] for i in page["items"]]
    assert seen == list(reversed(ids))
    _is_problem(client.get("/api/incidents?limit=0", headers=headers), 400)
    _is_problem(client.get("/api/incidents?status=lost", headers=headers), 400)


def test_playbooks_are_listed_with_stages_and_inputs(
    client: TestClient, auth: Auth, catalog: Catalog
) -> None:
    body = client.get("/api/playbooks", headers=auth("viewer")).json()
    assert {p["id"] for p in body["items"]} == set(catalog.ids())
    one = client.get("/api/playbooks/mass-delay", headers=auth("viewer")).json()
    assert one["stages"] and one["inputs"]["expected_delay_min"]["required"] is True
    _is_problem(client.get("/api/playbooks/none", headers=auth("viewer")), 404)


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/api/incidents"] and "patch" in paths["/api/incidents/{incident_id}"]


def test_the_demo_inbox_shows_times_in_the_centres_time_zone(
    client: TestClient, seeded: Database
) -> None:
    with seeded.transaction() as session:
        session.add(
            InboxMessage(
                address="inbox://agent1",
                subject="Page",
                body="Line G signal fault",
                idempotency_key="inbox-tz-test",
                received_at=datetime(2026, 11, 22, 1, 0, tzinfo=UTC),
            )
        )
    page = client.get("/demo/inbox").text
    assert "2026-11-22 09:00:00 CST" in page  # Asia/Shanghai, the default time zone
