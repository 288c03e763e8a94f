"""The staged-response engine, driven by a frozen clock and the real worker."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.models import Job, Task
from incident.worker import Worker
from tests.factories import (
    MASS_DELAY_FACTS,
    change,
    declare,
    fired_counts,
    stage_keys,
    stage_states,
)


def test_declaring_mass_delay_fires_activation_at_once(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = declare(seeded, catalog, clock)
    activation = stage_keys(catalog, "mass-delay", "declared")
    assert activation
    worker.drain()
    states = stage_states(seeded, incident_id)
    assert all(states[key] == "fired" for key in activation)
    assert states["situation-report"] == "pending"


def test_after_stage_fires_when_clock_reaches_delay_and_not_before(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = declare(seeded, catalog, clock)
    worker.drain()
    clock.advance(minutes=9, seconds=59)
    worker.drain()
    assert stage_states(seeded, incident_id)["situation-report"] == "pending"
    clock.advance(seconds=1)
    worker.drain()
    assert stage_states(seeded, incident_id)["situation-report"] == "fired"
    assert fired_counts(seeded, incident_id)["situation-report"] == 1


def test_raising_severity_fires_escalation_exactly_once_even_when_raised_twice(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = declare(
        seeded, catalog, clock, facts={**MASS_DELAY_FACTS, "expected_delay_min": 45}
    )
    worker.drain()
    assert stage_states(seeded, incident_id)["escalate"] == "pending"
    change(seeded, catalog, clock, incident_id, severity="II")
    worker.drain()
    clock.advance(minutes=1)
    change(seeded, catalog, clock, incident_id, severity="I")
    change(seeded, catalog, clock, incident_id, severity="II")
    worker.drain()
    assert stage_states(seeded, incident_id)["escalate"] == "fired"
    assert fired_counts(seeded, incident_id)["escalate"] == 1


def test_lowering_severity_does_not_fire_escalation(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = declare(
        seeded, catalog, clock, facts={**MASS_DELAY_FACTS, "expected_delay_min": 45}
    )
    change(seeded, catalog, clock, incident_id, severity="IV")
    worker.drain()
    assert stage_states(seeded, incident_id)["escalate"] == "pending"


def test_a_fact_change_can_make_a_condition_true(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = declare(
        seeded, catalog, clock, facts={**MASS_DELAY_FACTS, "expected_delay_min": 45}
    )
    change(seeded, catalog, clock, incident_id, facts={"expected_delay_min": 150})
    worker.drain()
    assert stage_states(seeded, incident_id)["escalate"] == "fired"


def test_every_stage_repeats_on_its_interval_until_resolved(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    (periodic,) = stage_keys(catalog, "mass-delay", "every")[:1]
    interval = catalog.get("mass-delay").stage(periodic).when.delay
    assert interval is not None
    incident_id = declare(seeded, catalog, clock)
    for _ in range(3):
        clock.advance(interval)
        worker.drain()
    assert fired_counts(seeded, incident_id)[periodic] == 3
    change(seeded, catalog, clock, incident_id, status="resolved")
    clock.advance(interval * 3)
    worker.drain()
    assert fired_counts(seeded, incident_id)[periodic] == 3


def test_resolving_fires_stand_down_and_cancels_what_is_pending(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = declare(seeded, catalog, clock)
    worker.drain()
    change(seeded, catalog, clock, incident_id, status="resolved")
    worker.drain()
    states = stage_states(seeded, incident_id)
    for key in stage_keys(catalog, "mass-delay", "resolved"):
        assert states[key] == "fired"
    assert states["situation-report"] == "skipped"
    with seeded.reading() as session:
        queued = session.scalars(
            select(Job).where(Job.incident_id == incident_id, Job.status == "queued")
        ).all()
        follow_ups = session.scalars(select(Task.id).where(Task.follow_up.is_(True))).all()
    # Only the deadlines of the stand-down's follow-up tasks (#10) outlive the resolution.
    assert [(j.kind, j.payload["task_id"]) for j in queued] == [("task.due", t) for t in follow_ups]
    before = fired_counts(seeded, incident_id)
    clock.advance(hours=6)
    worker.drain()
    assert fired_counts(seeded, incident_id) == before


def test_minutes_since_condition_fires_at_its_threshold_as_a_timer(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    playbook = catalog.get("passenger-stranding")
    timed = [
        s
        for s in playbook.stages
        if s.when.kind == "if" and s.when.condition is not None and s.when.condition.time_facts
    ]
    assert timed, "the stranding playbook has minutes_since stages"
    stage = timed[0]
    facts = {
        name: 1 for name, spec in playbook.inputs.items() if spec.required and spec.type == "int"
    }
    facts.update(
        {
            name: "S"
            for name, spec in playbook.inputs.items()
            if spec.required and spec.type == "str"
        }
    )
    (time_fact,) = sorted(stage.when.condition.time_facts)[:1]  # type: ignore[union-attr]
    facts[time_fact] = clock.now().isoformat()
    incident_id = declare(
        seeded, catalog, clock, playbook="passenger-stranding", severity="IV", facts=facts
    )
    worker.drain()
    assert stage_states(seeded, incident_id)[stage.id] == "pending"
    with seeded.reading() as session:
        timers = session.scalars(
            select(Job).where(Job.kind == "incident.evaluate", Job.incident_id == incident_id)
        ).all()
    assert timers, "a timer job is scheduled for the threshold"
    first = min(t.run_at for t in timers)
    clock.set(first - timedelta(seconds=1))
    worker.drain()
    assert stage_states(seeded, incident_id)[stage.id] == "pending"
    clock.set(first)
    worker.drain()
    assert stage_states(seeded, incident_id)[stage.id] == "fired"


def test_a_job_run_again_after_its_lease_expired_leaves_its_effect_once(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    from incident import jobs

    incident_id = declare(seeded, catalog, clock)
    with seeded.transaction() as session:
        first = jobs.claim(session, owner="slow", now=clock.now(), lease=timedelta(seconds=30))
    assert first
    clock.advance(seconds=31)  # the slow worker is presumed dead
    worker.drain()
    before = fired_counts(seeded, incident_id)
    slow = Worker(worker.db, worker.ctx, clock, owner="slow")
    for job in first:  # the slow worker wakes and finishes its stale claims
        slow._run(job)
    assert fired_counts(seeded, incident_id) == before
    assert all(n == 1 for n in before.values())
