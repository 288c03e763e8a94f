"""A job that fails is an alarm (#14): the auditor and /metrics name failed jobs and jobs
being retried again and again, from bounded queries."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from starlette.testclient import TestClient

from incident.auditor import Auditor
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import HANDLERS, Context
from incident.jobs import Claimed
from incident.models import Job
from incident.settings import Settings
from incident.worker import Worker
from tests.factories import declare

PHONE = "13800001111"  # not a canary: the worker stores errors as they are


def broken_template(job: Claimed, *args: object) -> None:
    raise ValueError(f"template 'activate': no field 'contact' (caller {PHONE})\nsecond line")


def failing_worker(
    db: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> Worker:
    ctx = Context.build(settings.replace(job_max_attempts=4), catalog)
    return Worker(db, ctx, clock, handlers={**HANDLERS, "stage.fire": broken_template}, owner="t")


def rounds(worker: Worker, clock: FrozenClock, n: int) -> None:
    for _ in range(n):
        worker.drain()
        clock.advance(minutes=6)


def stage_jobs(db: Database, status: str) -> list[Job]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(Job).where(Job.kind == "stage.fire", Job.status == status).order_by(Job.id)
            )
        )


def test_a_stage_job_failing_again_and_again_is_reported_as_retrying_then_as_failed(
    seeded: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> None:
    incident_id = declare(seeded, catalog, clock)
    worker = failing_worker(seeded, settings, catalog, clock)
    auditor = Auditor(seeded, settings, clock)
    rounds(worker, clock, 3)
    keys = {c.key: c for c in auditor.conditions(clock.now())}
    assert "retrying:stage.fire" in keys, keys
    assert "failed-jobs" not in keys
    text = keys["retrying:stage.fire"].text
    assert "ValueError" in text and PHONE not in text and "second line" not in text
    rounds(worker, clock, 2)
    failed_jobs = stage_jobs(seeded, "failed")
    assert failed_jobs
    found = {c.key: c for c in auditor.conditions(clock.now())}
    failed = found["failed-jobs"].text
    stage_id = failed_jobs[0].payload["stage_id"]
    assert "stage.fire" in failed and incident_id in failed and f"stage {stage_id}" in failed
    assert PHONE not in failed


def test_failed_jobs_are_alerted_once_again_when_another_fails_and_not_after_the_window(
    seeded: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> None:
    declare(seeded, catalog, clock)
    worker = failing_worker(seeded, settings, catalog, clock)
    auditor = Auditor(seeded, settings.replace(auditor_failed_job_hours=24.0), clock)
    rounds(worker, clock, 5)
    first = [t for t in auditor.check() if "failed for good" in t]
    assert len(first) == 1 and "ALERT" in first[0]
    assert f"{len(stage_jobs(seeded, 'failed'))} job(s)" in first[0]
    assert [t for t in auditor.check() if "failed for good" in t] == []  # said once
    clock.advance(hours=2)
    declare(seeded, catalog, clock)  # a second incident whose stages fail too
    rounds(worker, clock, 5)
    again = [t for t in auditor.check() if "failed for good" in t]
    assert len(again) == 1 and "ALERT" in again[0]
    assert f"{len(stage_jobs(seeded, 'failed'))} job(s)" in again[0] and again[0] != first[0]
    clock.advance(hours=30)  # every failure has left the window
    cleared = [t for t in auditor.check() if "failed for good" in t]
    assert len(cleared) == 1 and cleared[0].startswith("[incident auditor] recovered")
    assert "failed-jobs" not in {c.key for c in auditor.conditions(clock.now())}


def test_metrics_count_failed_and_retried_jobs_by_kind(
    client: TestClient, seeded: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> None:
    # /metrics answers loopback peers only without INCIDENT_METRICS_TOKEN (#16)
    scraper = TestClient(client.app, raise_server_exceptions=False, client=("127.0.0.1", 50000))

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = scraper.get("/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    declare(seeded, catalog, clock)
    worker = failing_worker(seeded, settings, catalog, clock)
    rounds(worker, clock, 2)
    retrying = samples()
    twice = [j for j in stage_jobs(seeded, "queued") if j.attempts >= 2]
    assert twice and retrying[("incident_jobs_retrying", (("kind", "stage.fire"),))] == len(twice)
    assert ("incident_jobs_failed", (("kind", "stage.fire"),)) not in retrying
    rounds(worker, clock, 3)
    failed = samples()
    assert failed[("incident_jobs_failed", (("kind", "stage.fire"),))] == len(
        stage_jobs(seeded, "failed")
    )
    clock.advance(timedelta(hours=25))
    assert ("incident_jobs_failed", (("kind", "stage.fire"),)) not in samples()
