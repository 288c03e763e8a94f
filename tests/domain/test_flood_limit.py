"""The flood limit: a bundle of held pages that fails moves its pages on like a failed page;
failed deliveries do not count towards the limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from incident import paging, response, roster
from incident.catalog import Catalog
from incident.channels import Message, Permanent, Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.models import Delivery, InboxMessage
from incident.playbook import RosterRefs, parse_playbook_text
from incident.settings import Settings
from incident.worker import Worker

ROSTER = """
timezone: Asia/Shanghai
departments:
  - id: inquiry
    name: {zh: 问询组, en: Inquiry}
    head: head1
people:
  - {id: agent1, name: Agent One, language: en, department: inquiry, roles: [on_duty_agent],
     contacts: ["fake://agent1", "inbox://agent1"]}
  - {id: head1, name: Head One, language: en, department: inquiry, roles: [section_head],
     contacts: ["inbox://head1"]}
"""

PLAYBOOK = """
id: quiet
version: 1
title: {zh: 测试, en: Test}
kind: mass_delay
stages:
  - id: later
    when: manual
    actions:
      - page: {people: [agent1], template: page}
templates:
  page: {zh: "{{ title }} {{ ack_url }}"}
"""


class FakeChannel:
    """A phone that takes messages until told to refuse them (for good)."""

    def __init__(self) -> None:
        self.refusing = False
        self.taken: list[str] = []

    async def attempt(self, message: Message) -> Exception | None:
        if self.refusing:
            return Permanent("the number is switched off", status=410)
        self.taken.append(message.body)
        return None


@pytest.fixture
def phone() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def rig(
    db: Database, settings: Settings, clock: FrozenClock, context: Context, phone: FakeChannel
) -> Iterator[Worker]:
    doc = roster.parse_roster_text(ROSTER, "roster.yaml")
    with db.transaction() as session:
        roster.apply_roster(doc, session=session)
    playbook = parse_playbook_text(PLAYBOOK, "quiet.yaml", RosterRefs(*roster.ids_in_doc(doc)))
    ctx = Context.build(settings, Catalog({playbook.id: playbook}))
    policy = replace(context.send_policy(), backoff_seconds=0.01, max_backoff_seconds=0.05)
    sender = Sender(policy, channels={"fake": phone})
    yield Worker(db, ctx, clock, sender=sender, owner="rig")
    sender.close()


def open_pages(rig: Worker, clock: FrozenClock, count: int) -> str:
    with rig.db.transaction() as session:
        incident = response.declare(
            session=session,
            now=clock.now(),
            catalog=rig.ctx.catalog,
            playbook_id="quiet",
            severity="III",
            title="Line G stopped",
            facts={},
            actor="test",
        )
    # Later in the incident: its first pages are never held back (#15), reminders may be.
    clock.advance(minutes=3)
    with rig.db.transaction() as session:
        incident = response.get_incident(incident.id, session=session)
        for n in range(count):
            paging.open_page(
                incident,
                None,
                kind="person",
                target="agent1",
                chain=["person:agent1"],
                template="",
                ack_within=timedelta(hours=2),
                origin=f"repeat-{n}",
                stage_key=None,
                session=session,
                now=clock.now(),
                policy=rig.ctx.policy,
                text={"zh": f"第{n}条", "en": f"#{n}"},
            )
        return incident.id


def deliveries(db: Database, incident_id: str) -> list[Delivery]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(Delivery).where(Delivery.incident_id == incident_id).order_by(Delivery.id)
            )
        )


def test_a_bundle_that_fails_for_good_moves_each_of_its_pages_to_the_next_contact_method(
    rig: Worker, clock: FrozenClock, settings: Settings, phone: FakeChannel
) -> None:
    incident_id = open_pages(rig, clock, settings.page_flood_limit + 2)
    rig.drain()
    assert len(phone.taken) == settings.page_flood_limit
    held = [d for d in deliveries(rig.db, incident_id) if d.status == "held"]
    assert len(held) == 2
    phone.refusing = True  # the phone dies before the bundle goes
    clock.advance(minutes=settings.page_flood_window_minutes)
    rig.drain()
    with rig.db.reading() as session:
        bundle = session.scalars(select(Delivery).where(Delivery.recipient_id.is_(None))).one()
        assert bundle.status == "failed"
        statuses = {p.origin: p.status for p in paging.pages_of(incident_id, session=session)}
        inbox = list(session.scalars(select(InboxMessage.body)))
    assert statuses["repeat-5"] == statuses["repeat-6"] == "sent"
    assert len(inbox) == 2 and all("#5" in body or "#6" in body for body in inbox)
    moved = [
        d
        for d in deliveries(rig.db, incident_id)
        if d.recipient_id in {h.recipient_id for h in held}
    ]
    assert sorted((d.contact_position, d.status) for d in moved) == [
        (0, "bundled"),
        (0, "bundled"),
        (1, "delivered"),
        (1, "delivered"),
    ]


def test_failed_deliveries_do_not_count_towards_the_flood_limit(
    rig: Worker, clock: FrozenClock, settings: Settings, phone: FakeChannel
) -> None:
    phone.refusing = True
    incident_id = open_pages(rig, clock, settings.page_flood_limit)
    rig.drain()
    clock.advance(minutes=1)
    with rig.db.transaction() as session:
        incident = response.get_incident(incident_id, session=session)
        paging.open_page(
            incident,
            None,
            kind="person",
            target="agent1",
            chain=["person:agent1"],
            template="",
            ack_within=timedelta(hours=2),
            origin="one-more",
            stage_key=None,
            session=session,
            now=clock.now(),
            policy=rig.ctx.policy,
            text={"zh": "再一条", "en": "one more"},
        )
    to_phone = [d for d in deliveries(rig.db, incident_id) if d.address == "fake://agent1"]
    assert [d.status for d in to_phone] == ["failed"] * settings.page_flood_limit + ["queued"]
