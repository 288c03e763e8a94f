"""Receivers that fail (#9): 5xx, 429 with Retry-After, timeouts and refused connections are
retried until delivered or the attempts run out; permanent 4xx are tried once and the next
contact method is used; escalation keeps its deadline while a receiver keeps failing.

The roster's contacts carry a staff canary number (tests/canaries.py) in the payload, so the
failure paths (attempt errors, timeline, logs) are checked for leaks too."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from incident import paging, roster
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.models import Delivery, DeliveryAttempt, Page, TimelineEvent
from incident.playbook import RosterRefs, parse_playbook_text
from incident.settings import Settings
from incident.worker import Worker
from tests.canaries import STAFF_NUMBERS
from tests.channels.test_paging import PLAYBOOK
from tests.peers import HttpReceiver, free_port, http_receiver

STAFF_PHONE = "%2B86" + STAFF_NUMBERS[0]  # in each contact's payload: ?:to=+86137...


def contact(url: str) -> str:
    return f"{url}?:to={STAFF_PHONE}"


def team_roster(agents: dict[str, list[str]], head: str, director: str) -> str:
    """An inquiry department whose on-duty team is ``agents`` (id -> contacts)."""
    people = "\n".join(
        f"  - {{id: {pid}, name: {pid}, department: inquiry, contacts: {contacts!r}}}"
        for pid, contacts in agents.items()
    )
    return f"""
timezone: Asia/Shanghai
departments:
  - id: inquiry
    name: {{zh: 问询组, en: Inquiry}}
    head: head1
    escalation: [on_duty, section_head, duty_director]
people:
{people}
  - {{id: head1, name: Head, department: inquiry, roles: [section_head], contacts: ["{head}"]}}
  - {{id: director1, name: Director, department: inquiry, roles: [duty_director],
      contacts: ["{director}"]}}
rota:
  - {{department: inquiry, starts_on: 2026-01-01, start_time: "00:00", shift_hours: 24,
      teams: [[{", ".join(agents)}]]}}
