"""Running one scenario: its events over the real engine, then settling, then the checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select

from incident import paging
from incident.clock import FrozenClock
from incident.db import Database, database_unavailable
from incident.delivery import SEND_JOB
from incident.models import Delivery, Job, Stage
from incident.sim import invariants
from incident.sim.desk import Desk
from incident.sim.fleet import Fleet, SimWorker, Stuck
from incident.sim.invariants import Violation
from incident.sim.ledger import Ledger
from incident.sim.people import Responders
from incident.sim.scenario import Event, Scenario
from incident.sim.world import Rig

PHASE_ONE = timedelta(hours=12)  # open incidents: until every page is answered or exhausted
PHASE_TWO = timedelta(days=4)  # after resolving everything: until nothing is left to run
STEP = timedelta(seconds=1)
MID_ROUND = timedelta(minutes=5)
# paging is never left half done, however far off its next step (a bundle's window)
PAGING = (SEND_JOB, paging.BUNDLE_JOB, paging.DEADLINE_JOB)


@dataclass
class Result:
    seed: int
    violations: list[Violation]
    trace: list[str]
    stats: dict[str, Any] = field(default_factory=dict)


class Sim:
    def __init__(self, rig: Rig, scenario: Scenario) -> None:
        self.rig = rig
        self.scenario = scenario
        self.clock = FrozenClock(scenario.start)
        self.engine = rig.store.fresh()
        self.db = Database(self.engine)
        self.ledger = Ledger(scenario.start)
        rig.gateway.reset(scenario.seed, scenario.profiles, self.clock)
        self.fleet = Fleet(rig, self.engine, self.clock, self.ledger, self._race_ack)
        self.desk = Desk(rig, self.db, self.clock, self.ledger)
        self.people = Responders(self.desk, scenario.seed, scenario.answering)
        # Only PostgreSQL lets an ack commit while a handler's transaction is open (SQLite
        # has one writer): there the race is played out, elsewhere the ack comes just first.
        self.races = self.engine.dialect.name == "postgresql"
        self.deferred: list[str] = []
        self.rounds = 0
        for _ in range(scenario.workers):
            self.fleet.spawn()

    # -- running ---------------------------------------------------------------------------
    def run(self) -> Result:
        violations: list[Violation] = []
        with structlog.contextvars.bound_contextvars(simulation=True):
            try:
                for event in self.scenario.events:
                    self.ledger.log(self.clock.now(), str(event))
                    self.apply(event)
                violations += self.settle()
            except Stuck as exc:
                violations.append(Violation("sender_goes_quiet", str(exc)))
            finally:
                self.rig.gateway.release_due()
                self.rig.gateway.wait_quiet(10.0)
                self.fleet.close()
        violations += invariants.final(self.db, self.ledger, self.rig.gateway, self.clock.now())
        violations = list(dict.fromkeys(violations))  # one report of each
        return Result(self.scenario.seed, violations, self.ledger.trace, self.stats())

    def advance_to(self, target: datetime) -> None:
        """Time passes: every moment something happens on the way (a job or lease falls due,
        a slow receiver answers) is stepped on, as a worker polling every second sees it."""
        for _ in range(200):
            nxt = self._next_moment()
            if nxt is None or nxt >= target:
                break
            self.clock.set(nxt)
            self.pump()
        self.clock.set(max(self.clock.now(), target))

    def pump(self) -> None:
        """Let parked sends whose time has come finish, then a round of every live worker."""
        self.rig.gateway.release_due(self.clock.now())
        self.fleet.quiet()
        self.people.act()
        self.fleet.run_all(self.rounds)
        self.rounds += 1
        while self.deferred:
            self.desk.ack(self.deferred.pop(0), "duty")

    def apply(self, event: Event) -> None:
        a = event.args
        kind = event.kind
        if kind == "tick":
            self.advance_to(self.clock.now() + timedelta(seconds=a["seconds"]))
            self.pump()
        elif kind == "jump":  # the clock jumps: leases run out under sends still in flight
            for worker in self.fleet.live():
                self.fleet.unsure(worker, "saw the clock jump")
            self.clock.advance(timedelta(minutes=a["minutes"]))
            self.pump()
        elif kind == "contend":
            self.rig.gateway.release_due(self.clock.now())
            self.fleet.contend(a["limits"])
        elif kind == "declare":
            self.desk.declare(a)
        elif kind == "ack":
            page = self.desk.pick_page(a["page"])
            if page is not None:
                self.desk.ack(page.id, a["by"])
        elif kind in ("ack_at_deadline", "race_ack"):
            self._at_deadline(a["page"], race=kind == "race_ack")
        elif kind == "decline":
            page = self.desk.pick_page(a["page"])
            if page is not None:
                self.desk.decline(page.id)
        elif kind == "change":
            self.desk.change(a)
        elif kind == "drop_fact":
            self.desk.drop_fact(a)
        elif kind in ("resolve", "contain"):
            self.desk.set_status(a, "resolved" if kind == "resolve" else "contained")
        elif kind == "publish":
            self.desk.publish(a)
        elif kind == "fire_manual":
            self.desk.fire_manual(a)
        elif kind in ("kill", "stop", "freeze", "stall", "outage", "glitch"):
            self._fault(kind, a)
        else:
            raise ValueError(f"unknown event {kind!r}")

    def _fault(self, kind: str, a: dict[str, Any]) -> None:
        now = self.clock.now()
        if kind == "outage" and a["worker"] == "all":
            for sim_worker in self.fleet.live():
                sim_worker.db.down_for(until=now + timedelta(seconds=a["seconds"]))
            return
        worker = self.fleet.pick(a["worker"])
        self.ledger.log(now, f"  -> {worker.name}")
        if kind in ("kill", "stop", "freeze") and not self.fleet.frozen(worker):
            self._mid_round(worker)
            now = self.clock.now()
        if kind in ("kill", "stop"):
            if kind == "kill":
                self.fleet.kill(worker)
            else:
                self.fleet.stop(worker)
            if a["restart"] or not self.fleet.live():
                self.ledger.log(now, f"  started {self.fleet.spawn().name}")
        elif kind == "freeze":
            self.fleet.freeze(worker, now + timedelta(seconds=a["seconds"]))
        elif kind == "stall":
            self.fleet.stall(worker, a["seconds"])
        elif kind == "glitch":
            worker.db.glitches += a["calls"]
        else:
            worker.db.down_for(calls=a["calls"])

    def _mid_round(self, worker: SimWorker) -> None:
        """Catch the worker in the middle of a round: at the next moment something falls due
        (within five minutes), it claims and sends, and its sends come back unrecorded."""
        nxt = self._next_moment()
        if nxt is not None and nxt <= self.clock.now() + MID_ROUND:
            self.advance_to(nxt)
        self.rig.gateway.release_due(self.clock.now())
        self.people.act()
        self.fleet.run_once(worker)
        self.fleet.quiet()
        if worker.holding():
            self.ledger.log(self.clock.now(), f"  {worker.name} mid-round: {worker.holding()}")

    def _at_deadline(self, pick: int, *, race: bool) -> None:
        page = self.desk.pick_page(pick, with_deadline=True)
        if page is None or page.ack_deadline is None:
            return
        offset = 0 if race else (pick >> 8) % 3 - 1
        self.advance_to(page.ack_deadline + timedelta(seconds=offset))
        self.ledger.log(self.clock.now(), f"  at the deadline of {page.id} (level {page.level})")
        if race and self.races:
            self.fleet.races.add(page.id)
        else:
            self.desk.ack(page.id, "duty")
        self.pump()

    def _race_ack(self, page_id: str) -> None:
        """Called inside the deadline handler's transaction, just after it read the page."""
        try:
            self.desk.ack(page_id, "duty", lock_wait_ms=200)
            self.ledger.log(self.clock.now(), f"  raced the deadline handler of {page_id}")
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            self.ledger.log(self.clock.now(), f"  {page_id} is locked: the ack waits")
            self.deferred.append(page_id)

    # -- settling --------------------------------------------------------------------------
    def settle(self) -> list[Violation]:
        """Open incidents run until their pages are answered or exhausted (checked then);
        then everything is resolved and runs until nothing is left to do."""
        self.ledger.log(self.clock.now(), "settle: incidents stay open")
        self._run_until(self.clock.now() + PHASE_ONE, self._phase_one_done)
        found = invariants.at_end_of_day(self.db, self.ledger)
        if self.scenario.resolve_at_end:
            self.ledger.log(self.clock.now(), "settle: resolve everything")
            self.desk.resolve_all()
            self._run_until(self.clock.now() + PHASE_TWO, self._nothing_left)
        self.ledger.log(self.clock.now(), "settled")
        return found

    def _run_until(self, limit: datetime, done: Any) -> None:
        for _ in range(600):
            self.pump()
            if done():
                return
            nxt = self._next_moment()
            if nxt is None or nxt > limit:
                self.ledger.log(self.clock.now(), "  settle: gave up waiting")
                return
            self.clock.set(nxt)

    def _busy(self) -> bool:
        if self.rig.gateway.parked() or self.deferred:
            return True
        return any(w.holding() or w.stalled for w in self.fleet.live())

    def _phase_one_done(self) -> bool:
        if self._busy():
            return False
        soon = self.clock.now() + timedelta(minutes=self.scenario.day_minutes)
        with self.db.reading() as session:
            every = set(session.scalars(select(Stage.id).where(Stage.trigger == "every")))
            waiting = session.execute(
                select(Job.kind, Job.payload).where(
                    (Job.status == "running")
                    | ((Job.status == "queued") & (Job.run_at <= soon))
                    | ((Job.status == "queued") & Job.kind.in_(PAGING))
                )
            ).all()
            open_pages = invariants.unanswered(session, self.ledger)
        work = [
            kind
            for kind, payload in waiting
            if not (kind == "stage.fire" and payload.get("stage_id") in every)
        ]
        return not work and not open_pages

    def _nothing_left(self) -> bool:
        if self._busy():
            return False
        with self.db.reading() as session:
            jobs_left = session.scalar(
                select(func.count()).select_from(Job).where(Job.status.in_(("queued", "running")))
            )
        return not jobs_left

    def _next_moment(self) -> datetime | None:
        now = self.clock.now()
        times: list[datetime] = []
        with self.db.reading() as session:
            queued = session.scalar(select(func.min(Job.run_at)).where(Job.status == "queued"))
            leased = session.scalar(
                select(func.min(Job.lease_until)).where(Job.status == "running")
            )
        if queued is not None:
            times.append(queued)
        if leased is not None:
            times.append(leased + STEP)
        # When every worker is frozen or cut off, no job runs until one is back ...
        back = [max(now, w.frozen_until or now, w.db.fail_until or now) for w in self.fleet.live()]
        moments = [max(min(times), min(back, default=now))] if times else []
        # ... but slow receivers answer when they answer.
        release = self.rig.gateway.next_release()
        if release is not None:
            moments.append(release)
        if not moments:
            return None
        return max(min(moments), now + STEP)

    def stats(self) -> dict[str, Any]:
        with self.db.reading() as session:
            deliveries = session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)
            ).all()
        return {
            "incidents": len(self.ledger.incidents),
            "acks": len(self.ledger.acks),
            "accepted": len(self.rig.gateway.accepted),
            "deliveries": {status: n for status, n in deliveries},
            "workers": len(self.fleet.workers),
        }
