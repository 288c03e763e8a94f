"""Command support runs against the demo roster, the shipped playbooks, the real app (over
TestClient) and a real worker; ``inbox://`` contacts deliver in-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from incident.clock import FrozenClock
from incident.db import Database
from incident.models import Page
from incident.worker import Worker

Auth = Callable[..., dict[str, str]]
MASS_DELAY = {
    "playbook": "mass-delay",
    "severity": "III",
    "title": "Line G signal fault",
    "facts": {"line": "G", "expected_delay_min": 90, "trains_affected": 40},
}


class Desk:
    """A duty manager at the console's API, with the worker beside them."""

    def __init__(
        self, client: TestClient, auth: Auth, worker: Worker, clock: FrozenClock, db: Database
    ) -> None:
        self.client, self.worker, self.clock, self.db = client, worker, clock, db
        self.auth = auth
        self.duty = auth("duty_manager")

    def declare(self, **overrides: Any) -> str:
        made = self.client.post(
            "/api/incidents", json={**MASS_DELAY, **overrides}, headers=self.duty
        )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        found = self.client.get(path, headers=headers or self.duty)
        assert found.status_code == 200, found.text
        return found.json()

    def pages(self, incident: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/incidents/{incident}/pages")["items"])

    def page_rows(self, incident: str) -> list[Page]:
        from incident import paging

        with self.db.reading() as session:
            return paging.pages_of(incident, session=session)

    def advance(self, **delta: float) -> None:
        self.clock.advance(**delta)
        self.worker.drain()


@pytest.fixture
def desk(
    client: TestClient, auth: Auth, worker: Worker, clock: FrozenClock, seeded: Database
) -> Desk:
    return Desk(client, auth, worker, clock, seeded)


from tests.console.conftest import console_login, console_user, csrf_of  # noqa: E402

__all__ = ["console_login", "console_user", "csrf_of"]
