"""Drafting from playbook actions, at the domain level."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import select

from incident import notices, response
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.models import Notice, TimelineEvent
from incident.playbook import parse_playbook_text

PLAYBOOK = """
id: fragile
version: 1
title: {zh: 脆弱模板, en: Fragile template}
kind: equipment_failure
inputs:
  line: {type: str, required: true}
  minutes: {type: int}
stages:
  - id: first-notice
    when: manual
    actions:
      - notice: {template: broken}
      - notice: {template: fine, kind: update}
templates:
  broken:
    zh: "{{ line }}故障，约{{ minutes + 10 }}分钟"
  fine:
    zh: |
      {{ line }}设备故障
      正在抢修。
    en: |
      Equipment failure on {{ line }}
      Repairs are under way.
"""


def test_a_template_that_fails_on_the_facts_is_skipped_and_recorded(
    db: Database, clock: FrozenClock
) -> None:
    playbook = parse_playbook_text(PLAYBOOK, "fragile.yaml")
    catalog = Catalog({playbook.id: playbook})
    zone = ZoneInfo("Asia/Shanghai")
    with db.transaction() as session:
        incident = response.declare(
            session=session,
            now=clock.now(),
            catalog=catalog,
            playbook_id="fragile",
            severity="II",
            title="Signal failure",
            facts={"line": "G"},
        )
        broken, fine = playbook.stage("first-notice").actions
        skipped = notices.draft_from_action(
            incident,
            playbook,
            broken,
            origin="first-notice:1:0",
            stage_key="first-notice",
            session=session,
            now=clock.now(),
            zone=zone,
        )
        drafted = notices.draft_from_action(
            incident,
            playbook,
            fine,
            origin="first-notice:1:1",
            stage_key="first-notice",
            session=session,
            now=clock.now(),
            zone=zone,
        )
        again = notices.draft_from_action(
            incident,
            playbook,
            fine,
            origin="first-notice:1:1",
            stage_key="first-notice",
            session=session,
            now=clock.now(),
            zone=zone,
        )
        incident_id = incident.id
    assert skipped is None and again is None
    assert drafted is not None and drafted.kind == "initial"  # nothing published: an initial
    assert drafted.texts["en"]["headline"] == "Equipment failure on G"
    assert drafted.cause == "TECHNICAL_PROBLEM" and drafted.level == "II"
    with db.reading() as session:
        kinds = list(
            session.scalars(
                select(TimelineEvent.kind).where(
                    TimelineEvent.incident_id == incident_id,
                    TimelineEvent.kind.like("notice:%"),
                )
            )
        )
        reason = session.scalar(
            select(TimelineEvent.data).where(TimelineEvent.kind == "notice:skipped")
        )
        assert len(list(session.scalars(select(Notice)))) == 1
    assert kinds == ["notice:skipped", "notice:drafted"]
    assert reason is not None and "failed to render" in reason["reason"]


UPDATES = """
id: updates
version: 1
title: {zh: 公告更新, en: Notice updates}
kind: equipment_failure
inputs:
  line: {type: str, required: true}
stages:
  - id: first-notice
    when: manual
    actions:
      - notice: {template: initial}
  - id: notice-update
    when: {every: 20m}
    actions:
      - notice: {template: update, kind: update}
templates:
  initial:
    zh: "{{ line }}设备故障"
    en: "Equipment failure on {{ line }}"
  update:
    zh: "{{ line }}故障更新：仍在抢修"
    en: "Update on {{ line }}: repairs continue"
"""


def test_an_update_stage_never_overwrites_a_first_notice_that_is_not_published_yet(
    db: Database, clock: FrozenClock
) -> None:
    playbook = parse_playbook_text(UPDATES, "updates.yaml")
    catalog = Catalog({playbook.id: playbook})
    zone = ZoneInfo("Asia/Shanghai")
    (initial,) = playbook.stage("first-notice").actions
    (update,) = playbook.stage("notice-update").actions
    with db.transaction() as session:
        incident = response.declare(
            session=session,
            now=clock.now(),
            catalog=catalog,
            playbook_id="updates",
            severity="II",
            title="Signal failure",
            facts={"line": "G"},
        )
        first = notices.draft_from_action(
            incident,
            playbook,
            initial,
            origin="first-notice:1:0",
            stage_key="first-notice",
            session=session,
            now=clock.now(),
            zone=zone,
        )
        assert first is not None
        clock.advance(minutes=20)
        waiting = notices.draft_from_action(
            incident,
            playbook,
            update,
            origin="notice-update:1:0",
            stage_key="notice-update",
            session=session,
            now=clock.now(),
            zone=zone,
        )
        notice = first.notice
        assert waiting is None, "the update waits for the first publication"
        assert [(v.number, v.kind, v.status) for v in notice.versions] == [(1, "initial", "draft")]
        assert notice.versions[0].texts["en"]["headline"] == "Equipment failure on G"
        notices.publish(
            notice,
            session=session,
            now=clock.now(),
            actor="duty",
            policy=notices.PublicationPolicy(public_url="https://x.example", sender="n@x"),
        )
        clock.advance(minutes=20)
        second = notices.draft_from_action(
            incident,
            playbook,
            update,
            origin="notice-update:2:0",
            stage_key="notice-update",
            session=session,
            now=clock.now(),
            zone=zone,
        )
        assert second is not None and (second.number, second.kind) == (2, "update")
        incident_id = incident.id
    with db.reading() as session:
        skipped = session.scalars(
            select(TimelineEvent.data).where(
                TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "notice:skipped"
            )
        ).all()
    assert len(skipped) == 1 and "not published yet" in skipped[0]["reason"]
