"""The worker: claims due jobs under a lease, runs their handlers, records the outcome.

``incident serve`` runs one in a thread beside the web app; ``incident worker`` runs one alone.
Tests drive it with :meth:`Worker.run_due` and a frozen clock.
"""

from __future__ import annotations

import os
import socket
import threading
import traceback
from datetime import timedelta

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session

from incident import jobs
from incident.clock import Clock
from incident.db import Database
from incident.handlers import HANDLERS, Context, Handler
from incident.logs import get_logger
from incident.models import new_id

log = get_logger(__name__)


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
        handlers: dict[str, Handler] | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.ctx = ctx
        self.clock = clock
        self.handlers = handlers or HANDLERS
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-8:]}"
        self.lease = timedelta(seconds=ctx.settings.worker_lease_seconds)
        self.max_attempts = ctx.settings.job_max_attempts
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round -------------------------------------------------------------------------
    def run_due(self, limit: int = 100) -> int:
        """Claim and run the jobs due now; return how many ran."""
        now = self.clock.now()
        with self.db.transaction() as session:
            claimed = jobs.claim(session, owner=self.owner, now=now, lease=self.lease, limit=limit)
        for job in claimed:
            self._run(job)
        return len(claimed)

    def drain(self, max_rounds: int = 1000) -> int:
        """Run due jobs until none is due (for tests and simulations)."""
        total = 0
        for _ in range(max_rounds):
            ran = self.run_due()
            if not ran:
                break
            total += ran
        return total

    def _run(self, job: jobs.Claimed) -> None:
        handler = self.handlers.get(job.kind)
        bound = structlog.contextvars.bound_contextvars(
            job_id=job.id, job_kind=job.kind, incident_id=job.incident_id
        )
        with bound:
            now = self.clock.now()
            try:
                if handler is None:
                    raise LookupError(f"no handler for job kind {job.kind!r}")
                with self.db.transaction() as session:
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
                    log.error("job_failed", attempts=job.attempts, error=error)
                else:
                    jobs.retry(
                        session,
                        job.id,
                        owner=self.owner,
                        at=now + retry_delay(job.attempts),
                        error=error,
                    )
                    log.warning("job_retry", attempts=job.attempts, error=error)
        except jobs.LeaseLost:
            log.warning("job_lease_lost")

    # -- the loop --------------------------------------------------------------------------
    def seconds_until_next(self) -> float:
        poll = self.ctx.settings.worker_poll_seconds
        with self.db.reading() as session:
            nxt = jobs.next_run_at(session)
        if nxt is None:
            return poll
        return max(0.0, min(poll, (nxt - self.clock.now()).total_seconds()))

    def run_forever(self) -> None:
        log.info("worker_started", owner=self.owner)
        while not self._stop.is_set():
            try:
                ran = self.run_due()
                if ran:
                    continue
                self.wake.wait(self.seconds_until_next())
                self.wake.clear()
            except Exception as exc:  # database away: log, wait, carry on
                log.error("worker_round_failed", error=str(exc))
                self._stop.wait(self.ctx.settings.worker_poll_seconds)
        log.info("worker_stopped", owner=self.owner)

    def start(self) -> None:
        """Run the loop in a daemon thread; wake it whenever a job is enqueued here."""
        event.listen(Session, "after_commit", self._after_commit)
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
        if event.contains(Session, "after_commit", self._after_commit):
            event.remove(Session, "after_commit", self._after_commit)
