"""Operations facts: worker heartbeats, late jobs, queue depth, delivery and page counts —
for /readyz, /metrics and the auditor that watches the workers from another process."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from incident.logs import mask_text
from incident.models import Delivery, Job, Page, WorkerHeartbeat

# A failed job's run_at is when its last attempt was due: at most this long before it failed
# unless the queue was that late. Bounding run_at lets ix_jobs_status_run_at find failed jobs
# of a window without reading every failed job ever.
FAILED_RUN_AT_SLACK = timedelta(days=1)


def beat(
    owner: str,
    *,
    host: str,
    pid: int,
    started_at: datetime,
    jobs_done: int,
    session: Session,
    now: datetime,
    stopped: bool = False,
) -> None:
    """Record that a worker is alive (an upsert of its row)."""
    values = {
        "owner": owner,
        "host": host,
        "pid": pid,
        "started_at": started_at,
        "beat_at": now,
        "jobs_done": jobs_done,
        "stopped_at": now if stopped else None,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(WorkerHeartbeat).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["owner"],
        set_={"beat_at": now, "jobs_done": jobs_done, "stopped_at": values["stopped_at"]},
    )
    session.execute(stmt)


def alive_workers(*, session: Session, now: datetime, within: timedelta) -> int:
    """Workers that beat within ``within`` and did not say they stopped."""
    return int(
        session.scalar(
            select(func.count()).where(
                WorkerHeartbeat.beat_at > now - within, WorkerHeartbeat.stopped_at.is_(None)
            )
        )
        or 0
    )


@dataclass(frozen=True)
class WorkerState:
    owner: str
    host: str
    pid: int
    age_s: float
    jobs_done: int
    stopped: bool
    started_at: datetime | None = None


def workers(
    *,
    session: Session,
    now: datetime,
    within: timedelta = timedelta(hours=1),
    also: Collection[str] = (),
) -> list[WorkerState]:
    """Workers seen within ``within``, and the workers named in ``also`` however long ago
    they were seen (stopped ones included, marked)."""
    seen = WorkerHeartbeat.beat_at > now - within
    rows = session.scalars(
        select(WorkerHeartbeat)
        .where(or_(seen, WorkerHeartbeat.owner.in_(list(also))) if also else seen)
        .order_by(WorkerHeartbeat.owner)
    )
    return [
        WorkerState(
            r.owner,
            r.host,
            r.pid,
            round((now - r.beat_at).total_seconds(), 3),
            r.jobs_done,
            r.stopped_at is not None,
            r.started_at,
        )
        for r in rows
    ]


def forget(owner: str, *, session: Session, now: datetime) -> bool:
    """Mark a worker that stopped beating without saying so as stopped (an operator looked:
    it is gone for good); it counts as alive again if it ever beats. Whether it was there."""
    result = session.execute(
        update(WorkerHeartbeat)
        .where(WorkerHeartbeat.owner == owner, WorkerHeartbeat.stopped_at.is_(None))
        .values(stopped_at=now),
        execution_options={"synchronize_session": False},
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def late_jobs(
    *, session: Session, now: datetime, kinds: tuple[str, ...], late_by: timedelta
) -> list[Job]:
    """Queued jobs of these kinds still waiting ``late_by`` after they were due."""
    return list(
        session.scalars(
            select(Job)
            .where(
                Job.kind.in_(kinds),
                Job.status.in_(("queued", "running")),
                Job.run_at < now - late_by,
            )
            .order_by(Job.run_at)
            .limit(100)
        )
    )


def queue_depth(*, session: Session, now: datetime) -> dict[str, tuple[int, float]]:
    """Per job kind: how many are due now and how late the oldest of them is (seconds)."""
    rows = session.execute(
        select(Job.kind, func.count(), func.min(Job.run_at))
        .where(Job.status == "queued", Job.run_at <= now)
        .group_by(Job.kind)
    ).all()
    out = {}
    for kind, count, oldest in rows:
        out[kind] = (int(count), max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    return out


def delivery_counts(*, session: Session) -> dict[tuple[str, str, str], int]:
    """Deliveries by (purpose, channel, status)."""
    rows = session.execute(
        select(Delivery.purpose, Delivery.channel, Delivery.status, func.count()).group_by(
            Delivery.purpose, Delivery.channel, Delivery.status
        )
    ).all()
    return {(p, c, s): int(n) for p, c, s, n in rows}


def pages_awaiting_ack(*, session: Session) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Page)
            .where(Page.status.in_(("pending", "sent", "escalated")), Page.exhausted_at.is_(None))
        )
        or 0
    )


def ack_seconds(*, session: Session) -> list[float]:
    rows = session.execute(
        select(Page.created_at, Page.acked_at).where(Page.acked_at.is_not(None))
    ).all()
    return [(acked - created).total_seconds() for created, acked in rows if acked is not None]


def error_line(error: str | None, limit: int = 200) -> str:
    """The first line of a job's error, phone numbers masked, at most ``limit`` characters."""
    lines = (error or "").strip().splitlines()
    return mask_text(lines[0] if lines else "")[:limit]


