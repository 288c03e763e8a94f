"""The worker's sends: handing claimed ``delivery.send`` jobs to the Sender, the fence every
attempt asks, and recording outcomes in batches (one that cannot be recorded is given up
apart). A mixin of :class:`incident.worker.Worker`, which owns the state named below."""

from __future__ import annotations

import queue
import threading
from datetime import datetime

from sqlalchemy import select

from incident import delivery, failures, jobs, passengers
from incident.channels import Message, Outcome, Sender
from incident.clock import Clock
from incident.db import Database, database_unavailable
from incident.handlers import Context, attempts_of, record_sent
from incident.logs import get_logger
from incident.models import Delivery

log = get_logger(__name__)
RECORD_BATCH = 200
GIVE_UP_TRIES = 5  # rounds an outcome that cannot be recorded at all is kept and tried again


class Sends:
    db: Database
    ctx: Context
    clock: Clock
    sender: Sender | None
    owner: str
    max_attempts: int
    wake: threading.Event
    _stopping: bool
    _flight: threading.Lock
    _in_flight: dict[int, jobs.Claimed]  # delivery id -> its send job
    _lease_until: dict[int, datetime]  # delivery id -> its job's lease, as known
    _alive_until: datetime | None
    _finished: queue.SimpleQueue[Outcome]
    _unrecorded: dict[int, int]  # delivery id -> rounds its outcome failed to record at all

    def _start_sends(self, claimed: list[jobs.Claimed], *, lease_until: datetime) -> None:
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
                    Delivery.attempts,
                ).where(Delivery.id.in_(by_delivery))
            ).all()
        skip: list[jobs.Claimed] = []
        found = {row.id for row in rows}
        skip.extend(job for d, job in by_delivery.items() if d not in found)
        messages = []
        given_up: list[Outcome] = []
        with self._flight:
            for row in rows:
                job = by_delivery[row.id]
                if row.id in self._in_flight:
                    # Re-claimed while its send is still under way here (this worker looked
                    # dead, or the lease ran out): the send under way records it.
                    self._in_flight[row.id] = job
                    self._lease_until[row.id] = lease_until
                    continue
                if row.status != "queued" or self.sender is None:
                    skip.append(job)  # already recorded, held back, or a simulation
                    continue
                self._in_flight[row.id] = job
                self._lease_until[row.id] = lease_until
                if job.attempts > self.max_attempts:
                    # Claimed again and again without an outcome: stop, and let the page
                    # move on as after any failed delivery.
                    given_up.append(Outcome(row.id, note=f"gave up: claimed {job.attempts} times"))
                    continue
                address, values = self._address_for_sending(row.purpose, row.address)
                messages.append(
                    Message(
                        row.id,
                        address,
                        row.subject,
                        row.body,
                        row.idempotency_key,
                        values,
                        tried=row.attempts,
                        lane=job.priority,
                    )
                )
        for outcome in given_up:
            self._on_sent(outcome)
        if messages and self.sender is not None:
            self.sender.submit_batch(messages, self._on_sent, self._may_send)
        if skip:
            with self.db.transaction() as session:
                ours = jobs.still_ours(session, [j.id for j in skip], owner=self.owner)
                jobs.complete_many(session, sorted(ours), owner=self.owner, now=self.clock.now())

    def _may_send(self, message: Message) -> bool:
        """The fence, asked just before every attempt: this worker is not stopping, still
        holds the job's lease, and recorded a heartbeat recently enough that no other worker
        can have declared it dead and taken the job over."""
        if self._stopping:
            return False
        now = self.clock.now()
        lease_until = self._lease_until.get(message.delivery_id)
        if lease_until is None or now >= lease_until:
            return False
        alive_until = self._alive_until
        return alive_until is None or now < alive_until

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
        """Record the outcomes of finished sends, many per transaction. Should one outcome
        fail to record, the others are recorded one by one; the failing one is tried again
        in the next rounds and, failing GIVE_UP_TRIES times, given up as a failed delivery
        (its page moves on, its job fails with an alarm), never left to be sent again."""
        outcomes: list[Outcome] = []
        while len(outcomes) < RECORD_BATCH:
            try:
                outcomes.append(self._finished.get_nowait())
            except queue.Empty:
                break
        if not outcomes:
            return 0
        try:
            done = self._record(outcomes)
            for outcome in outcomes:
                self._unrecorded.pop(outcome.delivery_id, None)
        except Exception as exc:
            if database_unavailable(exc):  # keep them: recorded once the database is back
                for outcome in outcomes:
                    self._finished.put(outcome)
                raise
            done = 0
            for outcome in outcomes:
                try:
                    done += self._record([outcome])
                except Exception as one:
                    if database_unavailable(one):
                        self._finished.put(outcome)
                        raise
                    tries = self._unrecorded.get(outcome.delivery_id, 0) + 1
                    if tries < GIVE_UP_TRIES:
                        # Perhaps passing (a failed commit): try it again next round; its
                        # job stays ours, its lease extended by the heartbeat.
                        self._unrecorded[outcome.delivery_id] = tries
                        self._finished.put(outcome)
                        self.wake.set()
                        log.warning("record_retry", delivery_id=outcome.delivery_id, tries=tries)
                        continue
                    done += self._give_up(outcome, one)
        return done

    def _record(self, outcomes: list[Outcome]) -> int:
        """One transaction: store the outcomes, complete (or hand back) their jobs."""
        with self._flight:
            flying = dict(self._in_flight)
        done = [(flying[o.delivery_id], o) for o in outcomes if o.delivery_id in flying]
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
            finished = sorted(job.id for job, o in done if o.final and job.id in ours)
            jobs.complete_many(session, finished, owner=self.owner, now=now)
            again = {job.id: o.retry_at or now for job, o in done if not o.final}
            jobs.release(session, again, owner=self.owner)
        deferred = sum(1 for _, o in done if o.retry_at is not None)
        if deferred or len(again) > deferred:
            log.info("sends_handed_back", deferred=deferred, released=len(again) - deferred)
        self._forget(outcomes)
        return len(done)

    def _give_up(self, outcome: Outcome, exc: Exception) -> int:
        """An outcome that cannot be recorded: the delivery fails (its page moves on if that
        can be recorded) and its job fails, so it is neither lost nor sent again forever."""
        cause = getattr(exc, "orig", None) or exc
        error = f"could not record the outcome: {type(cause).__name__}"
        log.error("record_failed", delivery_id=outcome.delivery_id, error_type=type(cause).__name__)
        failed = Outcome(outcome.delivery_id, tries=outcome.tries, note=error)
        if failed.delivered:  # it arrived: keep that, and only fail the job
            failed = outcome
        with self._flight:
            job = self._in_flight.get(outcome.delivery_id)
        try:
            with self.db.transaction() as session:
                now = self.clock.now()
                with session.no_autoflush:
                    delivery.record_outcomes(
                        {failed.delivery_id: attempts_of(failed)},
                        session=session,
                        now=now,
                        notes={failed.delivery_id: error},
                    )
                if job is not None:
                    ours = jobs.still_ours(session, [job.id], owner=self.owner)
                    if ours:
                        jobs.fail(session, job.id, owner=self.owner, now=now, error=error)
                        failures.on_job_failed(
                            job, error, session=session, now=now, policy=self.ctx.policy
                        )
        except Exception as again:
            if database_unavailable(again):
                self._finished.put(outcome)
                raise
            tries = self._unrecorded.get(outcome.delivery_id, 0) + 1
            log.error("record_failed_again", delivery_id=outcome.delivery_id, tries=tries)
            if tries < 2 * GIVE_UP_TRIES:
                # Keep it (and its job, whose lease the heartbeat extends): forgetting it
                # would let the job's next run send the message again (found by the
                # simulator: a commit that failed three times in a row).
                self._unrecorded[outcome.delivery_id] = tries
                self._finished.put(outcome)
                self.wake.set()
                return 0
        self._unrecorded.pop(outcome.delivery_id, None)
        self._forget([outcome])
        return 1

    def _forget(self, outcomes: list[Outcome]) -> None:
        with self._flight:
            for outcome in outcomes:
                self._unrecorded.pop(outcome.delivery_id, None)
                self._in_flight.pop(outcome.delivery_id, None)
                self._lease_until.pop(outcome.delivery_id, None)
