"""The worker: claims due jobs under a lease, runs their handlers, records the outcome.

Jobs that only change the database run one at a time, each in its own transaction with its
completion. ``delivery.send`` jobs are handed to the :class:`~incident.channels.Sender`, which
sends many at once off this thread; their outcomes come back and are recorded in batches, one
transaction per batch, so durable delivery costs little more than sending.

What keeps a page to one send when workers die, freeze or stop (#14):

- A heartbeat thread records every ``worker_heartbeat_seconds`` that this worker is alive and
  extends the leases of its sends under way. A worker silent for ``worker_takeover_seconds``
  (or marked stopped) is dead to the others: they take its jobs over at once.
- Every attempt is fenced: just before it, the sender asks whether this worker still holds
  the job (its lease has not run out, and its last heartbeat is recent enough that nobody
  can have declared it dead). A process frozen past that (SIGSTOP, a VM pause) wakes up and
  hands its sends back instead of sending them again.
- A receiver asking to wait longer than the send may stay in flight defers the delivery:
  its job is released and rescheduled for that time.
- A stop (SIGTERM) claims nothing more, hands back the sends that wait, lets attempts under
  way finish for up to ``worker_stop_seconds``, records everything, and says it stopped.
- Jobs whose run failed because the database went away are handed back as soon as it
  answers again, not when their lease runs out.

``incident serve`` runs one in a thread beside the web app; ``incident worker`` runs one alone.
Tests drive it with :meth:`Worker.drain` and a frozen clock.
"""

from __future__ import annotations

import functools
import os
import queue
import socket
import threading
import time
import traceback
from datetime import datetime, timedelta

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session

from incident import failures, jobs, operations
from incident.channels import Outcome, Sender
from incident.clock import Clock
from incident.db import Database, database_unavailable
from incident.delivery import SEND_JOB
from incident.handlers import HANDLERS, Context, Handler
from incident.logs import get_logger
from incident.models import new_id
from incident.privacy import mask_error
from incident.worker_sends import Sends

log = get_logger(__name__)
ENGINE_BATCH = 50  # engine jobs claimed per round (they run one by one, between sends)
LOW_LANE_TICK = 0.1  # seconds: how often due notices, broadcasts and drills wake the loop
OUTAGE_BACKOFF_SECONDS = 5.0


def outage_backoff(failures: int, poll_seconds: float) -> float:
    """Seconds to wait after ``failures`` failed rounds in a row: doubling from the poll
    interval, at most OUTAGE_BACKOFF_SECONDS, so the worker is back soon after the database."""
    doubled = poll_seconds * 2.0 ** min(failures - 1, 16)
    return min(doubled, max(poll_seconds, OUTAGE_BACKOFF_SECONDS))


def retry_delay(attempts: int) -> timedelta:
    """Back off 2, 4, 8 ... seconds, at most five minutes."""
    return timedelta(seconds=min(2**attempts, 300))


