"""Operations facts: worker heartbeats, late jobs, queue depth, delivery and page counts —
for /readyz, /metrics and the auditor that watches the workers from another process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from incident.models import Delivery, Job, Page, WorkerHeartbeat


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


@dataclass(frozen=True)
class WorkerState:
    owner: str
    host: str
    pid: int
    age_s: float
    jobs_done: int
    stopped: bool


def workers(
    *, session: Session, now: datetime, within: timedelta = timedelta(hours=1)
) -> list[WorkerState]:
    """Workers seen within ``within`` (stopped ones included, marked)."""
    rows = session.scalars(
        select(WorkerHeartbeat)
        .where(WorkerHeartbeat.beat_at > now - within)
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
        )
        for r in rows
    ]


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
