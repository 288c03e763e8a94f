"""Paging against real peers on loopback: delivery, retries, failover, escalation, acks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from incident import paging, response, roster, security
from incident.app import create_app
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.models import Delivery, DeliveryAttempt, Page, TimelineEvent
from incident.playbook import RosterRefs, parse_playbook_text
from incident.settings import Settings
from incident.worker import Worker
from tests.peers import HttpReceiver, http_receiver, smtp_receiver

PLAYBOOK = """
id: page-test
version: 1
title: {zh: 呼叫测试, en: Paging test}
kind: mass_delay
inputs:
  line: {type: str, required: true}
stages:
  - id: activate
    when: declared
    actions:
      - page: {departments: [inquiry], ack_within: 5m, template: page}
  - id: stand-down
    when: resolved
    actions:
      - page: {paged_so_far: true, template: page}
templates:
  page:
    zh: "【{{ severity_zh }}】{{ title }}，请确认：{{ ack_url }}"
    en: "[Level {{ severity }}] {{ title }}. Acknowledge: {{ ack_url }}"
"""


def roster_yaml(agent_contacts: list[str], head: str, deputy: str, director: str) -> str:
    def contacts(urls: list[str]) -> str:
        return "[" + ", ".join(f'"{u}"' for u in urls) + "]"

    return f"""
timezone: Asia/Shanghai
departments:
  - id: inquiry
    name: {{zh: 问询组, en: Inquiry}}
    head: head1
    escalation: [on_duty, section_head, deputy_director]
  - id: directorate
    name: {{zh: 中心领导, en: Directorate}}
people:
  - {{id: agent1, name: 张三, language: zh-CN, department: inquiry, roles: [on_duty_agent],
      contacts: {contacts(agent_contacts)}}}
  - {{id: head1, name: Head One, language: en, department: inquiry, roles: [section_head],
      contacts: ["{head}"]}}
  - {{id: deputy1, name: 李四, department: directorate, roles: [deputy_director],
      contacts: ["{deputy}"]}}
  - {{id: director1, name: 王五, department: directorate, roles: [duty_director, director],
      contacts: ["{director}"]}}
rota:
  - {{department: inquiry, starts_on: 2026-01-01, start_time: "08:00", shift_hours: 24,
      teams: [[agent1]]}}
