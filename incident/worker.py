"""The worker: claims due jobs under a lease, runs their handlers, records the outcome.

Jobs that only change the database run one at a time, each in its own transaction with its
completion. ``delivery.send`` jobs are handed to the :class:`~incident.channels.Sender`, which
sends many at once off this thread; their outcomes come back and are recorded in batches, one
transaction per batch, so durable delivery costs little more than sending.

``incident serve`` runs one in a thread beside the web app; ``incident worker`` runs one alone.
Tests drive it with :meth:`Worker.drain` and a frozen clock.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
import traceback
from datetime import timedelta

import structlog
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from incident import jobs, operations, passengers
from incident.channels import Message, Outcome, Sender
from incident.clock import Clock
from incident.db import Database, database_unavailable
from incident.delivery import SEND_JOB
from incident.handlers import HANDLERS, Context, Handler, record_sent
from incident.logs import get_logger
from incident.models import Delivery, new_id

log = get_logger(__name__)
RECORD_BATCH = 200
OUTAGE_BACKOFF_SECONDS = 5.0


def outage_backoff(failures: int, poll_seconds: float) -> float:
    """Seconds to wait after ``failures`` failed rounds in a row: doubling from the poll
    interval, at most OUTAGE_BACKOFF_SECONDS, so the worker is back soon after the database."""
    doubled = poll_seconds * 2.0 ** min(failures - 1, 16)
    return min(doubled, max(poll_seconds, OUTAGE_BACKOFF_SECONDS))


def retry_delay(attempts: int) -> timedelta:
    """Back off 2, 4, 8 ... seconds, at most five minutes."""
    return timedelta(seconds=min(2**attempts, 300))


class Worker:
    def __init__(
        self,
        db: Database,
        ctx: Context,
        clock: Clock,
        *,
        sender: Sender | None = None,
        handlers: dict[str, Handler] | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.ctx = ctx
        self.clock = clock
        self.sender = sender
        self.handlers = handlers or HANDLERS
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-8:]}"
        self.lease = timedelta(seconds=ctx.settings.worker_lease_seconds)
        self.max_attempts = ctx.settings.job_max_attempts
        self.in_flight_limit = max(1, ctx.settings.delivery_in_flight)
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._in_flight: dict[int, jobs.Claimed] = {}  # delivery id -> its send job
        self._jobs_done = 0
        self._started_at = clock.now()
        self._last_beat = 0.0
        self._listener: threading.Thread | None = None
        self._finished: queue.SimpleQueue[Outcome] = queue.SimpleQueue()

    # -- one round -------------------------------------------------------------------------
    def run_due(self, limit: int = 500) -> int:
        """Record finished sends, then claim and start the jobs due now; return how many."""
        recorded = self.record_finished()
        room = self.in_flight_limit - len(self._in_flight)
        now = self.clock.now()
        with self.db.transaction() as session:
            claimed = jobs.claim(
                session, owner=self.owner, now=now, lease=self.lease, limit=max(1, min(limit, room))
            )
        sends = [job for job in claimed if job.kind == SEND_JOB]
        if sends:
            self._start_sends(sends)
        for job in claimed:
            if job.kind != SEND_JOB:
                self._run(job)
        self._jobs_done += len(claimed) - len(sends) + recorded
        return len(claimed) + recorded

    def drain(self, max_rounds: int = 10_000) -> int:
        """Run due jobs, and wait for their sends, until nothing is due (tests, simulation)."""
        total = 0
        for _ in range(max_rounds):
            ran = self.run_due()
            total += ran
            if self._in_flight:
                self.wake.wait(60)  # a send finished (set by _on_sent)
                self.wake.clear()
                continue
            if not ran and self._finished.empty():
                break
        return total

    def _run(self, job: jobs.Claimed) -> None:
        handler = self.handlers.get(job.kind)
        with structlog.contextvars.bound_contextvars(
            job_id=job.id, job_kind=job.kind, incident_id=job.incident_id
        ):
            try:
                if handler is None:
                    raise LookupError(f"no handler for job kind {job.kind!r}")
                with self.db.transaction() as session:
                    session.connection()  # take the write lock first: "now" is after any wait
                    now = self.clock.now()
                    handler(job, session, now, self.ctx)
                    jobs.complete(session, job.id, owner=self.owner, now=self.clock.now())
            except jobs.LeaseLost:
                log.warning("job_lease_lost")
            except Exception as exc:  # a failing handler must never stop the worker
                self._record_failure(job, exc)

    def _record_failure(self, job: jobs.Claimed, exc: Exception) -> None:
        error = "".join(traceback.format_exception_only(exc)).strip()
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                if job.attempts >= self.max_attempts:
                    jobs.fail(session, job.id, owner=self.owner, now=now, error=error)
                    log.error("job_failed", job_id=job.id, attempts=job.attempts, error=error)
                else:
                    jobs.retry(
                        session,
                        job.id,
                        owner=self.owner,
                        at=now + retry_delay(job.attempts),
                        error=error,
                    )
                    log.warning("job_retry", job_id=job.id, attempts=job.attempts, error=error)
        except jobs.LeaseLost:
            log.warning("job_lease_lost", job_id=job.id)

    # -- sending ---------------------------------------------------------------------------
    def _start_sends(self, claimed: list[jobs.Claimed]) -> None:
        by_delivery = {int(job.payload["delivery_id"]): job for job in claimed}
        with self.db.reading() as session:
            rows = session.execute(
                select(
                    Delivery.id,
                    Delivery.status,
                    Delivery.address,
                    Delivery.subject,
                    Delivery.body,
                    Delivery.idempotency_key,
                    Delivery.purpose,
                ).where(Delivery.id.in_(by_delivery))
            ).all()
        skip: list[jobs.Claimed] = []
        found = {row.id for row in rows}
        skip.extend(job for d, job in by_delivery.items() if d not in found)
        messages = []
        for row in rows:
            job = by_delivery[row.id]
            if row.id in self._in_flight:
                # Its lease ran out while the send was still retrying and this worker claimed
                # the job again: the send under way will record it; do not send it twice.
                self._in_flight[row.id] = job
                continue
            if row.status != "queued" or self.sender is None:
                skip.append(job)  # already recorded, held back, or a simulation: send nothing
                continue
            address, values = self._address_for_sending(row.purpose, row.address)
            messages.append(
                Message(row.id, address, row.subject, row.body, row.idempotency_key, values)
            )
            self._in_flight[row.id] = job
        if messages and self.sender is not None:
            self.sender.submit_batch(messages, self._on_sent)
        if skip:
            with self.db.transaction() as session:
                ours = jobs.still_ours(session, [j.id for j in skip], owner=self.owner)
                jobs.complete_many(session, sorted(ours), owner=self.owner, now=self.clock.now())

    def _address_for_sending(self, purpose: str, stored: str) -> tuple[str, dict[str, str] | None]:
        """Passenger broadcasts (#5) store their address sealed: open it just before sending,
        in memory only (see incident.passengers.broadcasts)."""
        if purpose != "broadcast":
            return stored, None
        return passengers.sending_target(stored, self.ctx.settings)

    def _on_sent(self, outcome: Outcome) -> None:
        """Called on the sender's loop as each send finishes: hand it to the worker thread."""
        self._finished.put(outcome)
        self.wake.set()

    def record_finished(self) -> int:
        """Record the outcomes of finished sends, many per transaction."""
        outcomes: list[Outcome] = []
        while len(outcomes) < RECORD_BATCH:
            try:
                outcomes.append(self._finished.get_nowait())
            except queue.Empty:
                break
        if not outcomes:
            return 0
        flying = self._in_flight
        done = [(flying[o.delivery_id], o) for o in outcomes if o.delivery_id in flying]
        try:
            with self.db.transaction() as session:
                session.connection()  # take the write lock first: "now" is after any wait
                now = self.clock.now()
                ours = jobs.still_ours(session, [job.id for job, _ in done], owner=self.owner)
                lost = [job.id for job, _ in done if job.id not in ours]
                if lost:
                    log.warning("job_lease_lost", job_ids=lost)
                with session.no_autoflush:
                    # Outcomes of jobs whose lease ran out are recorded too (a delivery is
                    # recorded once; whoever holds the job now sees it sent and sends nothing).
                    record_sent(outcomes, session=session, now=now, ctx=self.ctx)
                jobs.complete_many(session, sorted(ours), owner=self.owner, now=now)
        except Exception as exc:
            if database_unavailable(exc):  # keep them: recorded once the database is back
                for outcome in outcomes:
                    self._finished.put(outcome)
                raise
            cause = getattr(exc, "orig", None) or exc
            log.error("record_failed", error_type=type(cause).__name__, count=len(done))
        for outcome in outcomes:  # recorded, or left to their lease after a failure
            self._in_flight.pop(outcome.delivery_id, None)
        return len(done)

    # -- the loop --------------------------------------------------------------------------
    def seconds_until_next(self) -> float:
        poll = self.ctx.settings.worker_poll_seconds
        with self.db.reading() as session:
            nxt = jobs.next_run_at(session)
        if nxt is None:
            return poll
        return max(0.0, min(poll, (nxt - self.clock.now()).total_seconds()))

    def heartbeat(self, *, stopped: bool = False) -> None:
        """Record that this worker is alive (or, at the end, that it stopped)."""
        with self.db.transaction() as session:
            operations.beat(
                self.owner,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=self._started_at,
                jobs_done=self._jobs_done,
                session=session,
                now=self.clock.now(),
                stopped=stopped,
            )

    def _maybe_beat(self) -> None:
        if time.monotonic() - self._last_beat >= self.ctx.settings.worker_heartbeat_seconds:
            self._last_beat = time.monotonic()
            self.heartbeat()

    def _listen(self) -> None:
        """PostgreSQL: wake the loop on NOTIFY from any process that enqueued jobs."""
        import psycopg

        url = self.db.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {jobs.NOTIFY_CHANNEL}")
                    if failures:
                        log.info("listen_resumed", failed_tries=failures)
                        failures = 0
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake.set()
            except Exception as exc:  # polling carries on; try again, backing off
                failures += 1
                if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th ... failure
                    log.warning(
                        "listen_failed", error_type=type(exc).__name__, failed_tries=failures
                    )
                self._stop.wait(outage_backoff(failures, 1.0))

    def run_forever(self) -> None:
        log.info("worker_started", owner=self.owner)
        failures = 0  # rounds failed in a row: the database is away (locked, down, restarting)
        while not self._stop.is_set():
            try:
                self._maybe_beat()
                ran = self.run_due()
                if failures:
                    log.warning("worker_resumed", failed_rounds=failures)
                    failures = 0
                if ran and len(self._in_flight) < self.in_flight_limit:
                    continue
                self.wake.wait(self.seconds_until_next())
                self.wake.clear()
            except Exception as exc:  # log the 1st, 2nd, 4th, 8th ... failure; back off, carry on
                failures += 1
                if failures & (failures - 1) == 0:
                    cause = getattr(exc, "orig", None) or exc  # not the SQL and its parameters
                    log.error(
                        "worker_round_failed",
                        error_type=type(cause).__name__,
                        error=(str(cause).splitlines() or [""])[0][:300],
                        failed_rounds=failures,
                    )
                self._stop.wait(outage_backoff(failures, self.ctx.settings.worker_poll_seconds))
        log.info("worker_stopped", owner=self.owner)

    def start(self) -> None:
        """Run the loop in a daemon thread; wake it whenever a job is enqueued here."""
        event.listen(Session, "after_commit", self._after_commit)
        if self.db.engine.dialect.name == "postgresql" and self.ctx.settings.worker_listen:
            self._listener = threading.Thread(
                target=self._listen, name="incident-listen", daemon=True
            )
            self._listener.start()
        self._thread = threading.Thread(
            target=self.run_forever, name="incident-worker", daemon=True
        )
        self._thread.start()

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(jobs.ENQUEUED_FLAG, False):
            self.wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            try:
                self.heartbeat(stopped=True)
            except Exception as exc:  # the database may be gone; stopping goes on
                log.warning("final_heartbeat_failed", error=str(exc))
        if self._listener is not None:
            self._listener.join(timeout)
        if event.contains(Session, "after_commit", self._after_commit):
            event.remove(Session, "after_commit", self._after_commit)
        if self.sender is not None:
            self.sender.close()