"""


class Desk:
    """The page-test playbook (department inquiry, ack within 5 minutes) on a roster."""

    def __init__(
        self, db: Database, settings: Settings, clock: FrozenClock, text: str, sender: Sender
    ) -> None:
        self.db, self.clock = db, clock
        doc = roster.parse_roster_text(text, "roster.yaml")
        with db.transaction() as session:
            roster.apply_roster(doc, session=session)
        refs = RosterRefs(*roster.ids_in_doc(doc))
        self.catalog = Catalog({"page-test": parse_playbook_text(PLAYBOOK, "p.yaml", refs)})
        self.worker = Worker(db, Context.build(settings, self.catalog), clock, sender=sender)

    def declare(self) -> str:
        from tests.factories import declare

        return declare(self.db, self.catalog, self.clock, playbook="page-test", facts={"line": "G"})

    def deliveries(self, person: str | None = None) -> list[Delivery]:
        query = select(Delivery).where(Delivery.purpose == "page").order_by(Delivery.id)
        if person is not None:
            query = query.where(Delivery.person_id == person)
        with self.db.reading() as session:
            return list(session.scalars(query))

    def attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        with self.db.reading() as session:
            return list(
                session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.delivery_id == delivery_id)
                    .order_by(DeliveryAttempt.number)
                )
            )

    def page(self) -> Page:
        with self.db.reading() as session:
            return session.scalars(select(Page).where(Page.target_kind == "department")).one()

    def events(self, kind: str) -> list[TimelineEvent]:
        with self.db.reading() as session:
            return list(
                session.scalars(
                    select(TimelineEvent)
                    .where(TimelineEvent.kind == kind)
                    .order_by(TimelineEvent.seq)
                )
            )


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver(flaky=1, hang_seconds=1.0, retry_after=1) as peer:
        yield peer


def make_sender(context: Context, **changes: float) -> Sender:
    policy = replace(
        context.send_policy(),
        **{
            "attempts": 4,
            "attempt_timeout": 0.5,
            "total_seconds": 8.0,
            "backoff_seconds": 0.01,
            "max_backoff_seconds": 0.05,
            **changes,
        },
    )
    return Sender(policy)


@pytest.fixture
def sender(context: Context) -> Iterator[Sender]:
    made = make_sender(context)
    yield made
    made.close()


MODES = ("ok", "flaky", "busy", "stall")
ATTEMPTS = {"ok": 1, "flaky": 2, "busy": 2, "stall": 2}
FIRST_FAILURE = {"flaky": 503, "busy": 429, "stall": None}


def test_transient_failures_of_many_receivers_are_retried_until_each_is_delivered(
    db: Database, settings: Settings, clock: FrozenClock, context: Context
) -> None:
    # An attempt may take 1.5 s (a receiver that answers must never time out, even on a busy
    # machine); the stalling receiver holds its first answer for 2.5 s.
    sender = make_sender(context, attempt_timeout=1.5)
    with ExitStack() as stack:
        stack.callback(sender.close)
        receiver = stack.enter_context(http_receiver(flaky=1, hang_seconds=2.5, retry_after=1))
        _many_receivers(db, settings, clock, sender, receiver)


def _many_receivers(
    db: Database, settings: Settings, clock: FrozenClock, sender: Sender, receiver: HttpReceiver
) -> None:
    agents = {
        f"a{n}": [contact(receiver.url(f"/{MODES[n % 4]}/a{n}")), "inbox://fallback"]
        for n in range(24)
    }
    desk = Desk(db, settings, clock, team_roster(agents, "inbox://head", "inbox://dir"), sender)
    desk.declare()
    started = time.monotonic()
    desk.worker.drain()
    assert time.monotonic() - started < 15

    sent = desk.deliveries()
    assert len(sent) == 24, "no failover: every first contact was reached"
    for delivery in sent:
        mode = MODES[int(str(delivery.person_id)[1:]) % 4]
        tries = desk.attempts(delivery.id)
        assert delivery.status == "delivered", (mode, delivery.last_error)
        assert delivery.attempts == len(tries) == ATTEMPTS[mode], mode
        assert [t.outcome for t in tries] == ["transient"] * (len(tries) - 1) + ["delivered"]
        if mode in FIRST_FAILURE:
            assert tries[0].status_code == FIRST_FAILURE[mode]
    assert desk.page().status == "sent"
    # the receiver saw each key once per attempt (a timed-out attempt was received too)
    seen = Counter(receiver.keys())
    assert all(seen[d.idempotency_key] == d.attempts for d in sent)


def test_retry_after_is_honoured(
    db: Database, settings: Settings, clock: FrozenClock, context: Context
) -> None:
    # the policy honours Retry-After up to 6x its largest backoff (here 3 s)
    sender = make_sender(context, max_backoff_seconds=0.5)
    try:
        with http_receiver(flaky=2, retry_after=1) as receiver:
            agents = {"a0": [contact(receiver.url("/busy/a0"))]}
            desk = Desk(db, settings, clock, team_roster(agents, "inbox://h", "inbox://d"), sender)
            desk.declare()
            desk.worker.drain()
            times = [r.at for r in receiver.received]
    finally:
        sender.close()
    (delivery,) = desk.deliveries("a0")
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert [a.status_code for a in desk.attempts(delivery.id)] == [429, 429, 200]
    gaps = [b - a for a, b in pairwise(times)]
    assert len(gaps) == 2 and all(gap >= 0.95 for gap in gaps), gaps  # not the 10-50 ms backoff


def test_a_refused_connection_is_retried_and_delivered_once_the_receiver_listens(
    db: Database, settings: Settings, clock: FrozenClock, context: Context
) -> None:
    port = free_port()
    with ExitStack() as stack:
        started: list[HttpReceiver] = []

        async def sleep(seconds: float) -> None:  # the receiver comes up during the backoff
            if not started:
                started.append(stack.enter_context(http_receiver(port=port)))
            await asyncio.sleep(seconds)

        sender = Sender(replace(make_sender(context).policy, backoff_seconds=0.01), sleep=sleep)
        stack.callback(sender.close)
        url = contact(f"json://127.0.0.1:{port}/ok/a0")
        desk = Desk(
            db, settings, clock, team_roster({"a0": [url]}, "inbox://h", "inbox://d"), sender
        )
        desk.declare()
        desk.worker.drain()
        (delivery,) = desk.deliveries("a0")
        tries = desk.attempts(delivery.id)
        assert delivery.status == "delivered"
        assert [t.outcome for t in tries] == ["transient", "delivered"]
        assert tries[0].status_code is None and "Connect" in str(tries[0].error)
        assert len(started[0].received) == 1


@pytest.mark.parametrize("mode", ["down", "refused", "hang"])
def test_a_receiver_that_keeps_failing_gets_bounded_attempts_then_the_next_contact(
    mode: str, db: Database, settings: Settings, clock: FrozenClock, context: Context
) -> None:
    sender = make_sender(context, attempts=3, attempt_timeout=0.3)
    try:
        with http_receiver(hang_seconds=1.0) as receiver:
            first = (
                f"json://127.0.0.1:{free_port()}/x"
                if mode == "refused"
                else receiver.url(f"/{mode}/a0")
            )
            agents = {"a0": [contact(first), contact(receiver.url("/ok/a0-second"))]}
            desk = Desk(db, settings, clock, team_roster(agents, "inbox://h", "inbox://d"), sender)
            desk.declare()
            desk.worker.drain()
            hits = Counter(r.path for r in receiver.received)
    finally:
        sender.close()
    failed, second = desk.deliveries("a0")
    tries = desk.attempts(failed.id)
    assert failed.status == "failed" and failed.attempts == len(tries) == 3
    assert all(t.outcome == "transient" for t in tries)
    assert hits[f"/{mode}/a0"] == (0 if mode == "refused" else 3)
    assert second.contact_position == 1 and second.status == "delivered"
    assert hits["/ok/a0-second"] == 1
    assert desk.page().status == "sent" and desk.page().level == 0


@pytest.mark.parametrize(("mode", "status"), [("bad", 400), ("missing", 404)])
def test_a_permanent_failure_is_tried_once_then_the_next_contact_then_the_next_level(
    mode: str,
    status: int,
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    sender: Sender,
    receiver: HttpReceiver,
) -> None:
    agents = {"a0": [contact(receiver.url(f"/{mode}/a0")), contact(receiver.url(f"/{mode}/a0b"))]}
    text = team_roster(agents, contact(receiver.url("/ok/head")), "inbox://d")
    desk = Desk(db, settings, clock, text, sender)
    desk.declare()
    desk.worker.drain()
    hits = Counter(r.path for r in receiver.received)
    assert hits == {f"/{mode}/a0": 1, f"/{mode}/a0b": 1, "/ok/head": 1}
    first, second = desk.deliveries("a0")
    for delivery in (first, second):
        assert delivery.status == "failed" and delivery.attempts == 1
        assert [(a.outcome, a.status_code) for a in desk.attempts(delivery.id)] == [
            ("permanent", status)
        ]
    # every contact of the level failed: the page climbs at once, without waiting 5 minutes
    page = desk.page()
    assert page.level == 1
    (head,) = desk.deliveries("head1")
    assert head.status == "delivered"
    assert desk.events("page:unreachable")


def test_escalation_keeps_its_deadline_while_a_receiver_keeps_failing(
    db: Database, settings: Settings, clock: FrozenClock, context: Context
) -> None:
    """The on-duty agent's receiver answers 503 throughout; its delivery is still retrying when
    the acknowledgement deadline comes: the section head is paged at the deadline, not later."""
    sender = make_sender(
        context, attempts=20, total_seconds=6.0, backoff_seconds=0.2, max_backoff_seconds=0.3
    )
    try:
        with http_receiver() as receiver:
            agents = {"a0": [contact(receiver.url("/down/a0"))]}
            text = team_roster(agents, contact(receiver.url("/ok/head")), "inbox://d")
            desk = Desk(db, settings, clock, text, sender)
            declared_at = clock.now()
            desk.declare()
            desk.worker.run_due()  # stage fires: the page and its delivery
            desk.worker.run_due()  # the delivery starts: 503, retrying
            clock.advance(minutes=4, seconds=59)
            desk.worker.run_due()
            assert desk.page().level == 0
            clock.advance(seconds=1)  # the deadline
            desk.worker.run_due()  # the deadline job: the next level is paged
            deadline = time.monotonic() + 5
            while not any(r.path == "/ok/head" for r in receiver.received):
                assert time.monotonic() < deadline, "the head was not paged"
                desk.worker.run_due()
                time.sleep(0.02)
            (agent,) = desk.deliveries("a0")
            assert agent.status in ("queued", "sending"), "still retrying at the deadline"
            while len([r for r in receiver.received if r.path == "/down/a0"]) < 2:
                assert time.monotonic() < deadline + 5, "the failing delivery is retried"
                time.sleep(0.02)
            page = desk.page()
            assert page.level == 1 and page.status == "escalated"
            (escalated,) = desk.events("page:escalated")
            assert escalated.at == declared_at + timedelta(minutes=5)
            desk.worker.drain()  # the agent's delivery runs out of attempts meanwhile
    finally:
        sender.close()
    (agent,) = desk.deliveries("a0")
    assert agent.status == "failed"
    page = desk.page()
    assert page.level == 1, "a late failure at level 0 must not skip the section head"
    (head,) = desk.deliveries("head1")
    assert head.status == "delivered"
    with db.reading() as session:
        pages = paging.pages_of(page.incident_id, session=session)
    assert [p.level for p in pages if p.target_kind == "department"] == [1]
