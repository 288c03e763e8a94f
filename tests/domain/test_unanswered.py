"""Nobody answered a page: who is alerted at the end of its chain."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from incident import paging, response, roster
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.models import Delivery
from incident.playbook import RosterRefs, parse_playbook_text
from incident.settings import Settings
from incident.worker import Worker

ROSTER = """
timezone: Asia/Shanghai
departments:
  - id: inquiry
    name: {zh: 问询组, en: Inquiry}
    head: head1
    escalation: [on_duty]
  - id: directorate
    name: {zh: 中心领导, en: Directorate}
  - id: board
    name: {zh: 值班领导, en: Board on duty}
    escalation: [on_duty, director, deputy_director]
people:
  - {id: agent1, name: Agent, language: en, department: inquiry, roles: [on_duty_agent],
     contacts: ["inbox://agent1"]}
  - {id: head1, name: Head, language: en, department: inquiry, roles: [section_head],
     contacts: ["inbox://head1"]}
  - {id: dd1, name: Duty Director, language: en, department: directorate,
     roles: [duty_director], contacts: ["inbox://dd1"]}
  - {id: dir1, name: Director, language: en, department: directorate, roles: [director],
     contacts: ["inbox://dir1"]}
  - {id: dep1, name: Deputy, language: en, department: directorate, roles: [deputy_director],
     contacts: ["inbox://dep1"]}
rota:
  - {department: inquiry, starts_on: 2026-01-01, start_time: "08:00", shift_hours: 24,
     teams: [[agent1]]}
  - {department: board, starts_on: 2026-01-01, start_time: "08:00", shift_hours: 24,
     teams: [[dd1]]}
"""

PLAYBOOK = """
id: silence
version: 1
title: {zh: 无人响应, en: Silence}
kind: mass_delay
inputs:
  target: {type: str, required: true, choices: [director, inquiry, everyone]}
stages:
  - id: director
    when: {if: "target == 'director'"}
    actions:
      - page: {roles: [duty_director], ack_within: 5m, template: page}
  - id: inquiry
    when: {if: "target == 'inquiry'"}
    actions:
      - page: {departments: [inquiry], ack_within: 5m, template: page}
  - id: everyone
    when: {if: "target == 'everyone'"}
    actions:
      - page: {departments: [board], ack_within: 5m, template: page}
templates:
  page: {zh: "{{ title }} {{ ack_url }}"}
"""


@pytest.fixture
def rig(db: Database, settings: Settings, clock: FrozenClock, sender: Sender) -> Worker:
    doc = roster.parse_roster_text(ROSTER, "roster.yaml")
    with db.transaction() as session:
        roster.apply_roster(doc, session=session)
    playbook = parse_playbook_text(PLAYBOOK, "silence.yaml", RosterRefs(*roster.ids_in_doc(doc)))
    ctx = Context.build(settings, Catalog({playbook.id: playbook}))
    return Worker(db, ctx, clock, sender=sender, owner="rig")


def unanswered(rig: Worker, clock: FrozenClock, target: str, levels: int = 1) -> dict[str, int]:
    """Declare, let nobody answer past each level's deadline; deliveries per person."""
    with rig.db.transaction() as session:
        incident_id = response.declare(
            session=session,
            now=clock.now(),
            catalog=rig.ctx.catalog,
            playbook_id="silence",
            severity="II",
            title="Line G stopped",
            facts={"target": target},
            actor="test",
        ).id
    rig.drain()
    for _ in range(levels):
        clock.advance(minutes=5)
        rig.drain()
    with rig.db.reading() as session:
        pages = paging.pages_of(incident_id, session=session)
        assert any(p.exhausted_at is not None for p in pages if p.target_kind != "duty")
        people = session.scalars(
            select(Delivery.person_id).where(Delivery.incident_id == incident_id)
        ).all()
    counts: dict[str, int] = {}
    for person in people:
        counts[str(person)] = counts.get(str(person), 0) + 1
    return counts


def test_a_duty_director_who_did_not_answer_is_not_alerted_about_their_own_silence(
    rig: Worker, clock: FrozenClock
) -> None:
    counts = unanswered(rig, clock, "director")
    assert counts.get("dd1") == 1, "the silent duty director was paged again"
    assert counts.get("dir1") == 1, "the director, next one up, is alerted"


def test_a_page_nobody_answered_below_the_duty_director_still_alerts_the_duty_director(
    rig: Worker, clock: FrozenClock
) -> None:
    counts = unanswered(rig, clock, "inquiry")
    assert counts == {"agent1": 1, "dd1": 1}


def test_a_page_that_reached_everyone_above_and_went_unanswered_still_ends_with_the_alarm(
    rig: Worker, clock: FrozenClock
) -> None:
    # Found by the simulator (seed 6 at the time): the end alarm went to nobody, because the
    # page had already paged every one of the people who hear of silence.
    counts = unanswered(rig, clock, "everyone", levels=3)
    assert counts == {"dd1": 2, "dir1": 2, "dep1": 2}, "each paged, then the end alarm"
