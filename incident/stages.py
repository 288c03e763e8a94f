"""Stages: when they are due, and firing them (their actions); the ``if`` conditions.

Functions here take a session and the current time, add and flush, and never commit or send.
Stages fire through durable jobs (``stage.fire``); conditions that depend on elapsed time
schedule an ``incident.evaluate`` job at the moment they may change. ``incident.response``
declares, changes and resolves incidents on top of these.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from incident import command, jobs, notices, paging, passengers, timeline
from incident.catalog import Catalog
from incident.db import locked
from incident.errors import Conflict, NotFound
from incident.logs import get_logger
from incident.models import Incident, Stage
from incident.playbook import Action, Playbook, StageSpec, format_duration
from incident.timeline import Kind

log = get_logger(__name__)

_ACTION_EVENTS = {
    "notice": Kind.NOTICE_REQUESTED,
    "passenger_message": Kind.PASSENGER_MESSAGE_REQUESTED,
    "task": Kind.TASK_REQUESTED,
    "authority_report": command.CommandEvent.REPORT_REQUESTED,
}


def fire_key(stage: Stage, occurrence: int | str) -> str:
    return f"stage:{stage.id}:{occurrence}"


def enqueue_fire(stage: Stage, occurrence: int | str, at: datetime, *, session: Session) -> bool:
    return jobs.enqueue(
        session,
        "stage.fire",
        {"stage_id": stage.id, "occurrence": occurrence},
        key=fire_key(stage, occurrence),
        run_at=at,
        incident_id=stage.incident_id,
    )


def condition_facts(incident: Incident) -> dict[str, Any]:
    """What conditions and templates see: the facts plus the built-in ones."""
    return {
        **incident.facts,
        "severity": incident.severity,
        "mode": incident.mode,
        "declared_at": incident.declared_at,
        "title": incident.title,
    }


def make_due(
    incident: Incident,
    stage: Stage,
    now: datetime,
    *,
    session: Session,
    reason: str,
    occurrence: int | str = 1,
    due_at: datetime | None = None,
) -> None:
    stage.state = "due"
    stage.due_at = min(due_at, now) if due_at is not None else now
    if enqueue_fire(stage, occurrence, now, session=session):
        timeline.append(
            incident,
            Kind.STAGE_DUE,
            {"stage": stage.key, "reason": reason},
            session=session,
            at=now,
            dedup_key=f"due:{stage.key}:{occurrence}",
        )


def playbook_of(incident: Incident, catalog: Catalog) -> Playbook:
    return catalog.pinned(incident.playbook_version)


def evaluate_conditions(
    incident: Incident,
    playbook: Playbook,
    *,
    session: Session,
    now: datetime,
    checked_for: datetime | None = None,
) -> list[str]:
    """Make due every pending ``if`` stage whose condition holds; schedule the next check
    for time-dependent conditions. Return the keys of stages made due.

    ``checked_for`` is the moment a timer was set for (a time threshold): stages that hold
    now are due since then, so that lateness is measured against the threshold."""
    if incident.status not in ("active", "contained"):
        return []
    facts = condition_facts(incident)
    made_due: list[str] = []
    next_check: datetime | None = None
    for stage in incident.stages:
        spec = playbook.stage(stage.key)
        condition = spec.when.condition
        if spec.when.kind != "if" or condition is None or stage.state != "pending":
            continue
        if condition.evaluate(facts, now):
            make_due(
                incident,
                stage,
                now,
                session=session,
                reason=f"if {condition.source}",
                due_at=checked_for,
            )
            made_due.append(stage.key)
            continue
        change = condition.next_change(facts, now)
        if change is not None and (next_check is None or change < next_check):
            next_check = change
    if next_check is not None:
        jobs.enqueue(
            session,
            "incident.evaluate",
            {"incident_id": incident.id},
            key=f"evaluate:{incident.id}:{next_check.isoformat()}",
            run_at=next_check,
            incident_id=incident.id,
        )
    return made_due


def _action_record(action: Action) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in action.params.items():
        params[name] = format_duration(value) if isinstance(value, timedelta) else value
    return {"action": action.kind, "params": params}


def _perform(
    incident: Incident,
    playbook: Playbook,
    spec: StageSpec,
    stage: Stage,
    occurrence: int | str,
    *,
    session: Session,
    now: datetime,
    policy: paging.PagingPolicy,
) -> None:
    for index, action in enumerate(spec.actions):
        origin = f"{stage.key}:{occurrence}:{index}"
        if action.kind == "page":
            paging.page_for_action(
                incident,
                playbook,
                action,
                origin=origin,
                stage_key=stage.key,
                session=session,
                now=now,
                policy=policy,
            )
            continue
        if action.kind == "task":
            command.tasks.from_action(
                incident,
                playbook,
                action,
                origin=origin,
                stage_key=stage.key,
                record={"stage": stage.key, **_action_record(action)},
                session=session,
                now=now,
            )
            continue
        # Each other action is recorded on the timeline, once per stage occurrence.
        timeline.append(
            incident,
            _ACTION_EVENTS[action.kind],
            {"stage": stage.key, **_action_record(action)},
            session=session,
            at=now,
            dedup_key=f"action:{origin}",
        )
        if action.kind == "notice":
            notices.draft_from_action(
                incident,
                playbook,
                action,
                origin=origin,
                stage_key=stage.key,
                session=session,
                now=now,
                zone=policy.zone,
            )
        if action.kind == "authority_report":
            command.reports.from_action(
                incident, playbook, action, origin=origin, session=session, now=now
            )
        if action.kind == "passenger_message":
            passengers.broadcasts.from_action(
                incident,
                playbook,
                action,
                origin=origin,
                stage_key=stage.key,
                session=session,
                now=now,
                zone=policy.zone,
            )


def fire_stage(
    stage_id: int,
    occurrence: int | str,
    *,
    session: Session,
    now: datetime,
    catalog: Catalog,
    policy: paging.PagingPolicy,
) -> bool:
    """Fire one occurrence of a stage; a repeat of the same occurrence changes nothing.

    The incident row is locked first, so a resolution committing meanwhile is seen."""
    found = session.get(Stage, stage_id)
    incident = locked(session, Incident, found.incident_id) if found is not None else None
    stage = session.get(Stage, stage_id, populate_existing=True)
    if stage is None or incident is None:
        return False
    playbook = playbook_of(incident, catalog)
    spec = playbook.stage(stage.key)
    ended = incident.status in ("resolved", "closed")
    if stage.state == "skipped" or (ended and spec.when.kind != "resolved"):
        return False
    if spec.when.kind != "every" and stage.state == "fired":
        return False
    fired = timeline.append(
        incident,
        Kind.STAGE_FIRED,
        {
            "stage": stage.key,
            "occurrence": occurrence,
            "due_at": stage.due_at.isoformat() if stage.due_at else None,
        },
        session=session,
        at=now,
        dedup_key=f"fired:{stage.key}:{occurrence}",
    )
    if fired is None:
        return False
    _perform(incident, playbook, spec, stage, occurrence, session=session, now=now, policy=policy)
    stage.fired_at = now
    stage.fire_count += 1
    if spec.when.kind == "every" and spec.when.delay is not None and isinstance(occurrence, int):
        stage.state = "pending"
        base = stage.due_at or now
        stage.due_at = base + spec.when.delay
        enqueue_fire(stage, occurrence + 1, stage.due_at, session=session)
    else:
        stage.state = "fired"
    log.info("stage_fired", incident_id=incident.id, stage=stage.key, occurrence=occurrence)
    return True


def fire_manually(
    incident: Incident, stage_key: str, *, session: Session, now: datetime, actor: str | None
) -> Stage:
    """A duty manager fires a manual stage, or a pending one early."""
    incident = locked(session, Incident, incident.id) or incident
    if incident.status not in ("active", "contained"):
        raise Conflict(f"the incident is {incident.status}; stages no longer fire")
    stage = next((s for s in incident.stages if s.key == stage_key), None)
    if stage is None:
        raise NotFound(f"no stage {stage_key!r} in this incident")
    if stage.trigger == "resolved":
        raise Conflict("stand-down stages fire when the incident is resolved")
    if stage.trigger != "every" and stage.state in ("fired", "due"):
        raise Conflict(f"stage {stage_key!r} is already {stage.state}")
    occurrence: int | str = f"manual-{stage.fire_count + 1}"
    if stage.trigger == "every":
        enqueue_fire(stage, occurrence, now, session=session)
    else:
        make_due(
            incident, stage, now, session=session, reason=f"fired by {actor}", occurrence=occurrence
        )
    return stage
