"""Transitions racing for real on PostgreSQL: two threads, two sessions, one row.

SQLite serialises writers (``BEGIN IMMEDIATE`` and the process's write lock), so these
interleavings cannot happen there and the tests are skipped on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text

from incident import paging, response
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database, is_sqlite
from incident.errors import Gone
from incident.handlers import Context
from incident.models import Delivery, Incident, Page, PageRecipient, Stage
from incident.security import AckLinks
from incident.worker import Worker
from tests.factories import change, declare, stage_states

WAIT = 20  # seconds any step may wait for the other thread before the test fails


@pytest.fixture(autouse=True)
def _postgresql_only(db: Database) -> None:
    if is_sqlite(db.engine):
        pytest.skip("SQLite serialises writers: these interleavings cannot happen there")


class Racer(threading.Thread):
    """Runs ``body`` in a thread; ``outcome()`` returns its result or re-raises its error."""

    def __init__(self, body: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.body = body
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.body()
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def outcome(self) -> Any:
        self.join(WAIT)
        assert not self.is_alive(), "a racing transaction never finished"
        if self.error is not None:
            raise self.error
        return self.result


def wait_for_lock_waiter(db: Database) -> None:
    """Until some other session of this database waits for a row lock."""
    deadline = time.monotonic() + WAIT
    with db.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            if waiting:
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError("the other transaction never waited for the lock")


def sent_department_page(seeded: Database, incident_id: str) -> Page:
    with seeded.reading() as session:
        pages = paging.pages_of(incident_id, session=session)
        page = next(p for p in pages if p.target_kind == "department")
        _ = page.recipients
        assert page.status == "sent" and page.level == 0
        return page


def test_an_acknowledgement_committed_while_the_deadline_job_runs_is_not_lost(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker, context: Context
) -> None:
    incident_id = declare(seeded, catalog, clock)
    worker.drain()
    page = sent_department_page(seeded, incident_id)
    person = page.recipients[0].person_id
    clock.advance(minutes=5)
    read, acked = threading.Event(), threading.Event()

    def deadline_job() -> None:
        with seeded.transaction() as session:
            # the job handler reads the page first (it is sent), then the ack commits
            found = session.get(Page, page.id)
            assert found is not None and found.status == "sent"
            incident = session.get(Incident, incident_id)
            assert incident is not None
            read.set()
            assert acked.wait(WAIT)
            paging.on_deadline(
                page.id,
                0,
                session=session,
                now=clock.now(),
                policy=context.policy,
                playbook=response.playbook_of(incident, catalog),
            )

    def acknowledgement() -> None:
        assert read.wait(WAIT)
        with seeded.transaction() as session:
            found = session.get(Page, page.id)
            assert found is not None
            paging.acknowledge(
                found, person_id=person, via="api", actor=person, session=session, now=clock.now()
            )
        acked.set()

    job, ack = Racer(deadline_job), Racer(acknowledgement)
    job.start()
    ack.start()
    ack.outcome()
    job.outcome()
    with seeded.reading() as session:
        after = session.get(Page, page.id)
        assert after is not None
        levels = {r.level for r in after.recipients}
        assert (after.status, after.level, after.acked_by) == ("acked", 0, person)
        assert levels == {0}, "the next level was paged after the acknowledgement"


def test_an_acknowledgement_committed_while_a_failed_delivery_is_recorded_is_not_lost(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker, context: Context
) -> None:
    incident_id = declare(seeded, catalog, clock)
    worker.drain()
    page = sent_department_page(seeded, incident_id)
    person = page.recipients[0].person_id
    read, acked = threading.Event(), threading.Event()

    def failed_delivery() -> None:
        with seeded.transaction() as session:
            recipient = session.scalars(
                select(PageRecipient).where(PageRecipient.page_id == page.id)
            ).first()
            assert recipient is not None and recipient.page.status == "sent"
            sent = session.scalars(
                select(Delivery).where(Delivery.recipient_id == recipient.id)
            ).one()
            read.set()
            assert acked.wait(WAIT)
            sent.status = "failed"
            recipient.contact_position = 99  # no method left: the recipient is unreachable
            paging.on_delivery_outcome(
                sent,
                session=session,
                now=clock.now(),
                policy=context.policy,
                playbook=catalog.get("mass-delay"),
            )

    def acknowledgement() -> None:
        assert read.wait(WAIT)
        with seeded.transaction() as session:
            found = session.get(Page, page.id)
            assert found is not None
            paging.acknowledge(
                found, person_id=person, via="api", actor=person, session=session, now=clock.now()
            )
        acked.set()

    outcome, ack = Racer(failed_delivery), Racer(acknowledgement)
    outcome.start()
    ack.start()
    ack.outcome()
    outcome.outcome()
    with seeded.reading() as session:
        after = session.get(Page, page.id)
        assert after is not None
        assert (after.status, after.level) == ("acked", 0)
        assert {r.level for r in after.recipients} == {0}


def test_a_stage_job_that_read_the_incident_before_it_was_resolved_does_not_fire(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker, context: Context
) -> None:
    incident_id = declare(seeded, catalog, clock)
    worker.drain()
    clock.advance(minutes=10)
    read, resolved = threading.Event(), threading.Event()

    def stage_job() -> bool:
        with seeded.transaction() as session:
            stage = session.scalars(
                select(Stage).where(
                    Stage.incident_id == incident_id, Stage.key == "situation-report"
                )
            ).one()
            assert stage.incident.status == "active" and stage.state == "pending"
            read.set()
            assert resolved.wait(WAIT)
            return response.fire_stage(
                stage.id,
                1,
                session=session,
                now=clock.now(),
                catalog=catalog,
                policy=context.policy,
            )

    def resolution() -> None:
        assert read.wait(WAIT)
        change(seeded, catalog, clock, incident_id, status="resolved")
        resolved.set()

    job, resolve = Racer(stage_job), Racer(resolution)
    job.start()
    resolve.start()
    resolve.outcome()
    assert job.outcome() is False
    assert stage_states(seeded, incident_id)["situation-report"] == "skipped"


def test_two_concurrent_confirmations_of_one_ack_link_acknowledge_once_and_the_other_is_gone(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker, context: Context
) -> None:
    incident_id = declare(seeded, catalog, clock)
    worker.drain()
    page = sent_department_page(seeded, incident_id)
    links: AckLinks = context.policy.links
    token = links.url(page.recipients[0].id, now=clock.now()).rsplit("/ack/", 1)[1]
    first_done = threading.Event()

    def first() -> str:
        with seeded.transaction() as session:
            acked = paging.acknowledge_by_link(token, session=session, now=clock.now(), links=links)
            first_done.set()
            wait_for_lock_waiter(seeded)  # the second confirmation waits on our rows
            return acked.status

    def second() -> str:
        assert first_done.wait(WAIT)
        with seeded.transaction() as session:
            try:
                paging.acknowledge_by_link(token, session=session, now=clock.now(), links=links)
            except Gone:
                return "gone"
        return "acknowledged twice"

    one, two = Racer(first), Racer(second)
    one.start()
    two.start()
    assert one.outcome() == "acked"
    assert two.outcome() == "gone"