"""


class Rig:
    """A database with a roster pointing at loopback peers, the test playbook, a worker."""

    def __init__(
        self, db: Database, settings: Settings, clock: FrozenClock, roster_text: str, sender: Sender
    ) -> None:
        self.db, self.clock = db, clock
        doc = roster.parse_roster_text(roster_text, "roster.yaml")
        with db.transaction() as session:
            roster.apply_roster(doc, session=session)
        departments, roles, people = roster.ids_in_doc(doc)
        playbook = parse_playbook_text(
            PLAYBOOK, "page-test.yaml", RosterRefs(departments, roles, people)
        )
        self.catalog = Catalog({playbook.id: playbook})
        self.ctx = Context.build(settings, self.catalog)
        self.worker = Worker(db, self.ctx, clock, sender=sender, owner="rig")
        self.settings = settings

    def declare(self, mode: str = "live") -> str:
        with self.db.transaction() as session:
            incident = response.declare(
                session=session,
                now=self.clock.now(),
                catalog=self.catalog,
                playbook_id="page-test",
                severity="II",
                title="Line G stopped",
                facts={"line": "G"},
                mode=mode,
                actor="test",
            )
            return incident.id

    def page(self, incident_id: str) -> Page:
        with self.db.reading() as session:
            pages = paging.pages_of(incident_id, session=session)
            for p in pages:
                _ = p.recipients
            return next(p for p in pages if p.target_kind == "department")

    def deliveries(self, incident_id: str) -> list[Delivery]:
        with self.db.reading() as session:
            return list(
                session.scalars(
                    select(Delivery)
                    .where(Delivery.incident_id == incident_id)
                    .order_by(Delivery.id)
                )
            )

    def attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        with self.db.reading() as session:
            return list(
                session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.delivery_id == delivery_id)
                    .order_by(DeliveryAttempt.number)
                )
            )

    def events(self, incident_id: str, kind: str) -> list[TimelineEvent]:
        with self.db.reading() as session:
            return list(
                session.scalars(
                    select(TimelineEvent).where(
                        TimelineEvent.incident_id == incident_id, TimelineEvent.kind == kind
                    )
                )
            )


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as peer:
        yield peer


@pytest.fixture
def fast_sender(context: Context) -> Iterator[Sender]:
    policy = replace(
        context.send_policy(),
        backoff_seconds=0.01,
        max_backoff_seconds=0.05,
        attempt_timeout=0.5,
        total_seconds=5,
    )
    sender = Sender(policy)
    yield sender
    sender.close()


def make_rig(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    sender: Sender,
    receiver: HttpReceiver,
    agent: list[str] | None = None,
) -> Rig:
    text = roster_yaml(
        agent or [receiver.url("/ok/agent1")],
        receiver.url("/ok/head1"),
        receiver.url("/ok/deputy1"),
        receiver.url("/ok/director1"),
    )
    return Rig(db, settings, clock, text, sender)


def test_a_page_reaches_a_webhook_and_an_smtp_server_with_its_idempotency_key(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    with smtp_receiver() as (smtp_port, mails):
        mail = (
            f"mailto://127.0.0.1:{smtp_port}?to=head1@example.org"
            f"&from=incident@example.org&mode=insecure"
        )
        rig = Rig(
            db,
            settings,
            clock,
            roster_yaml(
                [receiver.url("/ok/agent1")], mail, receiver.url("/ok/d"), receiver.url("/ok/dir")
            ),
            fast_sender,
        )
        incident_id = rig.declare()
        rig.worker.drain()
        hooks = [r for r in receiver.received if r.path == "/ok/agent1"]
        assert len(hooks) == 1
        (sent,) = [d for d in rig.deliveries(incident_id) if d.person_id == "agent1"]
        assert hooks[0].headers["idempotency-key"] == sent.idempotency_key
        assert hooks[0].body["title"] == "[II] Line G stopped"
        assert "请确认：http://127.0.0.1:8000/ack/" in hooks[0].body["message"]
        assert set(hooks[0].body) == {"version", "title", "message", "attachments", "type"}
        clock.advance(minutes=5)  # nobody acknowledged: the section head is mailed
        rig.worker.drain()
        deadline = time.monotonic() + 5
        while not mails and time.monotonic() < deadline:
            time.sleep(0.05)
        (message,) = mails
        (mailed,) = [d for d in rig.deliveries(incident_id) if d.person_id == "head1"]
        assert message["Idempotency-Key"] == mailed.idempotency_key
        assert mailed.idempotency_key in message["Message-ID"]
        assert mailed.status == "delivered"


def test_a_receiver_answering_503_twice_gets_the_message_on_the_third_attempt(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    rig = make_rig(
        db, settings, clock, fast_sender, receiver, agent=[receiver.url("/flaky/agent1")]
    )
    incident_id = rig.declare()
    rig.worker.drain()
    (sent,) = [d for d in rig.deliveries(incident_id) if d.person_id == "agent1"]
    assert sent.status == "delivered" and sent.attempts == 3
    outcomes = [(a.outcome, a.status_code) for a in rig.attempts(sent.id)]
    assert outcomes == [("transient", 503), ("transient", 503), ("delivered", 200)]
    assert rig.page(incident_id).status == "sent"


def test_a_400_is_tried_once_and_the_next_contact_method_is_used(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    rig = make_rig(
        db,
        settings,
        clock,
        fast_sender,
        receiver,
        agent=[receiver.url("/bad/agent1"), "inbox://agent1"],
    )
    incident_id = rig.declare()
    rig.worker.drain()
    first, second = [d for d in rig.deliveries(incident_id) if d.person_id == "agent1"]
    assert first.status == "failed" and first.attempts == 1
    assert [(a.outcome, a.status_code) for a in rig.attempts(first.id)] == [("permanent", 400)]
    assert second.contact_position == 1 and second.status == "delivered"
    assert len([r for r in receiver.received if r.path == "/bad/agent1"]) == 1


def test_a_receiver_that_never_answers_times_out_and_delays_no_one_else(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    context: Context,
    receiver: HttpReceiver,
) -> None:
    policy = replace(
        context.send_policy(),
        attempts=2,
        attempt_timeout=0.4,
        total_seconds=2,
        backoff_seconds=0.01,
        max_backoff_seconds=0.02,
    )
    sender = Sender(policy)
    try:
        rig = make_rig(
            db,
            settings,
            clock,
            sender,
            receiver,
            agent=[receiver.url("/hang/agent1"), receiver.url("/ok/agent1-2")],
        )
        # head1 is paged at once too (a second page), to show the slow one holds no one up
        with db.transaction() as session:
            incident = response.declare(
                session=session,
                now=clock.now(),
                catalog=rig.catalog,
                playbook_id="page-test",
                severity="II",
                title="x",
                facts={"line": "G"},
                actor="t",
            )
            paging.open_page(
                incident,
                None,
                kind="person",
                target="head1",
                chain=["person:head1"],
                template="",
                ack_within=timedelta(hours=1),
                origin="extra",
                stage_key=None,
                session=session,
                now=clock.now(),
                policy=rig.ctx.policy,
                text={"zh": "测试", "en": "test"},
            )
            incident_id = incident.id
        started = time.monotonic()
        rig.worker.drain()
        elapsed = time.monotonic() - started
        head = [r for r in receiver.received if r.path == "/ok/head1"]
        assert head and head[0].at - started < 0.4, "the hanging receiver held up another"
        hung = next(d for d in rig.deliveries(incident_id) if d.person_id == "agent1")
        assert hung.status == "failed" and hung.attempts == 2
        assert all(a.outcome == "transient" and a.duration_ms < 1500 for a in rig.attempts(hung.id))
        assert elapsed < 4
        fallback = [
            d
            for d in rig.deliveries(incident_id)
            if d.person_id == "agent1" and d.contact_position == 1
        ]
        assert fallback and fallback[0].status == "delivered"
    finally:
        sender.close()


def test_an_unacknowledged_page_climbs_the_chain_at_each_deadline_then_alerts_the_director(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    rig = make_rig(db, settings, clock, fast_sender, receiver)
    incident_id = rig.declare()
    rig.worker.drain()
    assert [r.path for r in receiver.received] == ["/ok/agent1"]
    clock.advance(minutes=4, seconds=59)
    rig.worker.drain()
    assert rig.page(incident_id).level == 0
    clock.advance(seconds=1)
    rig.worker.drain()
    page = rig.page(incident_id)
    assert page.level == 1 and page.status == "escalated"
    assert receiver.received[-1].path == "/ok/head1"
    clock.advance(minutes=5)
    rig.worker.drain()
    assert receiver.received[-1].path == "/ok/deputy1"
    clock.advance(minutes=5)
    rig.worker.drain()
    assert rig.page(incident_id).exhausted_at is not None
    assert receiver.received[-1].path == "/ok/director1"
    assert (
        "Nobody answered" in receiver.received[-1].body["message"]
        or "无人响应" in receiver.received[-1].body["message"]
    )
    assert len(rig.events(incident_id, "page:escalated")) == 3
    assert len(rig.events(incident_id, "page:unanswered")) == 1


def test_acknowledging_cancels_the_pending_escalation(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    rig = make_rig(db, settings, clock, fast_sender, receiver)
    incident_id = rig.declare()
    rig.worker.drain()
    clock.advance(minutes=2)
    with db.transaction() as session:
        page = session.get(Page, rig.page(incident_id).id)
        assert page is not None
        paging.acknowledge(
            page, person_id="agent1", via="api", actor="agent1", session=session, now=clock.now()
        )
    clock.advance(minutes=30)
    rig.worker.drain()
    page = rig.page(incident_id)
    assert page.status == "acked" and page.level == 0 and page.acked_by == "agent1"
    assert [r.path for r in receiver.received] == ["/ok/agent1"]
    (acked,) = rig.events(incident_id, "page:acked")
    assert acked.data["via"] == "api"


def test_drill_pages_say_so_first(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    rig = make_rig(db, settings, clock, fast_sender, receiver)
    rig.declare(mode="drill")
    rig.worker.drain()
    (hook,) = receiver.received
    assert hook.body["message"].startswith("【演练 DRILL】")
    assert hook.body["title"].startswith("[DRILL]")


def _client(rig: Rig) -> Any:
    app = create_app(
        rig.settings, db=rig.db, clock=rig.clock, catalog=rig.catalog, run_worker=False
    )
    return TestClient(app, raise_server_exceptions=False)


def _link(receiver: HttpReceiver) -> str:
    message = receiver.received[0].body["message"]
    return "/ack/" + message.rsplit("/ack/", 1)[1].strip()


def test_the_ack_link_get_changes_nothing_and_post_acknowledges_once(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    rig = make_rig(db, settings, clock, fast_sender, receiver)
    incident_id = rig.declare()
    rig.worker.drain()
    link = _link(receiver)
    with _client(rig) as client:
        shown = client.get(link)
        assert shown.status_code == 200 and "<form" in shown.text
        assert rig.page(incident_id).status == "sent"
        confirmed = client.post(link)
        assert confirmed.status_code == 200
        assert rig.page(incident_id).status == "acked"
        assert rig.page(incident_id).acked_via == "link"
        assert client.post(link).status_code == 410
        tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
        assert client.post(tampered).status_code == 404
        assert client.get(tampered).status_code == 404


def test_an_expired_ack_link_is_refused(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    rig = make_rig(db, settings, clock, fast_sender, receiver)
    incident_id = rig.declare()
    rig.worker.drain()
    link = _link(receiver)
    clock.advance(minutes=settings.ack_link_minutes + 1)
    with _client(rig) as client:
        assert client.post(link, headers={"Accept": "application/json"}).status_code == 410
    assert rig.page(incident_id).acked_at is None


def test_ack_by_api_is_for_the_paged_person_or_a_duty_manager(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    rig = make_rig(db, settings, clock, fast_sender, receiver)
    incident_id = rig.declare()
    rig.worker.drain()
    page_id = rig.page(incident_id).id
    with db.transaction() as session:
        _, other = security.add_user(
            "other", "staff", session=session, now=clock.now(), person_id="deputy1"
        )
        _, mine = security.add_user(
            "mine", "staff", session=session, now=clock.now(), person_id="agent1"
        )
    with _client(rig) as client:
        refused = client.post(
            f"/api/pages/{page_id}/ack", headers={"Authorization": f"Bearer {other}"}
        )
        assert refused.status_code == 403
        ok = client.post(f"/api/pages/{page_id}/ack", headers={"Authorization": f"Bearer {mine}"})
        assert ok.status_code == 200 and ok.json()["status"] == "acked"
        board = client.get(
            f"/api/incidents/{incident_id}/pages", headers={"Authorization": f"Bearer {mine}"}
        ).json()["items"]
        (dept,) = [p for p in board if p["target"]["kind"] == "department"]
        assert dept["status"] == "acked" and dept["recipients"][0]["status"] == "acked"
        assert dept["recipients"][0]["deliveries"][0]["status"] == "delivered"


def test_a_reply_acknowledges_and_a_no_escalates_at_once(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    settings = replace(settings, inbound_secret=security_secret("s3cret"))
    rig = make_rig(db, settings, clock, fast_sender, receiver)
    incident_id = rig.declare()
    rig.worker.drain()
    agent = receiver.url("/ok/agent1")
    with _client(rig) as client:
        unsigned = client.post("/inbound/sms", json={"from": agent, "text": "2"})
        assert unsigned.status_code == 401
        declined = client.post(
            "/inbound/sms",
            json={"from": agent, "text": "NO"},
            headers={"X-Incident-Secret": "s3cret"},
        )
        assert declined.status_code == 200, declined.text
        rig.worker.drain()
        page = rig.page(incident_id)
        assert page.level == 1 and page.status == "escalated"
        assert receiver.received[-1].path == "/ok/head1"
        head = receiver.url("/ok/head1")
        acked = client.post(
            "/inbound/sms",
            data={"from": head, "text": "1"},
            headers={"X-Incident-Secret": "s3cret"},
        )
        assert acked.status_code == 200
    page = rig.page(incident_id)
    assert page.status == "acked" and page.acked_by == "head1" and page.acked_via == "reply"


def security_secret(value: str) -> Any:
    from incident.settings import Secret

    return Secret(value)


def test_the_flood_limit_bundles_repeated_pages_but_never_holds_an_escalation(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    rig = make_rig(db, settings, clock, fast_sender, receiver)
    with db.transaction() as session:
        incident = response.declare(
            session=session,
            now=clock.now(),
            catalog=rig.catalog,
            playbook_id="page-test",
            severity="II",
            title="x",
            facts={"line": "G"},
            actor="t",
        )
        incident_id = incident.id
    rig.worker.drain()  # the declaration's own page to agent1: 1 of 5
    for n in range(6):
        clock.advance(seconds=30)
        with db.transaction() as session:
            incident = response.get_incident(incident_id, session=session)
            paging.open_page(
                incident,
                None,
                kind="person",
                target="agent1",
                chain=["person:agent1", "section_head"],
                template="",
                ack_within=timedelta(hours=2),
                origin=f"repeat-{n}",
                stage_key=None,
                session=session,
                now=clock.now(),
                policy=rig.ctx.policy,
                text={"zh": f"第{n}条", "en": f"#{n}"},
            )
        rig.worker.drain()
    to_agent = [r for r in receiver.received if r.path == "/ok/agent1"]
    assert len(to_agent) == settings.page_flood_limit
    held = [d for d in rig.deliveries(incident_id) if d.status == "held"]
    assert len(held) == 2
    clock.advance(minutes=settings.page_flood_window_minutes)
    rig.worker.drain()
    to_agent = [r for r in receiver.received if r.path == "/ok/agent1"]
    assert len(to_agent) == settings.page_flood_limit + 1  # one bundle for the two held
    assert "(1)" in to_agent[-1].body["message"] and "(2)" in to_agent[-1].body["message"]
    assert all(
        d.status == "bundled" for d in rig.deliveries(incident_id) if d.id in {h.id for h in held}
    )
    # the pages' recipients count as reached: the bundle was delivered to them
    with db.reading() as session:
        statuses = {p.origin: p.status for p in paging.pages_of(incident_id, session=session)}
    assert statuses["repeat-5"] in ("sent", "escalated")


def test_escalations_pass_the_flood_limit(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    fast_sender: Sender,
    receiver: HttpReceiver,
) -> None:
    text = roster_yaml(
        [receiver.url("/ok/agent1")],
        receiver.url("/ok/agent1"),
        receiver.url("/ok/deputy1"),
        receiver.url("/ok/director1"),
    )
    rig = Rig(db, settings, clock, text, fast_sender)  # the head shares agent1's phone
    incident_id = rig.declare()
    rig.worker.drain()
    with db.transaction() as session:
        incident = response.get_incident(incident_id, session=session)
        for n in range(settings.page_flood_limit):
            paging.open_page(
                incident,
                None,
                kind="person",
                target="agent1",
                chain=["person:agent1"],
                template="",
                ack_within=timedelta(hours=2),
                origin=f"fill-{n}",
                stage_key=None,
                session=session,
                now=clock.now(),
                policy=rig.ctx.policy,
                text={"zh": "x", "en": "x"},
            )
    rig.worker.drain()
    before = len([r for r in receiver.received if r.path == "/ok/agent1"])
    clock.advance(minutes=5)  # the department page escalates to the head: same phone
    rig.worker.drain()
    after = len([r for r in receiver.received if r.path == "/ok/agent1"])
    assert after == before + 1
    page = rig.page(incident_id)
    assert page.level == 1
