"""The append-only, hash-chained timeline of each incident.

Every event's ``hash`` is SHA-256 over the previous event's hash and the event's own canonical
JSON; the incident row keeps the head and the count, so an altered, removed (even the last),
inserted or reordered event is detected by :func:`verify`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from incident.models import Incident, TimelineEvent

GENESIS = "0" * 64
_EVENTS = cast(Table, TimelineEvent.__table__)
_INCIDENTS = cast(Table, Incident.__table__)


class Kind(StrEnum):
    DECLARED = "incident:declared"
    SEVERITY_CHANGED = "incident:severity_changed"
    FACTS_CHANGED = "incident:facts_changed"
    STATUS_CHANGED = "incident:status_changed"
    STAGE_DUE = "stage:due"
    STAGE_FIRED = "stage:fired"
    STAGE_SKIPPED = "stage:skipped"
    PAGE_REQUESTED = "page:requested"
    PAGE_SENT = "page:opened"
    PAGE_ESCALATED = "page:escalated"
    PAGE_EXHAUSTED = "page:unanswered"
    PAGE_UNREACHABLE = "page:unreachable"
    PAGE_ACKED = "page:acked"
    PAGE_DECLINED = "page:declined"
    NOTICE_REQUESTED = "notice:requested"
    PASSENGER_MESSAGE_REQUESTED = "passenger_message:requested"
    TASK_REQUESTED = "task:requested"
    DRILL_STARTED = "drill:started"
    DRILL_EVALUATED = "drill:evaluated"
    ACTION_CREATED = "corrective_action:created"
    ACTION_OVERDUE = "corrective_action:overdue"
    ACTION_DONE = "corrective_action:done"
    JOB_FAILED = "job:failed"


def canonical(payload: Any) -> str:
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _digest(
    prev_hash: str,
    incident_id: str,
    seq: int,
    kind: str,
    at: datetime,
    actor: str | None,
    data: dict[str, Any],
) -> str:
    body = canonical(
        {
            "incident": incident_id,
            "seq": seq,
            "kind": kind,
            "at": at.isoformat(),
            "actor": actor,
            "data": data,
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(
    incident: Incident,
    kind: Kind | str,
    data: dict[str, Any] | None = None,
    *,
    session: Session,
    at: datetime,
    actor: str | None = None,
    dedup_key: str | None = None,
) -> TimelineEvent | None:
    """Append one event; with ``dedup_key``, an event already recorded is not added twice.

    Three Core statements on the session's connection (no unit of work: every state change
    writes one or more events, so this is on the hot path of declaring and firing)."""
    session.flush()  # the incident row and whatever the caller changed go first
    conn = session.connection()
    if dedup_key is not None:
        seen = conn.execute(
            select(_EVENTS.c.id).where(
                _EVENTS.c.incident_id == incident.id, _EVENTS.c.dedup_key == dedup_key
            )
        ).first()
        if seen is not None:
            return None
    # The UPDATE takes the incident's row lock, so concurrent appends get distinct sequences.
    seq, prev = conn.execute(
        update(_INCIDENTS)
        .where(_INCIDENTS.c.id == incident.id)
        .values(timeline_seq=_INCIDENTS.c.timeline_seq + 1)
        .returning(_INCIDENTS.c.timeline_seq, _INCIDENTS.c.timeline_head)
    ).one()
    prev_hash = prev or GENESIS
    payload = data or {}
    event = TimelineEvent(
        incident_id=incident.id,
        seq=seq,
        kind=str(kind),
        at=at,
        actor=actor,
        data=payload,
        dedup_key=dedup_key,
        prev_hash=prev_hash,
        hash=_digest(prev_hash, incident.id, seq, str(kind), at, actor, payload),
    )
    event.id = conn.execute(
        insert(_EVENTS)
        .values(
            incident_id=event.incident_id,
            seq=seq,
            kind=event.kind,
            at=at,
            actor=actor,
            data=payload,
            dedup_key=dedup_key,
            prev_hash=prev_hash,
            hash=event.hash,
        )
        .returning(_EVENTS.c.id)
    ).scalar_one()
    conn.execute(
        update(_INCIDENTS).where(_INCIDENTS.c.id == incident.id).values(timeline_head=event.hash)
    )
    session.expire(incident, ["timeline_seq", "timeline_head"])
    return event  # a record of what was written (not in the session)


def events(
    incident_id: str, *, session: Session, after_seq: int = 0, limit: int | None = None
) -> list[TimelineEvent]:
    query = (
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id, TimelineEvent.seq > after_seq)
        .order_by(TimelineEvent.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def verify(incident_id: str, *, session: Session) -> list[str]:
    """Return what is wrong with the incident's chain (empty when intact)."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        return [f"{incident_id}: no such incident"]
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    for ev in events(incident_id, session=session):
        if ev.seq != expected_seq:
            problems.append(f"{incident_id}: event #{expected_seq} missing (found #{ev.seq})")
            expected_seq = ev.seq
        if ev.prev_hash != prev:
            problems.append(f"{incident_id}: event #{ev.seq} does not follow the event before it")
        recomputed = _digest(ev.prev_hash, incident_id, ev.seq, ev.kind, ev.at, ev.actor, ev.data)
        if recomputed != ev.hash:
            problems.append(f"{incident_id}: event #{ev.seq} was altered")
        prev = ev.hash
        expected_seq += 1
    if incident.timeline_seq != expected_seq - 1 or (incident.timeline_head or GENESIS) != prev:
        problems.append(
            f"{incident_id}: chain ends at #{expected_seq - 1} but the incident records "
            f"#{incident.timeline_seq}: events were removed or added"
        )
    return problems
