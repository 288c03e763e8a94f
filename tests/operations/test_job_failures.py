"""When a job of an incident fails for good, the incident says so and the duty director is
paged (#14): ``failures.on_job_failed``, which the worker calls as it marks a job failed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from incident import failures, jobs
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.models import Job, Page, Stage, TimelineEvent
from tests.factories import declare

ERROR = (
    "ValueError: template 'activate': no field 'contact' (caller 13800001111)\n"
    "  more detail on a second line"
)


def claim_first(db: Database, clock: FrozenClock, kind: str) -> jobs.Claimed:
    with db.transaction() as session:
        first = session.scalars(
            select(Job).where(Job.kind == kind, Job.status == "queued").order_by(Job.id)
        ).first()
        assert first is not None
        first.run_at = clock.now() - timedelta(days=1)  # due before anything else
    with db.transaction() as session:
        claimed = jobs.claim(
            session, owner="t", now=clock.now(), lease=timedelta(seconds=30), limit=1
        )
    assert claimed and claimed[0].kind == kind
    return claimed[0]


def fail(db: Database, job: jobs.Claimed, clock: FrozenClock, context: Context) -> None:
    """What the worker does once a job ran out of attempts."""
    with db.transaction() as session:
        jobs.fail(session, job.id, owner="t", now=clock.now(), error=ERROR)
        failures.on_job_failed(job, ERROR, session=session, now=clock.now(), policy=context.policy)


def test_a_stage_that_failed_for_good_is_on_the_timeline_and_pages_the_duty_director_once(
    seeded: Database, catalog: Catalog, clock: FrozenClock, context: Context
) -> None:
    incident_id = declare(seeded, catalog, clock)
    job = claim_first(seeded, clock, "stage.fire")
    fail(seeded, job, clock, context)
    with seeded.transaction() as session:  # told twice (a re-run of the worker's step)
        failures.on_job_failed(job, ERROR, session=session, now=clock.now(), policy=context.policy)
    with seeded.reading() as session:
        stage = session.get(Stage, job.payload["stage_id"])
        assert stage is not None
        events = list(
            session.scalars(
                select(TimelineEvent).where(
                    TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "job:failed"
                )
            )
        )
        duty = list(
            session.scalars(
                select(Page).where(
                    Page.incident_id == incident_id, Page.origin == f"duty:job_failed:{job.id}"
                )
            )
        )
    assert len(events) == 1
    data = events[0].data
    assert data["kind"] == "stage.fire" and data["job"] == job.id
    assert data["stage"] == stage.key and data["stage_id"] == stage.id
    assert data["error"].startswith("ValueError: template 'activate'")
    assert "13800001111" not in str(data) and "second line" not in str(data)
    assert len(duty) == 1 and duty[0].target_kind == "duty"
    assert stage.key in (duty[0].text or {}).get("en", "")


def test_a_failed_escalation_deadline_names_the_page_that_was_not_escalated(
    seeded: Database, catalog: Catalog, clock: FrozenClock, context: Context, worker: object
) -> None:
    incident_id = declare(seeded, catalog, clock)
    from incident.worker import Worker

    assert isinstance(worker, Worker)
    worker.drain()  # the declared stage fires: pages with their deadlines
    job = claim_first(seeded, clock, "page.deadline")
    fail(seeded, job, clock, context)
    with seeded.reading() as session:
        event = session.scalars(
            select(TimelineEvent).where(
                TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "job:failed"
            )
        ).one()
        duty = session.scalars(select(Page).where(Page.origin == f"duty:job_failed:{job.id}")).one()
    assert event.data["page_id"] == job.payload["page_id"]
    assert f"page {job.payload['page_id']}" in (duty.text or {}).get("en", "")


def test_a_failed_job_of_no_incident_pages_nobody(
    seeded: Database, clock: FrozenClock, context: Context
) -> None:
    job = jobs.Claimed(1, "drill.start", "k", {"schedule_id": "s"}, None, clock.now(), 10)
    with seeded.transaction() as session:
        failures.on_job_failed(job, ERROR, session=session, now=clock.now(), policy=context.policy)
    with seeded.reading() as session:
        assert session.scalars(select(Page)).first() is None
