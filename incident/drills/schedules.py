"""Drill schedules: cron in the centre's time zone; each due run starts exactly once,
however many workers there are (the start job's key names the schedule and the minute)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import jobs, response, timeline
from incident.catalog import Catalog
from incident.errors import FieldError, ValidationFailed
from incident.logs import get_logger
from incident.models import DrillSchedule, Incident, new_id

log = get_logger(__name__)
START_JOB = "drill.start"


def next_runs(cron: str, after: datetime, zone: ZoneInfo, count: int = 1) -> list[datetime]:
    """The next ``count`` moments (UTC) a cron expression names, read in ``zone``."""
    itr = croniter(cron, after.astimezone(zone))
    return [itr.get_next(datetime).astimezone(after.tzinfo) for _ in range(count)]


def _check_cron(cron: object) -> str:
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise ValidationFailed(
            "the schedule is not valid",
            [FieldError("cron", "not a cron expression, e.g. '0 10 * * 3'")],
        )
    return cron


def _enqueue_next(
    schedule: DrillSchedule, *, session: Session, now: datetime, zone: ZoneInfo
) -> None:
    (due,) = next_runs(schedule.cron, now, zone)
    schedule.next_run_at = due
    jobs.enqueue(
        session,
        START_JOB,
        {"schedule_id": schedule.id},
        key=f"drill:{schedule.id}:{due.isoformat()}",
        run_at=due,
    )


def add_schedule(
    *,
    session: Session,
    now: datetime,
    zone: ZoneInfo,
    catalog: Catalog,
    playbook_id: object,
    cron: object,
    severity: object,
    facts: object,
    title: object = None,
    participants: list[str] | None = None,
    channels: list[str] | None = None,
    actor: str | None = None,
) -> DrillSchedule:
    """Add a schedule; its first run is queued at once."""
    cron_text = _check_cron(cron)
    label = title if isinstance(title, str) and title.strip() else None
    playbook, coerced, level, checked_title, _ = response.validate_declaration(
        catalog, playbook_id, severity, label or "Scheduled drill", facts, "drill"
    )
    schedule = DrillSchedule(
        id=new_id("drs"),
        playbook_id=playbook.id,
        cron=cron_text,
        title=checked_title,
        severity=level,
        facts=coerced,
        participants=list(participants or []),
        channels=list(channels or []),
        active=True,
        created_at=now,
        created_by=actor,
    )
    session.add(schedule)
    session.flush()
    _enqueue_next(schedule, session=session, now=now, zone=zone)
    log.info("drill_scheduled", schedule_id=schedule.id, playbook=playbook.id, cron=cron_text)
    return schedule


def start_drill(
    *,
    session: Session,
    now: datetime,
    catalog: Catalog,
    playbook_id: object,
    severity: object,
    facts: Mapping[str, Any] | object,
    title: object = None,
    participants: list[str] | None = None,
    channels: list[str] | None = None,
    actor: str | None = None,
    schedule_id: str | None = None,
    zone: ZoneInfo = response.DEFAULT_ZONE,
) -> Incident:
    """Start a drill now: an incident in mode ``drill`` running the real playbook."""
    label = title if isinstance(title, str) and title.strip() else "Drill"
    incident = response.declare(
        session=session,
        now=now,
        catalog=catalog,
        playbook_id=playbook_id,
        severity=severity,
        title=label,
        facts=facts,
        mode="drill",
        actor=actor,
        participants=list(participants or []),
        drill_schedule_id=schedule_id,
        drill_channels=list(channels or []),
        zone=zone,
    )
    timeline.append(
        incident,
        timeline.Kind.DRILL_STARTED,
        {"schedule": schedule_id, "participants": participants or []},
        session=session,
        at=now,
        actor=actor,
    )
    return incident


def start_scheduled(
    schedule_id: str,
    due: datetime,
    *,
    session: Session,
    now: datetime,
    zone: ZoneInfo,
    catalog: Catalog,
) -> Incident | None:
    """Run one due occurrence of a schedule and queue the next one."""
    schedule = session.get(DrillSchedule, schedule_id)
    if schedule is None or not schedule.active:
        return None
    incident = start_drill(
        session=session,
        now=now,
        catalog=catalog,
        playbook_id=schedule.playbook_id,
        severity=schedule.severity,
        facts=schedule.facts,
        title=schedule.title,
        participants=list(schedule.participants),
        channels=list(schedule.channels),
        actor="schedule",
        schedule_id=schedule.id,
        zone=zone,
    )
    schedule.last_run_at = due
    _enqueue_next(schedule, session=session, now=max(now, due), zone=zone)
    return incident


def upcoming(
    *, session: Session, now: datetime, zone: ZoneInfo, per_schedule: int = 3
) -> list[dict[str, Any]]:
    """The next runs of every active schedule, soonest first."""
    runs = []
    for schedule in session.scalars(select(DrillSchedule).where(DrillSchedule.active.is_(True))):
        for at in next_runs(schedule.cron, now, zone, per_schedule):
            runs.append(
                {
                    "schedule": schedule.id,
                    "playbook": schedule.playbook_id,
                    "title": schedule.title,
                    "at": at,
                }
            )
    return sorted(runs, key=lambda r: r["at"])
