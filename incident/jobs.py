"""The durable job queue: enqueue with a unique key, claim under a lease, complete or retry.

PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``; SQLite has one writer at a time
(``BEGIN IMMEDIATE``), which makes the same claim safe there.

Every job runs in a :class:`Lane`: the engine's own jobs first, then sends by purpose (the
first page of a live incident and escalations before other pages, pages before public
notices, notices before passenger broadcasts, drills last). Workers claim a lane range
oldest first within each lane (see incident.worker for the capacity each range keeps).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, event, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from incident.models import Job, WorkerHeartbeat

ENQUEUED_FLAG = "incident.jobs_enqueued"
NOTIFY_CHANNEL = "incident_jobs"


@event.listens_for(Session, "before_commit")
def _notify_workers(session: Session) -> None:
    """On PostgreSQL, wake listening workers when this transaction commits new jobs
    (NOTIFY is delivered at commit; polling remains the fallback)."""
    if session.info.get(ENQUEUED_FLAG) and session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


class Lane(IntEnum):
    """Which work goes first (lower first)."""

    ENGINE = 0  # stage firings, deadlines, evaluations: never behind a send
    FIRST = 1  # the first pages of a live incident, escalations, duty alerts
    LIVE = 2  # other live pages, contact tests
    PUBLIC = 3  # official notices on public channels
    PASSENGERS = 4  # broadcasts and reminders to passengers (and preparing them)
    DRILL = 5  # drills, and housekeeping nobody waits for


LOW_RANGE = (Lane.PUBLIC, Lane.DRILL)  # notices, broadcasts, drills: a capped share


class LeaseLost(Exception):
    """The job's lease expired and another worker took it: this run's effects roll back."""


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    incident_id: str | None
    run_at: datetime
    attempts: int
    priority: int = Lane.ENGINE


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    key: str,
    run_at: datetime,
    incident_id: str | None = None,
    lane: Lane = Lane.ENGINE,
) -> bool:
    """Add a job unless one with ``key`` already exists; return whether it was added."""
    values = {
        "kind": kind,
        "key": key,
        "payload": payload,
        "incident_id": incident_id,
        "status": "queued",
        "run_at": run_at,
        "attempts": 0,
        "created_at": run_at,
        "priority": int(lane),
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Job).values(**values).on_conflict_do_nothing(index_elements=["key"])
    added = bool(session.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]
    if added:
        session.info[ENQUEUED_FLAG] = True
    return added


@dataclass(frozen=True)
class NewJob:
    kind: str
    payload: dict[str, Any]
    key: str
    run_at: datetime
    incident_id: str | None = None
    lane: Lane = Lane.ENGINE


def enqueue_many(session: Session, new: list[NewJob]) -> None:
    """Add many jobs in one statement; keys that exist already are skipped."""
    if not new:
        return
    rows = [
        {
            "kind": j.kind,
            "key": j.key,
            "payload": j.payload,
            "incident_id": j.incident_id,
            "status": "queued",
            "run_at": j.run_at,
            "attempts": 0,
            "created_at": j.run_at,
            "priority": int(j.lane),
        }
        for j in new
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Core on the table, not the ORM's bulk path (a broadcast enqueues thousands at once)
    session.connection().execute(
        insert(cast(Table, Job.__table__)).on_conflict_do_nothing(index_elements=["key"]), rows
    )
    session.info[ENQUEUED_FLAG] = True


def _due(now: datetime, stale_after: timedelta | None) -> Any:
    due = [
        and_(Job.status == "queued", Job.run_at <= now),
        and_(Job.status == "running", Job.lease_until < now),
    ]
    if stale_after is not None:
        # A worker known dead (silent past ``stale_after``, or stopped) holds nothing: its
        # jobs are taken over now, not when their lease runs out.
        dead = select(WorkerHeartbeat.owner).where(
            or_(
                WorkerHeartbeat.beat_at < now - stale_after, WorkerHeartbeat.stopped_at.is_not(None)
            )
        )
        due.append(and_(Job.status == "running", Job.lease_owner.in_(dead)))
    return or_(*due)


def claim(
    session: Session,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int = 50,
    stale_after: timedelta | None = None,
    lanes: tuple[Lane, Lane] = (Lane.ENGINE, Lane.DRILL),
) -> list[Claimed]:
    """Take up to ``limit`` due jobs (or jobs whose lease expired, or whose worker is known
    dead) of the ``lanes`` range, lane by lane, oldest first, in one ``UPDATE ... RETURNING``
    (PostgreSQL: the ids are picked ``FOR UPDATE SKIP LOCKED``)."""
    picked = (
        select(Job.id)
        .where(_due(now, stale_after), Job.priority.between(int(lanes[0]), int(lanes[1])))
        .order_by(Job.priority, Job.run_at, Job.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    rows = session.execute(
        update(Job)
        .where(Job.id.in_(picked.scalar_subquery()))
        .values(
            status="running", lease_owner=owner, lease_until=now + lease, attempts=Job.attempts + 1
        )
        .returning(
            Job.id,
            Job.kind,
            Job.key,
            Job.payload,
            Job.incident_id,
            Job.run_at,
            Job.attempts,
            Job.priority,
        ),
        execution_options={"synchronize_session": False},
    ).all()
    claimed = [
        Claimed(
            r.id, r.kind, r.key, dict(r.payload), r.incident_id, r.run_at, r.attempts, r.priority
        )
        for r in rows
    ]
    return sorted(claimed, key=lambda c: (c.priority, c.run_at, c.id))


def extend(session: Session, job_ids: list[int], *, owner: str, until: datetime) -> set[int]:
    """Extend the lease of claimed jobs still ours (sends under way); return those."""
    if not job_ids:
        return set()
    rows = session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status == "running", Job.lease_owner == owner)
        .values(lease_until=until)
        .returning(Job.id),
        execution_options={"synchronize_session": False},
    )
    return {int(r) for r in rows.scalars()}


def release(
    session: Session, runs: dict[int, datetime], *, owner: str, error: str | None = None
) -> set[int]:
    """Hand claimed jobs back to the queue, each to run again at its time; only those still
    ours (return them). The claim already counted the attempt."""
    if not runs:
        return set()
    ours = still_ours(session, list(runs), owner=owner)
    rows = [{"b_id": job_id, "b_run_at": runs[job_id]} for job_id in sorted(ours)]
    if rows:
        values: dict[str, Any] = {
            "status": "queued",
            "run_at": bindparam("b_run_at"),
            "lease_owner": None,
            "lease_until": None,
        }
        if error is not None:
            values["last_error"] = error[:2000]
        session.connection().execute(
            update(cast(Table, Job.__table__))
            .where(Job.__table__.c.id == bindparam("b_id"))
            .values(**values),
            rows,
        )
    return ours


def _owned(session: Session, job_id: int, owner: str, **values: Any) -> None:
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.lease_owner == owner)
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(job_id)


def complete(session: Session, job_id: int, *, owner: str, now: datetime) -> None:
    """Mark a claimed job done; raises LeaseLost if it is no longer ours."""
    _owned(
        session, job_id, owner, status="done", finished_at=now, lease_owner=None, lease_until=None
    )


def retry(session: Session, job_id: int, *, owner: str, at: datetime, error: str) -> None:
    _owned(
        session,
        job_id,
        owner,
        status="queued",
        run_at=at,
        last_error=error[:2000],
        lease_owner=None,
        lease_until=None,
    )


def fail(session: Session, job_id: int, *, owner: str, now: datetime, error: str) -> None:
    _owned(
        session,
        job_id,
        owner,
        status="failed",
        finished_at=now,
        last_error=error[:2000],
        lease_owner=None,
        lease_until=None,
    )


def cancel_for_incident(
    session: Session, incident_id: str, *, kinds: tuple[str, ...], now: datetime
) -> int:
    """Cancel the incident's queued jobs of the given kinds; return how many."""
    result = session.execute(
        update(Job)
        .where(Job.incident_id == incident_id, Job.status == "queued", Job.kind.in_(kinds))
        .values(status="cancelled", finished_at=now),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def cancel_keys(session: Session, keys: list[str], *, now: datetime) -> int:
    """Cancel the queued jobs with these keys; return how many."""
    if not keys:
        return 0
    result = session.execute(
        update(Job)
        .where(Job.key.in_(keys), Job.status == "queued")
        .values(status="cancelled", finished_at=now),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def complete_many(session: Session, job_ids: list[int], *, owner: str, now: datetime) -> None:
    """Mark claimed jobs done in one statement (the caller checked they are still ours)."""
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.status == "running", Job.lease_owner == owner)
            .values(status="done", finished_at=now, lease_owner=None, lease_until=None),
            execution_options={"synchronize_session": False},
        )


def still_ours(session: Session, job_ids: list[int], *, owner: str) -> set[int]:
    """Which of these claimed jobs this worker still holds."""
    if not job_ids:
        return set()
    rows = session.scalars(
        select(Job.id).where(Job.id.in_(job_ids), Job.status == "running", Job.lease_owner == owner)
    )
    return set(rows)


def next_run_at(
    session: Session, lanes: tuple[Lane, Lane] = (Lane.ENGINE, Lane.DRILL)
) -> datetime | None:
    """When the earliest queued job of the ``lanes`` range is due (expired leases count as
    due now)."""
    queued = session.scalar(
        select(func.min(Job.run_at)).where(
            Job.status == "queued", Job.priority.between(int(lanes[0]), int(lanes[1]))
        )
    )
    leased = session.scalar(select(func.min(Job.lease_until)).where(Job.status == "running"))
    times = [t for t in (queued, leased) if t is not None]
    return min(times) if times else None
