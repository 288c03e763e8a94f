"""Request budgets: 429 problem+json with Retry-After past them, per caller, with stricter
budgets for sign-in and acknowledgement links; time from the app's clock (no sleeping)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from incident import security
from incident.app import create_app
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.settings import Settings
from incident.worker import Worker

Limited = Callable[..., TestClient]


@pytest.fixture
def limited(
    seeded: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> Iterator[Limited]:
    """``limited(rate_limit_per_minute=5, ...)``: a client of an app with those budgets."""
    clients: list[TestClient] = []

    def make(**budgets: int) -> TestClient:
        app = create_app(
            settings.replace(**budgets), db=seeded, clock=clock, catalog=catalog, run_worker=False
        )
        # a loopback peer: /metrics answers loopback only without INCIDENT_METRICS_TOKEN (#16)
        client = TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 50000))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def user(seeded: Database, clock: FrozenClock, role: str = "viewer") -> tuple[str, str]:
    """A new user (password = name): its name and its API token."""
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    with seeded.transaction() as session:
        _, token = security.add_user(name, role, session=session, now=clock.now(), password=name)
    return name, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def is_limited(answer: httpx.Response, retry_after: int) -> dict[str, Any]:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == str(retry_after)
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == 429 and problem["title"] == "Too many requests"
    return problem


def test_a_caller_past_the_budget_waits_as_retry_after_says(
    limited: Limited, seeded: Database, clock: FrozenClock
) -> None:
    client = limited(rate_limit_per_minute=5)
    _, token = user(seeded, clock)
    _, other = user(seeded, clock)
    assert [client.get("/api/me", headers=bearer(token)).status_code for _ in range(5)] == [200] * 5
    is_limited(client.get("/api/me", headers=bearer(token)), retry_after=12)  # 5/min: one per 12 s
    assert client.get("/api/me", headers=bearer(other)).status_code == 200  # a budget each
    clock.advance(seconds=11)
    is_limited(client.get("/api/me", headers=bearer(token)), retry_after=1)
    clock.advance(seconds=1)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    is_limited(client.get("/api/me", headers=bearer(token)), retry_after=12)


def test_a_refused_request_costs_nothing_and_a_minute_refills_the_whole_budget(
    limited: Limited, seeded: Database, clock: FrozenClock
) -> None:
    client = limited(rate_limit_per_minute=3)
    _, token = user(seeded, clock)
    for _ in range(3):
        client.get("/api/incidents", headers=bearer(token))
    for _ in range(10):
        assert client.get("/api/incidents", headers=bearer(token)).status_code == 429
    clock.advance(minutes=5)  # never more than one minute's worth
    answers = [client.get("/api/incidents", headers=bearer(token)).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


def test_health_readiness_metrics_and_static_files_are_never_limited(
    limited: Limited, worker: Worker
) -> None:
    worker.heartbeat()  # a worker is alive: /readyz answers 200
    client = limited(rate_limit_per_minute=1, rate_limit_public_per_minute=1)
    for path in ("/healthz", "/readyz", "/metrics", "/static/console.css"):
        assert {client.get(path).status_code for _ in range(5)} == {200}, path


def test_sign_in_attempts_have_a_stricter_budget_per_address_and_name(
    limited: Limited, seeded: Database, clock: FrozenClock
) -> None:
    client = limited(rate_limit_per_minute=100, rate_limit_login_per_minute=2)
    name, _ = user(seeded, clock)
    other, _ = user(seeded, clock)

    def sign_in(who: str) -> httpx.Response:
        client.cookies.clear()
        page = client.get("/login").text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found
        form = {"csrf": found.group(1), "name": who, "password": who}
        return client.post("/login", data=form, follow_redirects=False)

    assert [sign_in(name).status_code for _ in range(2)] == [303, 303]
    is_limited(sign_in(name), retry_after=30)
    is_limited(sign_in(name.upper()), retry_after=30)  # names are counted as typed, any case
    assert sign_in(other).status_code == 303
    clock.advance(seconds=30)
    assert sign_in(name).status_code == 303


def test_acknowledgement_links_have_a_stricter_budget_than_public_pages(
    limited: Limited,
) -> None:
    client = limited(rate_limit_ack_per_minute=2, rate_limit_public_per_minute=100)
    confirms = [client.post("/ack/not-a-token").status_code for _ in range(2)]
    assert confirms == [404, 404]  # counted whatever the answer
    is_limited(client.post("/ack/not-a-token"), retry_after=30)
    assert client.get("/ack/not-a-token").status_code == 404  # the confirm page is public
    assert client.get("/notices.atom").status_code == 200


def test_public_feeds_are_counted_per_address_apart_from_the_api(
    limited: Limited, seeded: Database, clock: FrozenClock
) -> None:
    client = limited(rate_limit_per_minute=2, rate_limit_public_per_minute=4)
    feeds = ["/notices", "/notices.atom", "/notices.cap", "/gtfs-rt/alerts.pb"]
    assert [client.get(path).status_code for path in feeds] == [200] * 4
    is_limited(client.get("/notices"), retry_after=15)
    _, token = user(seeded, clock)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200


def test_made_up_tokens_spend_their_address_budget(
    limited: Limited, seeded: Database, clock: FrozenClock
) -> None:
    """Each made-up token would otherwise be a fresh budget: its 401 counts against the
    address, and past that budget requests with credentials from there wait."""
    client = limited(rate_limit_per_minute=3)
    refused = [
        client.get("/api/me", headers=bearer(uuid.uuid4().hex)).status_code for _ in range(3)
    ]
    assert refused == [401, 401, 401]
    is_limited(client.get("/api/me", headers=bearer(uuid.uuid4().hex)), retry_after=20)
    is_limited(client.get("/api/me"), retry_after=20)
    clock.advance(seconds=20)
    _, token = user(seeded, clock)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200


def test_console_users_are_counted_by_their_session(
    limited: Limited, seeded: Database, clock: FrozenClock
) -> None:
    client = limited(rate_limit_per_minute=4)
    name, _ = user(seeded, clock)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert token
    form = {"csrf": token.group(1), "name": name, "password": name}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303
    # the address spent 2 (the login page and the form); the signed-in user has 4 of their own
    assert [client.get("/parts/dashboard").status_code for _ in range(4)] == [200] * 4
    is_limited(client.get("/parts/dashboard"), retry_after=15)
    client.cookies.clear()
    assert client.get("/login").status_code == 200  # the address still had 2


def test_zero_turns_every_limit_off(limited: Limited, seeded: Database, clock: FrozenClock) -> None:
    client = limited(
        rate_limit_per_minute=0, rate_limit_login_per_minute=1, rate_limit_ack_per_minute=1
    )
    _, token = user(seeded, clock)
    assert {client.get("/api/me", headers=bearer(token)).status_code for _ in range(50)} == {200}
    assert {client.post("/ack/nope").status_code for _ in range(5)} == {404}