@dataclass(frozen=True)
class TroubledJob:
    """A job that failed for good, or that keeps failing and waits for another attempt."""

    id: int
    kind: str
    incident_id: str | None
    payload: dict[str, Any]
    attempts: int
    error: str  # error_line of its last error
    at: datetime  # when it failed (failed), or when it runs again (retrying)


def _failed_within(now: datetime, within: timedelta) -> tuple[Any, ...]:
    return (
        Job.status == "failed",
        Job.run_at > now - within - FAILED_RUN_AT_SLACK,
        Job.finished_at > now - within,
    )


def failed_jobs(
    *, session: Session, now: datetime, within: timedelta, limit: int = 20
) -> list[TroubledJob]:
    """Jobs that failed for good within ``within`` of ``now``, newest first, at most ``limit``."""
    rows = session.scalars(
        select(Job)
        .where(*_failed_within(now, within))
        .order_by(Job.finished_at.desc(), Job.id.desc())
        .limit(limit)
    )
    return [
        TroubledJob(
            r.id,
            r.kind,
            r.incident_id,
            dict(r.payload),
            r.attempts,
            error_line(r.last_error),
            r.finished_at or r.run_at,
        )
        for r in rows
    ]


def failed_counts(*, session: Session, now: datetime, within: timedelta) -> dict[str, int]:
    """Per job kind: how many jobs failed for good within ``within`` of ``now``."""
    rows = session.execute(
        select(Job.kind, func.count()).where(*_failed_within(now, within)).group_by(Job.kind)
    ).all()
    return {kind: int(n) for kind, n in rows}


def retrying_jobs(*, session: Session, min_attempts: int, limit: int = 200) -> list[TroubledJob]:
    """Queued jobs that failed ``min_attempts`` times or more and wait for another attempt,
    the most tried first, at most ``limit`` (the queued jobs only: ix_jobs_status_run_at)."""
    rows = session.scalars(
        select(Job)
        .where(Job.status == "queued", Job.attempts >= min_attempts, Job.last_error.is_not(None))
        .order_by(Job.attempts.desc(), Job.id)
        .limit(limit)
    )
    return [
        TroubledJob(
            r.id,
            r.kind,
            r.incident_id,
            dict(r.payload),
            r.attempts,
            error_line(r.last_error),
            r.run_at,
        )
        for r in rows
    ]


def retrying_counts(*, session: Session, min_attempts: int) -> dict[str, int]:
    """Per job kind: queued jobs that failed ``min_attempts`` times or more."""
    rows = session.execute(
        select(Job.kind, func.count())
        .where(Job.status == "queued", Job.attempts >= min_attempts, Job.last_error.is_not(None))
        .group_by(Job.kind)
    ).all()
    return {kind: int(n) for kind, n in rows}
