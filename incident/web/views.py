"""JSON shapes of the API's resources."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from incident import paging
from incident.models import Incident, Stage, TimelineEvent
from incident.notices.reading import summaries as notice_summaries
from incident.playbook import Playbook

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PHONE_CELL = re.compile(r"\+\d{1,15}")


def spreadsheet_safe(value: str) -> str:
    """A CSV cell a spreadsheet will not run: one starting with = + - @ tab or CR gets an
    apostrophe first (OWASP's CSV injection advice); an E.164 number (+ and digits only)
    cannot hold a formula and stays as it is."""
    if value.startswith(FORMULA_STARTS) and not _PHONE_CELL.fullmatch(value):
        return "'" + value
    return value


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def stage_json(stage: Stage, playbook: Playbook) -> dict[str, Any]:
    spec = playbook.stage(stage.key)
    return {
        "id": stage.key,
        "title": spec.title,
        "trigger": stage.trigger,
        "state": stage.state,
        "due_at": iso(stage.due_at),
        "fired_at": iso(stage.fired_at),
        "fire_count": stage.fire_count,
    }


def incident_json(
    incident: Incident,
    playbook: Playbook,
    *,
    pages: dict[str, int],
    passenger_groups: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "id": incident.id,
        "playbook": {
            "id": incident.playbook_id,
            "version": playbook.version,
            "digest": playbook.digest,
        },
        "title": incident.title,
        "severity": incident.severity,
        "mode": incident.mode,
        "status": incident.status,
        "facts": incident.facts,
        "declared_at": iso(incident.declared_at),
        "declared_by": incident.declared_by,
        "contained_at": iso(incident.contained_at),
        "resolved_at": iso(incident.resolved_at),
        "closed_at": iso(incident.closed_at),
        "stages": [stage_json(s, playbook) for s in incident.stages],
        "pages": pages,
        "notices": notice_summaries(incident),
        "passenger_groups": passenger_groups,
    }


def incident_summary(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "playbook": incident.playbook_id,
        "title": incident.title,
        "severity": incident.severity,
        "mode": incident.mode,
        "status": incident.status,
        "declared_at": iso(incident.declared_at),
    }


def event_json(event: TimelineEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "kind": event.kind,
        "at": iso(event.at),
        "actor": event.actor,
        "data": event.data,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def pages_summary(incident_id: str, *, session: Session) -> dict[str, int]:
    pages = paging.pages_of(incident_id, session=session)
    return {
        "total": len(pages),
        "awaiting_ack": sum(1 for p in pages if p.status in ("pending", "sent", "escalated")),
        "acked": sum(1 for p in pages if p.status == "acked"),
        "unreachable": sum(1 for p in pages if p.status == "unreachable"),
    }