class Worker(Sends):
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
        settings = ctx.settings
        self.lease = timedelta(seconds=settings.worker_lease_seconds)
        self.takeover = timedelta(seconds=settings.worker_takeover_seconds)
        self.max_attempts = settings.job_max_attempts
        self.in_flight_limit = max(1, settings.delivery_in_flight)
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._stopping = False  # no attempt may start (set when a stop begins)
        self._thread: threading.Thread | None = None
        self._beater: threading.Thread | None = None
        self._flight = threading.Lock()  # guards _in_flight and _lease_until
        self._in_flight: dict[int, jobs.Claimed] = {}  # delivery id -> its send job
        self._lease_until: dict[int, datetime] = {}  # delivery id -> its job's lease, as known
        # None until this worker's first heartbeat: others cannot declare it dead before that
        self._alive_until: datetime | None = None
        self._orphans: dict[int, datetime] = {}  # jobs to hand back once the database answers
        self._claimed = 0  # jobs the last round claimed
        self._low_full = False  # the low lanes had no room in the last round
        self._jobs_done = 0
        self._started_at = clock.now()
        self._listener: threading.Thread | None = None
        self._finished: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._unrecorded: dict[int, int] = {}

    # -- one round -------------------------------------------------------------------------
    def run_due(self, limit: int = 500) -> int:
        """Record finished sends, then claim and start the jobs due now; return how many."""
        self._hand_back_orphans()
        recorded = self.record_finished()
        if self._alive_until is not None and self.clock.now() >= self._alive_until:
            self.heartbeat()  # the fence would refuse every send: prove we are alive first
        high_room, low_room = self._rooms()
        now = self.clock.now()
        with self.db.transaction() as session:
            claim = functools.partial(
                jobs.claim,
                session,
                owner=self.owner,
                now=now,
                lease=self.lease,
                stale_after=self.takeover,
            )
            # The engine's own jobs never wait behind sends; then pages; then notices,
            # broadcasts and drills in what room is left for them.
            engine = (jobs.Lane.ENGINE, jobs.Lane.ENGINE)
            claimed = claim(limit=ENGINE_BATCH, lanes=engine)
            if high_room > 0:
                claimed += claim(
                    limit=min(limit, high_room), lanes=(jobs.Lane.FIRST, jobs.Lane.LIVE)
                )
            taken = sum(1 for job in claimed if job.kind == SEND_JOB)
            low_room = min(low_room, self.in_flight_limit - len(self._in_flight) - taken)
            if low_room > 0:
                claimed += claim(limit=min(limit, low_room), lanes=jobs.LOW_RANGE)
        sends = [job for job in claimed if job.kind == SEND_JOB]
        others = [job for job in claimed if job.kind != SEND_JOB]
        try:
            if sends:
                self._start_sends(sends, lease_until=now + self.lease)
            for job in others:
                self._run(job)
        except Exception:
            # The database went away mid-round: what was claimed and not sending goes back
            # as soon as it answers, not when the lease runs out (handing back a job that
            # finished meanwhile changes nothing: only running jobs still ours go back).
            with self._flight:
                started = {job.id for job in self._in_flight.values()}
            for job in claimed:
                if job.id not in started:
                    self._orphans.setdefault(job.id, job.run_at)
            raise
        self._jobs_done += len(claimed) - len(sends) + recorded
        self._claimed = len(claimed)
        self._low_full = low_room <= 0
        return len(claimed) + recorded

    def _rooms(self) -> tuple[int, int]:
        """How many sends the high lanes (pages) and the low lanes (notices, broadcasts,
        drills) may start now. The low lanes together never hold more than three quarters of
        the in-flight budget, so a new incident's pages always find room beside a broadcast
        draining through a slow gateway; pages leave a tenth to the low lanes, so a
        broadcast keeps progressing however many pages there are."""
        limit = self.in_flight_limit
        with self._flight:
            low_now = sum(1 for j in self._in_flight.values() if j.priority >= jobs.Lane.PUBLIC)
            high_now = len(self._in_flight) - low_now
        low_cap = max(1, limit - max(1, limit // 4))
        reserve = max(1, limit // 10)
        high_room = max(0, limit - reserve - high_now - max(0, low_now - reserve))
        low_room = max(0, min(low_cap - low_now, limit - high_now - low_now))
        return high_room, low_room

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
                if database_unavailable(exc):
                    # Not the job's fault: hand it back as soon as the database answers.
                    self._orphans[job.id] = job.run_at
                    raise
                self._record_failure(job, exc)

    def _record_failure(self, job: jobs.Claimed, exc: Exception) -> None:
        # Stored and logged masked: an exception's text may quote a phone number.
        error = mask_error("".join(traceback.format_exception_only(exc)).strip())
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                if job.attempts >= self.max_attempts:
                    jobs.fail(session, job.id, owner=self.owner, now=now, error=error)
                    failures.on_job_failed(
                        job, error, session=session, now=now, policy=self.ctx.policy
                    )
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
        except Exception as failure:
            if database_unavailable(failure):
                self._orphans[job.id] = job.run_at
            raise

    def _hand_back_orphans(self) -> None:
        """Jobs whose run the database cut short: queue them again now it answers."""
        if not self._orphans:
            return
        orphans = dict(self._orphans)
        with self.db.transaction() as session:
            back = jobs.release(session, orphans, owner=self.owner)
        for job_id in orphans:
            self._orphans.pop(job_id, None)
        if back:
            log.info("jobs_handed_back", count=len(back), reason="database_outage")

    # -- the loop --------------------------------------------------------------------------
    def seconds_until_next(self) -> float:
        """How long to sleep: until the next job this worker may take is due, at most the
        poll interval. Jobs of the low lanes do not count while they have no room (a send
        finishing wakes the loop), and wake it at most every LOW_LANE_TICK (a paced
        broadcast falls due message by message: claim them a few at a time)."""
        poll = self.ctx.settings.worker_poll_seconds
        now = self.clock.now()
        with self.db.reading() as session:
            high = jobs.next_run_at(session, (jobs.Lane.ENGINE, jobs.Lane.LIVE))
            low = None if self._low_full else jobs.next_run_at(session, jobs.LOW_RANGE)
        waits = [poll]
        if high is not None:
            waits.append((high - now).total_seconds())
        if low is not None:
            waits.append(max(LOW_LANE_TICK, (low - now).total_seconds()))
        return max(0.0, min(waits))

    def heartbeat(self, *, stopped: bool = False) -> None:
        """Record that this worker is alive (or, at the end, that it stopped), and extend
        the leases of its sends under way."""
        with self._flight:
            flying = {job.id: d for d, job in self._in_flight.items()}
        with self.db.transaction() as session:
            session.connection()  # take the write lock first: "now" is after any wait
            now = self.clock.now()
            operations.beat(
                self.owner,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=self._started_at,
                jobs_done=self._jobs_done,
                session=session,
                now=now,
                stopped=stopped,
            )
            kept = jobs.extend(session, sorted(flying), owner=self.owner, until=now + self.lease)
            if self.sender is not None and self.sender.limits:
                # Gateways' rates are shared by the workers alive now.
                self.sender.limits.set_share(
                    operations.alive_workers(session=session, now=now, within=self.takeover)
                )
        with self._flight:
            for job_id, delivery_id in flying.items():
                if delivery_id in self._lease_until:
                    self._lease_until[delivery_id] = now + self.lease if job_id in kept else now
        # Others may take our jobs once ``beat_at`` is ``takeover`` old: stop sending before.
        margin = min(timedelta(seconds=0.5), self.takeover / 4)
        self._alive_until = now + self.takeover - margin

    def _beat_forever(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.heartbeat()
                failures = 0
            except Exception as exc:  # the database is away; the loop logs that too
                failures += 1
                if failures & (failures - 1) == 0:
                    log.warning("heartbeat_failed", error_type=type(exc).__name__)
            self._stop.wait(self.ctx.settings.worker_heartbeat_seconds)

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
                self.run_due()
                if failures:
                    log.warning("worker_resumed", failed_rounds=failures)
                    failures = 0
                # Straight on while there is work this worker may take; a round that only
                # recorded outcomes waits (each finished send wakes the loop).
                if self._claimed and len(self._in_flight) < self.in_flight_limit:
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
        log.info("worker_stopping", owner=self.owner, in_flight=len(self._in_flight))

    def start(self) -> None:
        """Run the loop in a daemon thread; wake it whenever a job is enqueued here."""
        event.listen(Session, "after_commit", self._after_commit)
        try:
            self.heartbeat()
        except Exception as exc:  # the loop retries, backing off
            log.warning("heartbeat_failed", error_type=type(exc).__name__)
        self._beater = threading.Thread(
            target=self._beat_forever, name="incident-heartbeat", daemon=True
        )
        self._beater.start()
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

    def stop(self, timeout: float | None = None) -> None:
        """Stop within a bound: claim nothing more, hand back the sends that have not begun
        (or wait for a retry), let attempts under way finish for up to
        ``worker_stop_seconds``, record every outcome, then say this worker stopped, so any
        job still held is taken over at once by another worker."""
        bound = self.ctx.settings.worker_stop_seconds if timeout is None else timeout
        deadline = time.monotonic() + bound
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
        if self._beater is not None:
            self._beater.join(5)
        self._stopping = True
        if self.sender is not None:
            self.sender.stop_sending()
        self._finish_in_flight(deadline)
        if self.sender is not None:
            self.sender.close()  # cancels what is still under way: left to its lease
        try:
            self._finish_in_flight(time.monotonic() + 2)
            self.heartbeat(stopped=True)
        except Exception as exc:  # the database may be gone; stopping goes on
            log.warning("final_heartbeat_failed", error_type=type(exc).__name__)
        if self._listener is not None:
            self._listener.join(5)
        if event.contains(Session, "after_commit", self._after_commit):
            event.remove(Session, "after_commit", self._after_commit)
        log.info("worker_stopped", owner=self.owner, left_in_flight=len(self._in_flight))

    def _finish_in_flight(self, deadline: float) -> None:
        """Record outcomes as sends finish, until none is in flight or the deadline."""
        while True:
            try:
                self._hand_back_orphans()
                while self.record_finished():
                    pass
            except Exception as exc:
                log.warning("stop_record_failed", error_type=type(exc).__name__)
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.2)
                continue
            if not self._in_flight or time.monotonic() >= deadline:
                return
            self.wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            self.wake.clear()
