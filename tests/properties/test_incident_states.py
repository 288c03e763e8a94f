"""The incident engine as a state machine (Hypothesis): declare live or drill, move a frozen
clock, acknowledge pages, fire stages by hand, change severity and facts, publish notices,
resolve. The real engine and worker run each step on a fresh database; after every step:

- an acknowledged page is never paged again (no new delivery to any of its recipients, no
  escalation past the level it was acknowledged at);
- each stage fires at most once (an ``every`` stage: each occurrence at most once);
- a drill never reaches a public surface (no public notice, feed entry or public channel
  delivery), while a live incident's published notice does (the check can see a leak).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from incident import notices, paging, response, roster
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.errors import Conflict, NotFound
from incident.handlers import Context
from incident.models import Delivery, Notice, Page, PageRecipient, Stage, TimelineEvent
from incident.notices import feeds, gtfs, reading
from incident.settings import Secret, Settings
from incident.worker import Worker
from tests.conftest import PG_URL

PUBLIC_CHANNEL = "inbox://public-board"
STEPS = 12
EXAMPLES = 12 if PG_URL else 25


@dataclass
class Rig:
    """What every example shares: settings, the catalog, a sender, a maker of databases."""

    settings: Settings
    catalog: Catalog
    context: Context
    sender: Sender
    roster_doc: roster.RosterDoc
    fresh_database: Callable[[], Database]


@dataclass
class Acked:
    page_id: str
    level: int
    deliveries: frozenset[int]


class IncidentMachine(RuleBasedStateMachine):
    rig: Rig  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.db = self.rig.fresh_database()
        with self.db.transaction() as session:
            roster.apply_roster(self.rig.roster_doc, session=session)
        self.clock = FrozenClock()
        self.worker = Worker(
            self.db, self.rig.context, self.clock, sender=self.rig.sender, owner="machine"
        )
        self.policy = notices.PublicationPolicy.from_settings(self.rig.settings)
        self.incident_id = ""
        self.mode = "live"
        self.acked: list[Acked] = []
        self.published = False

    # -- steps ---------------------------------------------------------------------------------
    @initialize(
        mode=st.sampled_from(["live", "drill"]),
        severity=st.sampled_from(["I", "II", "III", "IV"]),
        delay=st.sampled_from([30, 60, 90, 150]),
        stopped_ago=st.one_of(st.none(), st.sampled_from([0, 20, 45, 70])),
    )
    def declare(self, mode: str, severity: str, delay: int, stopped_ago: int | None) -> None:
        facts: dict[str, Any] = {"line": "G", "trains_affected": 12, "expected_delay_min": delay}
        if stopped_ago is not None:
            facts["stopped_since"] = (self.clock.now() - timedelta(minutes=stopped_ago)).isoformat()
        with self.db.transaction() as session:
            self.incident_id = response.declare(
                session=session,
                now=self.clock.now(),
                catalog=self.rig.catalog,
                playbook_id="mass-delay",
                severity=severity,
                title="Line G signal fault",
                facts=facts,
                mode=mode,
                actor="machine",
            ).id
        self.mode = mode
        self.worker.drain()

    @rule(minutes=st.sampled_from([1, 4, 6, 11, 21, 35, 61]))
    def advance(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        self.worker.drain()

    @rule(pick=st.integers(min_value=0, max_value=50))
    def acknowledge(self, pick: int) -> None:
        with self.db.transaction() as session:
            pages = [
                p
                for p in paging.pages_of(self.incident_id, session=session)
                if p.status in ("pending", "sent", "escalated")
            ]
            if not pages:
                return
            page = pages[pick % len(pages)]
            paging.acknowledge_as(
                page,
                role="duty_manager",
                person_id=None,
                actor="machine",
                via="api",
                session=session,
                now=self.clock.now(),
            )
            session.flush()
            self.acked.append(
                Acked(page.id, page.level, frozenset(_deliveries_of(page.id, session)))
            )
            event(f"acknowledged a page at level {page.level}")
        self.worker.drain()

    @rule(
        stage=st.sampled_from(
            ["situation-report", "first-notice", "escalate", "refund-offer", "stand-down", "nope"]
        )
    )
    def fire_by_hand(self, stage: str) -> None:
        try:
            with self.db.transaction() as session:
                incident = response.get_incident(self.incident_id, session=session)
                response.fire_manually(
                    incident, stage, session=session, now=self.clock.now(), actor="machine"
                )
        except (Conflict, NotFound):
            event("firing by hand refused")
            return  # fired already, resolved, or not a stage of this playbook: refused
        event("fired by hand")
        self.worker.drain()

    @rule(
        severity=st.one_of(st.none(), st.sampled_from(["I", "II", "III", "IV"])),
        delay=st.one_of(st.none(), st.sampled_from([20, 60, 130])),
    )
    def change(self, severity: str | None, delay: int | None) -> None:
        facts = None if delay is None else {"expected_delay_min": delay}
        try:
            with self.db.transaction() as session:
                incident = response.get_incident(self.incident_id, session=session)
                response.change(
                    incident,
                    session=session,
                    now=self.clock.now(),
                    catalog=self.rig.catalog,
                    severity=severity,
                    facts=facts,
                    actor="machine",
                )
        except Conflict:
            return  # closed
        self.worker.drain()

    @rule(typed=st.booleans())
    def publish_drafts(self, typed: bool) -> None:
        """Publish every draft (the playbook's, and with ``typed`` one typed now)."""
        with self.db.transaction() as session:
            if typed:
                incident = response.get_incident(self.incident_id, session=session)
                if incident.status != "closed":
                    notices.draft_notice(
                        incident,
                        response.playbook_of(incident, self.rig.catalog),
                        notices.Draft(
                            languages={"zh": {"headline": "G线列车晚点", "body": "请您耐心等候。"}}
                        ),
                        session=session,
                        now=self.clock.now(),
                        zone=self.rig.settings.zone,
                        actor="machine",
                    )
            found = reading.notices_of(self.incident_id, session=session)
            for notice in found:
                if notice.versions and notice.versions[-1].status == "draft":
                    notices.publish(
                        notice,
                        session=session,
                        now=self.clock.now(),
                        actor="machine",
                        policy=self.policy,
                    )
                    self.published = True
                    event(f"published a {self.mode} notice")
        self.worker.drain()

    @precondition(lambda self: bool(self.incident_id))
    @rule(status=st.sampled_from(["contained", "resolved"]))
    def move_on(self, status: str) -> None:
        try:
            with self.db.transaction() as session:
                incident = response.get_incident(self.incident_id, session=session)
                response.change(
                    incident,
                    session=session,
                    now=self.clock.now(),
                    catalog=self.rig.catalog,
                    status=status,
                    actor="machine",
                )
        except Conflict:
            return  # not a step forward from where it is
        event(f"{self.mode} incident {status}")
        self.worker.drain()

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def an_acknowledged_page_is_never_paged_again(self) -> None:
        with self.db.reading() as session:
            for acked in self.acked:
                page = session.get(Page, acked.page_id)
                assert page is not None
                assert page.status == "acked", (page.id, page.status)
                assert page.level == acked.level, "escalated after it was acknowledged"
                new = set(_deliveries_of(acked.page_id, session)) - acked.deliveries
                assert not new, f"page {page.id} delivered again after its ack: {new}"

    @invariant()
    def each_stage_fires_at_most_once(self) -> None:
        if not self.incident_id:
            return
        with self.db.reading() as session:
            fired = session.scalars(
                select(TimelineEvent).where(
                    TimelineEvent.incident_id == self.incident_id,
                    TimelineEvent.kind == "stage:fired",
                )
            ).all()
            stages = {
                s.key: s
                for s in session.scalars(select(Stage).where(Stage.incident_id == self.incident_id))
            }
        occurrences = Counter((e.data["stage"], str(e.data["occurrence"])) for e in fired)
        assert max(occurrences.values(), default=0) <= 1, occurrences
        per_stage = Counter(e.data["stage"] for e in fired)
        for key, stage in stages.items():
            assert stage.fire_count == per_stage[key], (key, stage.fire_count, per_stage[key])
            if stage.trigger != "every":
                assert per_stage[key] <= 1, f"stage {key} fired {per_stage[key]} times"

    @invariant()
    def a_drill_never_reaches_a_public_surface(self) -> None:
        if not self.incident_id:
            return
        now = self.clock.now()
        with self.db.reading() as session:
            ours = {n.id for n in reading.notices_of(self.incident_id, session=session)}
            public = reading.public_notices(session=session, now=now)
            active = reading.active_notices(session=session)
            surfaces = (
                feeds.atom(public, public_url="http://public.test", now=now)
                + feeds.cap_index(public, public_url="http://public.test", sender="t", now=now)
                + gtfs.to_json(gtfs.feed(active, now=now, public_url="http://public.test")).encode()
            )
            to_public = session.scalars(
                select(Delivery.id).where(
                    Delivery.incident_id == self.incident_id, Delivery.address == PUBLIC_CHANNEL
                )
            ).all()
            published = session.scalars(
                select(Notice.id).where(
                    Notice.incident_id == self.incident_id, Notice.published_number.is_not(None)
                )
            ).all()
        shown = {n.id for n in public} | {n.id for n in active}
        in_feeds = {n for n in ours if n.encode() in surfaces}
        if self.mode == "drill":
            assert not ours & shown, f"a drill's notice is public: {ours & shown}"
            assert not in_feeds, f"a drill's notice is in a feed: {in_feeds}"
            assert not to_public, "a drill's notice went to a public channel"
        elif published:
            # The positive control: what a live incident publishes does reach the public.
            assert set(published) <= {n.id for n in public}
            assert to_public

    def teardown(self) -> None:
        self.db.dispose()


def _deliveries_of(page_id: str, session: Any) -> list[int]:
    return list(
        session.scalars(
            select(Delivery.id)
            .join(PageRecipient, Delivery.recipient_id == PageRecipient.id)
            .where(PageRecipient.page_id == page_id)
        )
    )


@pytest.fixture
def rig(
    settings: Settings,
    catalog: Catalog,
    roster_doc: roster.RosterDoc,
    fresh_database: Callable[[], Database],
) -> Rig:
    settings = replace(settings, public_channels=Secret(PUBLIC_CHANNEL))
    context = Context.build(settings, catalog)
    policy = replace(context.send_policy(), backoff_seconds=0.01, max_backoff_seconds=0.05)
    sender = Sender(policy)
    return Rig(settings, catalog, context, sender, roster_doc, fresh_database)


def test_the_incident_engine_keeps_its_promises_whatever_happens(rig: Rig) -> None:
    IncidentMachine.rig = rig
    try:
        run_state_machine_as_test(
            IncidentMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        rig.sender.close()
