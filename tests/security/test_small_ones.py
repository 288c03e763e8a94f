"""#16, the small ones: bad headers and bodies get 4xx not 500, 405 says Allow, unknown
notices keep no memory, the demo inbox and /metrics are closed unless allowed, the printed
call tree hides passwords and robot tokens, and a roster in another time zone is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from incident.app import create_app
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.models import ContactMethod
from incident.notices.cache import FeedCache
from incident.settings import Secret, Settings
from tests.conftest import DEMO_ROSTER

ROOT = Path(__file__).resolve().parents[2]
Auth = Callable[..., dict[str, str]]
MakeClient = Callable[..., TestClient]


@pytest.fixture
def app_with(
    seeded: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> Iterator[MakeClient]:
    """``app_with(demo_inbox=False, client=(...))``: a client of an app with those settings."""
    made: list[TestClient] = []

    def make(client: tuple[str, int] = ("testclient", 50000), **changes: object) -> TestClient:
        app = create_app(
            settings.replace(**changes), db=seeded, clock=clock, catalog=catalog, run_worker=False
        )
        test_client = TestClient(app, raise_server_exceptions=False, client=client)
        made.append(test_client.__enter__())
        return test_client

    yield make
    for test_client in made:
        test_client.__exit__(None, None, None)


def test_a_non_ascii_inbound_secret_is_refused_not_a_server_error(app_with: MakeClient) -> None:
    client = app_with(inbound_secret=Secret("the-inbound-secret"))
    for name in ("X-Incident-Secret", "X-Incident-Signature"):
        answer = client.post(
            "/inbound/sms",
            headers={name: "秘密-é".encode()},
            json={"from": "inbox://li.na", "text": "1"},
        )
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        '{"a":' * 3000 + "1" + "}" * 3000,
        "[" * 3000 + "]" * 3000,
        '{"facts":' + "[" * 40 + "]" * 40 + "}",
    ],
)
def test_a_deeply_nested_json_body_is_a_400(client: TestClient, auth: Auth, body: str) -> None:
    answer = client.post(
        "/api/incidents",
        content=body.encode(),
        headers={**auth("duty_manager"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_deeply_nested_inbound_reply_is_a_400(app_with: MakeClient) -> None:
    client = app_with(inbound_secret=Secret("the-inbound-secret"))
    answer = client.post(
        "/inbound/sms",
        content=("[" * 3000 + "]" * 3000).encode(),
        headers={"X-Incident-Secret": "the-inbound-secret", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/drills", {"GET", "POST"}),
        ("PUT", "/healthz", {"GET"}),
        ("POST", "/notices", {"GET"}),
    ],
)
def test_a_405_names_the_allowed_methods(
    client: TestClient, method: str, path: str, allowed: set[str]
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == 405
    assert allowed <= {m.strip() for m in answer.headers["allow"].split(",")}
    assert answer.headers["content-type"] == "application/problem+json"


def test_unknown_notices_keep_no_lock_in_the_notice_cache(client: TestClient) -> None:
    for n in range(200):
        assert client.get(f"/notices/ntc_unknown_{n}").status_code == 404
    cache = client.app.state.notice_cache  # type: ignore[attr-defined]
    assert isinstance(cache, FeedCache)
    assert len(cache._key_locks) <= 2  # the page itself, at most


def test_the_demo_inbox_is_404_unless_the_demo_is_on(app_with: MakeClient) -> None:
    assert app_with(demo_inbox=False).get("/demo/inbox").status_code == 404
    assert app_with(demo_inbox=True).get("/demo/inbox").status_code == 200


def test_metrics_answer_loopback_only_or_the_token(app_with: MakeClient) -> None:
    assert app_with().get("/metrics").status_code == 403
    assert app_with(client=("127.0.0.1", 50000)).get("/metrics").status_code == 200
    tokened = app_with(metrics_token=Secret("scrape-token-123"))
    assert tokened.get("/metrics").status_code == 401
    assert tokened.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    scraped = tokened.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert scraped.status_code == 200 and "incident_jobs_due" in scraped.text
    local = app_with(client=("127.0.0.1", 50000), metrics_token=Secret("scrape-token-123"))
    assert local.get("/metrics").status_code == 401  # a token, once set, is for everyone


SECRETS = ("hunter2pass", "robottoken1234567890abcdef", "AAHsecretrobottoken1234567890")


def test_the_call_tree_shows_numbers_but_never_passwords_or_robot_tokens(
    client: TestClient, auth: Auth, seeded: Database
) -> None:
    with seeded.transaction() as session:
        for position, url in enumerate(
            (
                "json://admin:hunter2pass@hooks.example/notify",
                "dingtalk://robottoken1234567890abcdef/",
                "tgram://123456789:AAHsecretrobottoken1234567890/12345",
                "tel://+861088886666",
            ),
            start=5,
        ):
            session.add(ContactMethod(person_id="feng.yu", position=position, url=url))
    duty = auth("duty_manager")
    for fmt in ("json", "md", "html"):
        answer = client.get(f"/api/playbooks/network-outage/calltree?format={fmt}", headers=duty)
        assert answer.status_code == 200, answer.text
        assert not [s for s in SECRETS if s in answer.text], fmt
        assert "tel://+861088886666" in answer.text and "hooks.example" in answer.text


def test_a_roster_in_another_time_zone_than_the_setting_is_refused(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env.update(
        INCIDENT_DATABASE_URL=database_url,
        INCIDENT_TIMEZONE="Europe/Berlin",
        INCIDENT_LOG_LEVEL="WARNING",
    )
    result = subprocess.run(
        [sys.executable, "-m", "incident", "roster", "load", str(DEMO_ROSTER)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "INCIDENT_TIMEZONE" in result.stderr
