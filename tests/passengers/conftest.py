"""A stranding rig: roster, a playbook with passenger messages, a real Sender and worker,
and a loopback SMS gateway; the app over TestClient."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from starlette.testclient import TestClient

from incident import response, roster, security
from incident.app import create_app
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.playbook import RosterRefs, parse_playbook_text
from incident.settings import Secret, Settings
from incident.worker import Worker
from tests.passengers.gateway import Gateway, sms_gateway

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
DRILL_NUMBERS = ("+8613900000001", "+8613900000002")

PLAYBOOK = """
id: strand-test
version: 1
title: {zh: 滞留测试, en: Stranding test}
kind: passenger_stranding
inputs:
  station: {type: str, required: true}
  passengers_stranded: {type: int, required: true, min: 1}
  stopped_since: {type: datetime}
stages:
  - id: escalate
    when: {if: "passengers_stranded >= 1000"}
    actions:
      - page: {roles: [deputy_director], ack_within: 30m, template: page}
  - id: refreshments
    when: {if: "minutes_since(stopped_since) >= 60"}
    actions:
      - passenger_message: {template: refreshments, offer: refreshments}
templates:
  page:
    zh: "【{{ severity_zh }}】{{ station }}约{{ passengers_stranded }}人滞留，请确认：{{ ack_url }}"
    en: "[Level {{ severity }}] {{ passengers_stranded }} stranded at {{ station }}: {{ ack_url }}"
  refreshments:
    zh: "{% if is_drill %}【演练】{% endif %}您已在{{ station }}滞留超过60分钟，正在为您送水。"
    en: "{% if is_drill %}[EXERCISE] {% endif %}Stranded at {{ station }} 60 min: water is coming."
"""

ROSTER = """
timezone: Asia/Shanghai
departments:
  - id: inquiry
    name: {zh: 问询组, en: Inquiry}
    head: head1
    escalation: [on_duty, section_head, deputy_director]
  - id: complaints
    name: {zh: 投诉组, en: Complaints}
  - id: directorate
    name: {zh: 中心领导, en: Directorate}
people:
  - {id: agent1, name: 张三, department: inquiry, roles: [on_duty_agent],
     contacts: ["inbox://agent1"]}
  - {id: head1, name: Head One, language: en, department: inquiry, roles: [section_head],
     contacts: ["inbox://head1"]}
  - {id: deputy1, name: 李四, department: directorate, roles: [deputy_director],
     contacts: ["inbox://deputy1"]}
  - {id: director1, name: 王五, department: directorate, roles: [duty_director],
     contacts: ["inbox://director1"]}
rota:
  - {department: inquiry, starts_on: 2026-01-01, start_time: "08:00", shift_hours: 24,
     teams: [[agent1]]}
"""


def manifest(
    rows: list[tuple[str, ...]], header: str = "name,phone,seat,coach,language,ticket"
) -> str:
    lines = [header, *(",".join(r) for r in rows)]
    return "\n".join(lines) + "\n"


class Rig:
    """The database with the rig's roster, the test playbook, a worker with a real Sender."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: FrozenClock,
        sender: Sender,
        gateway: Gateway,
    ) -> None:
        self.db, self.clock, self.gateway = db, clock, gateway
        doc = roster.parse_roster_text(ROSTER, "roster.yaml")
        with db.transaction() as session:
            roster.apply_roster(doc, session=session)
        departments, roles, people = roster.ids_in_doc(doc)
        playbook = parse_playbook_text(
            PLAYBOOK, "strand-test.yaml", RosterRefs(departments, roles, people)
        )
        self.catalog = Catalog({playbook.id: playbook})
        self.settings = replace(
            settings,
            data_keys=Secret(KEY_A),
            sms_gateway=Secret(gateway.template()),
            drill_test_numbers=",".join(DRILL_NUMBERS),
        )
        self.sender = sender
        self.worker = self.make_worker(self.settings)
        self._client: TestClient | None = None

    def make_worker(self, settings: Settings) -> Worker:
        return Worker(
            self.db,
            Context.build(settings, self.catalog),
            self.clock,
            sender=self.sender,
            owner="rig",
        )

    def client(self) -> TestClient:
        if self._client is None:
            app = create_app(
                self.settings, db=self.db, clock=self.clock, catalog=self.catalog, run_worker=False
            )
            self._client = TestClient(app, raise_server_exceptions=False)
            self._client.__enter__()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)

    def auth(self, role: str) -> dict[str, str]:
        with self.db.transaction() as session:
            _, token = security.add_user(
                f"{role}-{uuid.uuid4().hex[:6]}", role, session=session, now=self.clock.now()
            )
        return {"Authorization": f"Bearer {token}"}

    def declare(self, *, mode: str = "live", facts: dict[str, Any] | None = None) -> str:
        with self.db.transaction() as session:
            incident = response.declare(
                session=session,
                now=self.clock.now(),
                catalog=self.catalog,
                playbook_id="strand-test",
                severity="III",
                title="G1234 stopped near Langfang",
                facts=facts or {"station": "Langfang", "passengers_stranded": 1},
                mode=mode,
                actor="test",
            )
            return incident.id


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with sms_gateway() as found:
        yield found


@pytest.fixture
def fast_sender(context: Context) -> Iterator[Sender]:
    policy = replace(
        context.send_policy(),
        attempts=3,
        backoff_seconds=0.01,
        max_backoff_seconds=0.02,
        attempt_timeout=2,
        total_seconds=5,
    )
    sender = Sender(policy)
    yield sender
    sender.close()


@pytest.fixture
def rig(
    db: Database, settings: Settings, clock: FrozenClock, fast_sender: Sender, gateway: Gateway
) -> Iterator[Rig]:
    made = Rig(db, settings, clock, fast_sender, gateway)
    yield made
    made.close()
