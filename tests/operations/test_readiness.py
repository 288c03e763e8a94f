"""/readyz (#14): ready means the database answers, its schema is current and a worker is
alive to carry out what the service accepts."""

from __future__ import annotations

import logging
import time

import pytest
from starlette.testclient import TestClient

from incident import operations
from incident.clock import FrozenClock
from incident.db import Database


def beat(db: Database, clock: FrozenClock, owner: str = "w1", *, stopped: bool = False) -> None:
    with db.transaction() as session:
        operations.beat(
            owner,
            host="h1",
            pid=1,
            started_at=clock.now(),
            jobs_done=0,
            session=session,
            now=clock.now(),
            stopped=stopped,
        )


def test_readyz_is_not_ready_while_no_worker_has_beaten_lately_and_says_why(
    client: TestClient, seeded: Database, clock: FrozenClock
) -> None:
    alone = client.get("/readyz")
    assert alone.status_code == 503
    body = alone.json()
    assert body["status"] == "not ready" and body["workers_alive"] == 0
    assert body["database"] == "ok" and body["migrations"] == "current"
    assert "no worker" in body["reason"]
    beat(seeded, clock)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["workers_alive"] == 1
    clock.advance(seconds=31)  # INCIDENT_AUDITOR_WORKER_STALE_SECONDS: 30
    assert client.get("/readyz").status_code == 503
    beat(seeded, clock)
    beat(seeded, clock, "w2", stopped=True)  # a worker that said it stopped is not alive
    assert client.get("/readyz").json()["workers_alive"] == 1


def test_readyz_is_ready_while_the_embedded_worker_starts_and_not_after(
    client: TestClient,
) -> None:
    state = client.app.state.incident  # type: ignore[attr-defined]
    state.embedded_worker_started = time.monotonic()
    starting = client.get("/readyz")
    assert starting.status_code == 200, starting.text
    assert starting.json()["workers_alive"] == 0
    state.embedded_worker_started = time.monotonic() - 60  # it never beat: something is wrong
    assert client.get("/readyz").status_code == 503


def test_readyz_does_not_log_alembic_lines_on_every_call(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            client.get("/readyz")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
