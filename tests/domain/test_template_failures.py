"""A page whose template fails on the incident's facts still goes out, in plain words."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from incident import paging, response, roster
from incident.catalog import Catalog
from incident.channels import Sender
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
    escalation: [on_duty, section_head]
people:
  - {id: agent1, name: 张三, language: zh-CN, department: inquiry, roles: [on_duty_agent],
     contacts: ["bogus://agent1", "inbox://agent1"]}
  - {id: agent2, name: Ann, language: en, department: inquiry, roles: [on_duty_agent],
     contacts: ["inbox://agent2"]}
  - {id: head1, name: Head One, language: en, department: inquiry, roles: [section_head],
     contacts: ["inbox://head1"]}
rota:
  - {department: inquiry, starts_on: 2026-01-01, start_time: "08:00", shift_hours: 24,
     teams: [[agent1, agent2]]}
"""

PLAYBOOK = """
id: fragile
version: 1
title: {zh: 模板测试, en: Template test}
kind: mass_delay
inputs:
  line: {type: str, required: true}
  expected_delay_min: {type: int}
stages:
  - id: activate
    title: {zh: 启动预案, en: Activate the plan}
    when: declared
    actions:
      - page: {departments: [inquiry], ack_within: 5m, template: page}
templates:
  page:
    zh: "{% if expected_delay_min >= 60 %}长时间晚点{% endif %}{{ title }} {{ ack_url }}"
    en: "{% if expected_delay_min >= 60 %}Long delay{% endif %}{{ title }} {{ ack_url }}"
"""


@pytest.fixture
def rig(db: Database, settings: Settings, clock: FrozenClock, sender: Sender) -> Worker:
    doc = roster.parse_roster_text(ROSTER, "roster.yaml")
    with db.transaction() as session:
        roster.apply_roster(doc, session=session)
    departments, roles, people = roster.ids_in_doc(doc)
    playbook = parse_playbook_text(PLAYBOOK, "fragile.yaml", RosterRefs(departments, roles, people))
    ctx = Context.build(settings, Catalog({playbook.id: playbook}))
    return Worker(db, ctx, clock, sender=sender, owner="rig")


def declare(worker: Worker, clock: FrozenClock) -> str:
    with worker.db.transaction() as session:
        return response.declare(
            session=session,
            now=clock.now(),
            catalog=worker.ctx.catalog,
            playbook_id="fragile",
            severity="II",
            title="Line G stopped",
            facts={"line": "G"},  # no expected_delay_min: `None >= 60` fails to render
            actor="test",
        ).id


def inbox(db: Database) -> dict[str, str]:
    with db.reading() as session:
        return {m.address: m.body for m in session.scalars(select(InboxMessage))}


def test_a_page_whose_template_fails_goes_out_with_a_plain_text_in_each_language(
    rig: Worker, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    incident_id = declare(rig, clock)
    rig.drain()
    messages = inbox(rig.db)
    english = messages["inbox://agent2"]
    assert "Line G stopped" in english and "Level II" in english
    assert "Activate the plan" in english and "/ack/" in english
    chinese = messages["inbox://agent1"]
    assert "重大" in chinese and "启动预案" in chinese and "/ack/" in chinese
    failures = [r for r in caplog.records if "page_template_failed" in r.getMessage()]
    assert failures and all("agent" not in r.getMessage() for r in failures)
    with rig.db.reading() as session:
        (page,) = paging.pages_of(incident_id, session=session)
        assert page.status == "sent"


def test_a_failed_delivery_moves_on_to_the_next_contact_even_when_the_template_fails(
    rig: Worker, clock: FrozenClock
) -> None:
    catalog = rig.ctx.catalog
    with rig.db.transaction() as session:
        incident = response.declare(
            session=session,
            now=clock.now(),
            catalog=catalog,
            playbook_id="fragile",
            severity="II",
            title="Line G stopped",
            facts={"line": "G", "expected_delay_min": 90},
            actor="test",
        )
        incident_id = incident.id
        # the first level is paged while the template renders ...
        response.fire_stage(
            incident.stages[0].id,
            1,
            session=session,
            now=clock.now(),
            catalog=catalog,
            policy=rig.ctx.policy,
        )
        # ... then the fact goes, before the first contact method fails
        response.change(
            incident,
            session=session,
            now=clock.now(),
            catalog=catalog,
            facts={"expected_delay_min": None},
        )
    rig.drain()
    with rig.db.reading() as session:
        tried = list(
            session.scalars(
                select(Delivery)
                .where(Delivery.incident_id == incident_id, Delivery.person_id == "agent1")
                .order_by(Delivery.id)
            )
        )
    assert [(d.contact_position, d.status) for d in tried] == [(0, "failed"), (1, "delivered")]
    assert "/ack/" in inbox(rig.db)["inbox://agent1"]
    assert "inbox://agent2" in inbox(rig.db), "the batch of outcomes was recorded"
