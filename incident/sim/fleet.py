"""Several real Workers on one database, driven one round at a time from this thread:
started, killed, frozen, stalled mid-job, cut off from the database.

A worker is killed by dropping it: its leases stay until they expire and its sends still in
flight finish with no one to record them. A frozen worker runs no rounds for a while (its
finished sends wait, unrecorded). A stalled worker has claimed jobs and runs them only later,
after their lease may have passed to another worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from incident import jobs
from incident.clock import FrozenClock
from incident.db import Database, database_unavailable
from incident.delivery import SEND_JOB
from incident.handlers import HANDLERS, Context, page_deadline
from incident.models import Page
from incident.paging import DEADLINE_JOB
from incident.sim.gateway import SimSender
from incident.sim.ledger import Ledger
from incident.sim.outage import FlakyDatabase, SimulatedGlitch
from incident.sim.world import Rig
from incident.worker import Worker

MAX_ROUNDS = 25


class Stuck(Exception):
    """The sender did not go quiet: a send neither finished nor parked at the gateway."""


@dataclass
class SimWorker:
    name: str
    worker: Worker
    db: FlakyDatabase
    sender: SimSender
    alive: bool = True
    frozen_until: datetime | None = None
    stalled: list[jobs.Claimed] = field(default_factory=list)
    cut_off: set[int] = field(default_factory=set)  # deliveries counted unsure by an outage

    def holding(self) -> list[int]:
        """Deliveries this worker sent and has not recorded."""
        return sorted(self.worker._in_flight)

    def has_outcomes(self) -> bool:
        return not self.worker._finished.empty()


class Fleet:
    def __init__(
        self,
        rig: Rig,
        engine: Engine,
        clock: FrozenClock,
        ledger: Ledger,
        on_race: Callable[[str], None],
    ) -> None:
        self.rig = rig
        self.engine = engine
        self.clock = clock
        self.ledger = ledger
        self.on_race = on_race
        self.workers: list[SimWorker] = []
        self.reader = Database(engine)  # the simulator's own look at what is due
        self.races: set[str] = set()  # page ids whose deadline handler an ack will race
        self._made = 0

    # -- the workers -------------------------------------------------------------------------
    def spawn(self) -> SimWorker:
        self._made += 1
        name = f"w{self._made}"
        db = FlakyDatabase(self.engine, self.clock)
        handlers = dict(HANDLERS)
        handlers[DEADLINE_JOB] = self._deadline
        sender = self.rig.sender()
        worker = Worker(
            db, self.rig.context, self.clock, sender=sender, handlers=handlers, owner=name
        )
        sim_worker = SimWorker(name, worker, db, sender)
        self.workers.append(sim_worker)
        return sim_worker

    def live(self) -> list[SimWorker]:
        return [w for w in self.workers if w.alive]

    def pick(self, number: int) -> SimWorker:
        live = self.live()
        return live[number % len(live)]

    def unsure(self, worker: SimWorker, why: str, *, allowed: bool = True) -> None:
        """Deliveries the worker holds are in doubt: ``allowed`` one more acceptance each."""
        holding = worker.holding()
        if why == "lost the database":  # once per outage and delivery, however many rounds
            holding = [d for d in holding if d not in worker.cut_off]
            worker.cut_off.update(holding)
        for delivery_id in holding:
            self.ledger.uncertain[delivery_id] += 1 if allowed else 0
        self.ledger.happened(holding, f"{worker.name} {why}")
        if holding:
            self.ledger.log(self.clock.now(), f"  {worker.name} {why} holding {holding}")

    def close(self) -> None:
        """The end of a scenario: every sender goes."""
        for worker in self.workers:
            worker.sender.close()

    def stop(self, worker: SimWorker) -> None:
        """A graceful stop (SIGTERM), here just after the worker's sends came back and before
        its next round recorded them: a graceful stop loses nothing, so nothing is in doubt."""
        self.unsure(worker, "stopped gracefully", allowed=False)
        worker.worker.stop(timeout=1.0)  # closes its sender
        worker.alive = False
        worker.stalled = []

    def kill(self, worker: SimWorker) -> None:
        self.unsure(worker, "killed")
        worker.alive = False
        worker.stalled = []
        # A killed process makes no further attempt: its Sender thread lives on here, so
        # fence it (an attempt already at the gateway may still arrive: that is the unsure
        # window counted above).
        worker.worker._stopping = True

    def freeze(self, worker: SimWorker, until: datetime) -> None:
        self.unsure(worker, "frozen")
        worker.frozen_until = max(until, worker.frozen_until or until)

    def stall(self, worker: SimWorker, seconds: float) -> int:
        """Claim what is due now and run its non-send jobs only ``seconds`` later."""
        if self.frozen(worker):
            return 0
        try:
            now = self.clock.now()
            with worker.db.transaction() as session:
                claimed = jobs.claim(
                    session, owner=worker.name, now=now, lease=worker.worker.lease, limit=5
                )
            sends = [job for job in claimed if job.kind == SEND_JOB]
            if sends:
                worker.worker._start_sends(sends, lease_until=now + worker.worker.lease)
        except Exception as exc:
            self._failed(worker, exc)
            return 0
        worker.stalled = [job for job in claimed if job.kind != SEND_JOB]
        self.quiet()
        self.freeze(worker, self.clock.now() + timedelta(seconds=seconds))
        return len(claimed)

    def frozen(self, worker: SimWorker) -> bool:
        until = worker.frozen_until
        if until is not None and self.clock.now() < until:
            return True
        worker.frozen_until = None
        return False

    # -- rounds ------------------------------------------------------------------------------
    def quiet(self) -> None:
        if not self.rig.gateway.wait_quiet(10.0):
            raise Stuck(f"{self.rig.gateway.outstanding()} sends neither finished nor parked")

    def _failed(self, worker: SimWorker, exc: Exception) -> None:
        if database_unavailable(exc):
            self.unsure(worker, "lost the database")
            return
        cause = getattr(exc, "orig", None) or exc
        if isinstance(cause, SimulatedGlitch):
            self.ledger.log(self.clock.now(), f"  {worker.name} round failed: the glitch")
            return
        line = f"{worker.name} round failed: {type(cause).__name__}: {str(cause)[:200]}"
        self.ledger.errors.append(line)
        self.ledger.log(self.clock.now(), "  " + line)

    def run_once(self, worker: SimWorker, limit: int = 500) -> int | None:
        """One ``run_due`` as the worker's loop runs it (a failed round is logged and the
        worker backs off: None)."""
        holding, glitches = worker.holding(), worker.db.glitches
        try:
            ran = worker.worker.run_due(limit)
            worker.cut_off.clear()
            return ran
        except Exception as exc:
            self._failed(worker, exc)
            return None
        finally:
            if worker.db.glitches < glitches:
                self.ledger.happened(holding, f"{worker.name} glitched while holding it")

    def cycle(self, worker: SimWorker) -> bool:
        """Rounds until this worker has nothing due and nothing to record; False if it could
        not get there (frozen, cut off, killed, or still busy after MAX_ROUNDS)."""
        if not worker.alive or self.frozen(worker):
            return False
        if worker.stalled:
            stalled, worker.stalled = worker.stalled, []
            for job in stalled:
                try:
                    worker.worker._run(job)
                except Exception as exc:
                    self._failed(worker, exc)
                    return False
        for _ in range(MAX_ROUNDS):
            ran = self.run_once(worker)
            self.quiet()
            if ran is None:
                return False
            if ran == 0 and not worker.has_outcomes():
                return True
        return False

    def contend(self, limits: list[int]) -> None:
        """Every live worker claims at once (small batches), then each carries on."""
        live = [w for w in self.live() if not self.frozen(w)]
        for worker, limit in zip(live, limits, strict=False):
            self.run_once(worker, limit)
        self.quiet()
        for worker in live:
            self.cycle(worker)

    def anything_due(self) -> bool:
        with self.reader.reading() as session:
            nxt = jobs.next_run_at(session)
        return nxt is not None and nxt <= self.clock.now()

    def run_all(self, first: int = 0) -> None:
        """A round of every live worker that has something to do (what is due, what it has
        to record or to finish)."""
        live = self.live()
        due = self.anything_due()
        for n in range(len(live)):
            worker = live[(first + n) % len(live)]
            if worker.has_outcomes() or worker.stalled or due:
                drained = self.cycle(worker)
                due = due and not drained  # a worker that drained took all that was due

    # -- an acknowledgement racing the escalation deadline (PostgreSQL) ---------------------
    def _deadline(self, job: jobs.Claimed, session: Session, now: datetime, ctx: Context) -> None:
        page_id = str(job.payload["page_id"])
        if page_id not in self.races:
            page_deadline(job, session, now, ctx)
            return
        self.races.discard(page_id)
        raced = False

        def loaded(_session: Session, instance: Any) -> None:
            nonlocal raced
            if not raced and isinstance(instance, Page) and instance.id == page_id:
                raced = True  # the handler has read the page: the ack commits now
                self.on_race(page_id)

        event.listen(session, "loaded_as_persistent", loaded)
        try:
            page_deadline(job, session, now, ctx)
        finally:
            event.remove(session, "loaded_as_persistent", loaded)
