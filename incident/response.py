"""The engine's rules: declare an incident, fire its stages, change it, resolve it.

Functions here take a session and the current time, add and flush, and never commit or send.
Stages fire through durable jobs (``stage.fire``); conditions that depend on elapsed time
schedule an ``incident.evaluate`` job at the moment they may change. Firing stages and
evaluating conditions live in ``incident.stages`` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import command, jobs, paging, passengers, timeline
from incident.catalog import Catalog
from incident.db import locked
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.logs import get_logger
from incident.models import Incident, Stage, new_id
from incident.playbook import LEVELS, Playbook
from incident.settings import Settings
from incident.stages import condition_facts as condition_facts
from incident.stages import enqueue_fire, make_due
from incident.stages import evaluate_conditions as evaluate_conditions
from incident.stages import fire_manually as fire_manually
from incident.stages import fire_stage as fire_stage
from incident.stages import playbook_of as playbook_of
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
DEFAULT_ZONE = ZoneInfo(Settings.timezone)


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
            make_due(incident, stage, now, session=session, reason="declared")
        elif trigger.kind in ("after", "every") and trigger.delay is not None:
            stage.due_at = now + trigger.delay
            enqueue_fire(stage, 1, stage.due_at, session=session)
    evaluate_conditions(incident, playbook, session=session, now=now)
    log.info(
        "incident_declared",
        incident_id=incident.id,
        playbook=playbook.id,
        severity=severity,
        mode=mode,
    )
    return incident


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
            make_due(incident, stage, now, session=session, reason="resolved")
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
