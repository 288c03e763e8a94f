"""The engine's rules: declare an incident, fire its stages, change it, resolve it.

Functions here take a session and the current time, add and flush, and never commit or send.
Stages fire through durable jobs (``stage.fire``); conditions that depend on elapsed time
schedule an ``incident.evaluate`` job at the moment they may change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import command, jobs, notices, paging, passengers, timeline
from incident.catalog import Catalog
from incident.db import locked
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.logs import get_logger
from incident.models import Incident, Stage, new_id
from incident.playbook import LEVELS, Action, Playbook, StageSpec, format_duration
from incident.settings import Settings
from incident.timeline import Kind

log = get_logger(__name__)

MODES = ("live", "drill")
STATUSES = ("active", "contained", "resolved", "closed")
TITLE_MAX = 200
PENDING_JOB_KINDS = ("stage.fire", "incident.evaluate", paging.DEADLINE_JOB, command.TASK_DUE_JOB)
_NEXT_STATUS = {
    "active": {"contained", "resolved"},
    "contained": {"resolved"},
    "resolved": {"closed"},
    "closed": set(),
}
_ACTION_EVENTS = {
    "notice": Kind.NOTICE_REQUESTED,
    "passenger_message": Kind.PASSENGER_MESSAGE_REQUESTED,
    "task": Kind.TASK_REQUESTED,
    "authority_report": command.CommandEvent.REPORT_REQUESTED,
}
DEFAULT_ZONE = ZoneInfo(Settings.timezone)


def _fire_key(stage: Stage, occurrence: int | str) -> str:
    return f"stage:{stage.id}:{occurrence}"


def _enqueue_fire(stage: Stage, occurrence: int | str, at: datetime, *, session: Session) -> bool:
    return jobs.enqueue(
        session,
        "stage.fire",
        {"stage_id": stage.id, "occurrence": occurrence},
        key=_fire_key(stage, occurrence),
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


def validate_declaration(
    catalog: Catalog,
    playbook_id: object,
    severity: object,
    title: object,
    facts: object,
    mode: object,
) -> tuple[Playbook, dict[str, Any], str, str, str]:
    """Check a declaration; return the playbook and the coerced facts or raise one error
    listing every field that is wrong."""
    errors: list[FieldError] = []
    playbook: Playbook | None = None
    if not isinstance(playbook_id, str) or not catalog.has(playbook_id):
        errors.append(
            FieldError("playbook", f"unknown playbook; choose one of {', '.join(catalog.ids())}")
        )
    else:
        playbook = catalog.get(playbook_id)
    if severity not in LEVELS:
        errors.append(FieldError("severity", "must be one of I, II, III, IV (I most severe)"))
    if not isinstance(title, str) or not title.strip():
        errors.append(FieldError("title", "a title is required"))
    elif len(title) > TITLE_MAX:
        errors.append(FieldError("title", f"at most {TITLE_MAX} characters"))
    if mode not in MODES:
        errors.append(FieldError("mode", "must be live or drill"))
    coerced: dict[str, Any] = {}
    if not isinstance(facts, Mapping):
        errors.append(FieldError("facts", "must be an object"))
    elif playbook is not None:
        coerced, problems = playbook.validate_facts(facts)
        errors.extend(FieldError(f"facts.{name}", msg) for name, msg in problems)
    if errors or playbook is None:
        raise ValidationFailed("the declaration is not valid", errors)
    assert isinstance(severity, str) and isinstance(title, str) and isinstance(mode, str)
    return playbook, coerced, severity, title.strip(), mode


def declare(
    *,
    session: Session,
    now: datetime,
    catalog: Catalog,
    playbook_id: object,
    severity: object,
    title: object,
    facts: object,
    mode: object = "live",
    actor: str | None = None,
    participants: list[str] | None = None,
    drill_schedule_id: str | None = None,
    drill_channels: list[str] | None = None,
    zone: ZoneInfo = DEFAULT_ZONE,
) -> Incident:
    """Declare an incident from a playbook: command roles filled from the rota (read in
    ``zone``), stages scheduled, first jobs queued.

    The declaration's fields arrive unchecked (from JSON or the command line) and are
    validated here, every wrong field reported at once."""
    playbook, coerced, severity, title, mode = validate_declaration(
        catalog, playbook_id, severity, title, facts, mode
    )
    if mode != "drill" and (participants or drill_schedule_id or drill_channels):
        raise ValidationFailed(
            "participants and drill channels are for drills",
            [FieldError("mode", "participants and drill channels need mode drill")],
        )
    version = catalog.pin(playbook, session=session, now=now)
    incident = Incident(
        id=new_id("inc"),
        playbook_id=playbook.id,
        playbook_version_id=version.id,
        title=title.strip(),
        severity=severity,
        mode=mode,
        status="active",
        facts=coerced,
        declared_at=now,
        declared_by=actor,
        timeline_seq=0,
        timeline_head="",
        participants=participants or None,
        drill_schedule_id=drill_schedule_id,
        drill_channels=drill_channels or None,
    )
    session.add(incident)
    for position, spec in enumerate(playbook.stages):
        incident.stages.append(
            Stage(
                key=spec.id,
                position=position,
                trigger=spec.when.kind,
                state="pending",
                fire_count=0,
            )
        )
    session.flush()
    timeline.append(
        incident,
        Kind.DECLARED,
        {
            "playbook": playbook.id,
            "version": playbook.version,
            "digest": playbook.digest,
            "severity": severity,
            "mode": mode,
            "title": incident.title,
            "facts": coerced,
            "participants": participants or [],
        },
        session=session,
        at=now,
        actor=actor,
    )
    command.roles.fill(incident, playbook, session=session, now=now, zone=zone)
    for stage, spec in zip(incident.stages, playbook.stages, strict=True):
        trigger = spec.when
        if trigger.kind == "declared":
            _make_due(incident, stage, now, session=session, reason="declared")
        elif trigger.kind in ("after", "every") and trigger.delay is not None:
            stage.due_at = now + trigger.delay
            _enqueue_fire(stage, 1, stage.due_at, session=session)
    evaluate_conditions(incident, playbook, session=session, now=now)
    log.info(
        "incident_declared",
        incident_id=incident.id,
        playbook=playbook.id,
        severity=severity,
        mode=mode,
    )
    return incident


def _make_due(
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
    if _enqueue_fire(stage, occurrence, now, session=session):
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
            _make_due(
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
        _enqueue_fire(stage, occurrence + 1, stage.due_at, session=session)
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
        _enqueue_fire(stage, occurrence, now, session=session)
    else:
        _make_due(
            incident, stage, now, session=session, reason=f"fired by {actor}", occurrence=occurrence
        )
    return stage


def change(
    incident: Incident,
    *,
    session: Session,
    now: datetime,
    catalog: Catalog,
    severity: str | None = None,
    facts: Mapping[str, Any] | None = None,
    status: str | None = None,
    actor: str | None = None,
) -> Incident:
    """Change severity, facts (merged, ``None`` removes) or status; re-evaluate conditions.
    The incident row is locked first: a stage firing meanwhile finishes before, or waits."""
    incident = locked(session, Incident, incident.id) or incident
    playbook = playbook_of(incident, catalog)
    errors: list[FieldError] = []
    if severity is not None and severity not in LEVELS:
        errors.append(FieldError("severity", "must be one of I, II, III, IV (I most severe)"))
    if status is not None and status not in STATUSES:
        errors.append(FieldError("status", "must be contained, resolved or closed"))
    merged: dict[str, Any] | None = None
    if facts is not None:
        if not isinstance(facts, Mapping):
            errors.append(FieldError("facts", "must be an object"))
        else:
            present = {k: v for k, v in facts.items() if v is not None}
            coerced, problems = playbook.validate_facts(present, partial=True)
            errors.extend(FieldError(f"facts.{k}", m) for k, m in problems)
            merged = {k: v for k, v in incident.facts.items() if k not in facts}
            merged.update(coerced)
            missing = [
                n for n, spec in playbook.inputs.items() if spec.required and n not in merged
            ]
            errors.extend(
                FieldError(f"facts.{n}", "is required and cannot be removed") for n in missing
            )
    if errors:
        raise ValidationFailed("the change is not valid", errors)
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    if (
        status is not None
        and status != incident.status
        and status not in _NEXT_STATUS[incident.status]
    ):
        raise Conflict(f"an incident that is {incident.status} cannot become {status}")

    before = (incident.severity, incident.facts)
    if severity is not None and severity != incident.severity:
        timeline.append(
            incident,
            Kind.SEVERITY_CHANGED,
            {"from": incident.severity, "to": severity},
            session=session,
            at=now,
            actor=actor,
        )
        incident.severity = severity
    if merged is not None and merged != incident.facts:
        timeline.append(
            incident,
            Kind.FACTS_CHANGED,
            {"from": incident.facts, "to": merged},
            session=session,
            at=now,
            actor=actor,
        )
        incident.facts = merged
    if (severity is not None and severity != before[0]) or (
        merged is not None and merged != before[1]
    ):
        command.reports.facts_changed(incident, playbook, session=session, now=now)
    if status is not None and status != incident.status:
        _set_status(incident, status, session=session, now=now, actor=actor)
    else:
        evaluate_conditions(incident, playbook, session=session, now=now)
    session.flush()
    return incident


def _set_status(
    incident: Incident, status: str, *, session: Session, now: datetime, actor: str | None
) -> None:
    timeline.append(
        incident,
        Kind.STATUS_CHANGED,
        {"from": incident.status, "to": status},
        session=session,
        at=now,
        actor=actor,
    )
    incident.status = status
    if status == "contained":
        incident.contained_at = now
    elif status == "resolved":
        incident.resolved_at = now
        _stand_down(incident, session=session, now=now)
    elif status == "closed":
        incident.closed_at = now
        passengers.schedule_purge(incident, session=session, now=now)


def _stand_down(incident: Incident, *, session: Session, now: datetime) -> None:
    cancelled = jobs.cancel_for_incident(session, incident.id, kinds=PENDING_JOB_KINDS, now=now)
    for stage in incident.stages:
        if stage.trigger == "resolved":
            _make_due(incident, stage, now, session=session, reason="resolved")
        elif stage.state in ("pending", "due"):
            stage.state = "fired" if stage.fire_count else "skipped"
            stage.due_at = None if stage.state == "skipped" else stage.due_at
            timeline.append(
                incident,
                Kind.STAGE_SKIPPED,
                {"stage": stage.key, "reason": "resolved"},
                session=session,
                at=now,
            )
    log.info("incident_resolved", incident_id=incident.id, jobs_cancelled=cancelled)


def get_incident(incident_id: str, *, session: Session) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id!r}")
    return incident


def list_incidents(
    *,
    session: Session,
    status: str | None = None,
    mode: str | None = None,
    limit: int = 50,
    before: tuple[datetime, str] | None = None,
) -> list[Incident]:
    query = select(Incident)
    if status:
        query = query.where(Incident.status == status)
    if mode:
        query = query.where(Incident.mode == mode)
    if before is not None:
        at, ident = before
        query = query.where(
            (Incident.declared_at < at) | ((Incident.declared_at == at) & (Incident.id < ident))
        )
    query = query.order_by(Incident.declared_at.desc(), Incident.id.desc()).limit(limit)
    return list(session.scalars(query))
