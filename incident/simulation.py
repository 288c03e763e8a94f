"""Simulate a playbook: run the real engine on a throwaway in-memory database with a
frozen clock, and report what fires when. Nothing leaves the process."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.pool import StaticPool

from incident import jobs, response, roster, timeline
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.delivery import SEND_JOB
from incident.handlers import HANDLERS, Context
from incident.models import Base
from incident.playbook import format_duration, parse_duration
from incident.settings import Settings

START = datetime.fromisoformat("2026-01-01T08:00:00+00:00")
SHOWN = {
    "stage:fired",
    "stage:skipped",
    "incident:severity_changed",
    "incident:facts_changed",
    "incident:status_changed",
    "page:requested",
    "page:opened",
    "page:escalated",
    "page:unanswered",
    "notice:requested",
    "passenger_message:requested",
    "task:requested",
    "authority_report:requested",
}


@dataclass(frozen=True)
class Change:
    """A change to apply at an offset from declaration: severity, a fact, or resolution."""

    at: timedelta
    name: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> Change:
        offset, sep, assignment = text.partition(":")
        name, eq, raw = assignment.partition("=")
        if not sep or not eq or not name:
            raise ValueError(f"{text!r}: expected AT:name=value, e.g. 30m:severity=II")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        return cls(parse_duration(offset), name, value)


@dataclass(frozen=True)
class Step:
    offset: timedelta
    kind: str
    data: dict[str, Any]

    def line(self) -> str:
        stage = self.data.get("stage", "")
        if self.kind == "stage:fired":
            what = f"stage {stage} fires"
        elif self.kind == "stage:skipped":
            what = f"stage {stage} skipped ({self.data.get('reason')})"
        elif self.kind.endswith(":requested"):
            shown = {
                k: v for k, v in self.data.get("params", {}).items() if v not in (None, False, [])
            }
            params = ", ".join(f"{k}={v}" for k, v in shown.items())
            what = f"  {self.data.get('action')}: {params}"
        elif self.kind == "page:opened":
            what = f"  page {self.data.get('target')}"
        elif self.kind == "page:escalated":
            what = f"  page escalates (no acknowledgement, level {self.data.get('from_level')})"
        elif self.kind == "page:unanswered":
            what = "  page unanswered at the end of its chain"
        elif self.kind == "incident:status_changed":
            what = f"incident {self.data.get('to')}"
        elif self.kind == "incident:severity_changed":
            what = f"severity {self.data.get('from')} -> {self.data.get('to')}"
        else:
            what = f"facts changed: {self.data.get('to')}"
        return f"+{format_duration(self.offset) if self.offset else '0m':>7}  {what}"


@dataclass
class Simulation:
    playbook_id: str
    steps: list[Step] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [step.line() for step in self.steps]

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"offset_s": int(s.offset.total_seconds()), "kind": s.kind, "data": s.data}
            for s in self.steps
        ]


def simulate(
    catalog: Catalog,
    playbook_id: str,
    *,
    severity: str,
    facts: Mapping[str, Any],
    title: str = "Simulation",
    horizon: timedelta = timedelta(hours=4),
    changes: Sequence[Change] = (),
    resolve_at: str | timedelta | None = None,
    roster_from: Database | None = None,
    roster_doc: roster.RosterDoc | None = None,
) -> Simulation:
    """Run the playbook from declaration to ``horizon`` and list what happened when.
    The engine's own log lines are silenced: the throwaway incident is not a real one."""
    db = Database.from_url(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    Base.metadata.create_all(db.engine)
    _load_roster(db, roster_from, roster_doc)
    clock = FrozenClock(START)
    # No sender: deliveries are created as the engine would, and nothing is sent.
    ctx = Context.build(Settings(database_url="sqlite://"), catalog)
    pending = sorted(changes, key=lambda c: c.at)
    if resolve_at is not None:
        at = parse_duration(resolve_at) if isinstance(resolve_at, str) else resolve_at
        pending.append(Change(at, "status", "resolved"))
        pending.sort(key=lambda c: c.at)
    bound = structlog.contextvars.bound_contextvars(simulation=True)
    bound.__enter__()
    try:
        with db.transaction() as session:
            incident_id = response.declare(
                session=session,
                now=clock.now(),
                catalog=catalog,
                playbook_id=playbook_id,
                severity=severity,
                title=title,
                facts=facts,
                mode="drill",
                actor="simulation",
            ).id
        end = START + horizon
        while True:
            _run_due(db, ctx, clock)
            with db.reading() as session:
                nxt = jobs.next_run_at(session)
            change_at = START + pending[0].at if pending else None
            candidates = [t for t in (nxt, change_at) if t is not None and t <= end]
            if not candidates:
                break
            moment = min(candidates)
            clock.set(max(moment, clock.now()))
            while pending and START + pending[0].at <= clock.now():
                _apply(db, catalog, incident_id, pending.pop(0), clock.now())
        with db.reading() as session:
            events = timeline.events(incident_id, session=session)
            steps = [Step(e.at - START, e.kind, e.data) for e in events if e.kind in SHOWN]
        return Simulation(playbook_id, steps)
    finally:
        bound.__exit__(None, None, None)
        db.dispose()


ROSTER_TABLES = ("departments", "people", "contact_methods", "rota_patterns", "rota_overrides")


def _load_roster(db: Database, source: Database | None, doc: roster.RosterDoc | None) -> None:
    """Who would be paged: the roster of a real database (copied), or a roster file."""
    if source is not None:
        with source.reading() as reading, db.transaction() as session:
            for name in ROSTER_TABLES:
                table = Base.metadata.tables[name]
                rows = [dict(r) for r in reading.execute(select(table)).mappings()]
                if rows:
                    session.execute(insert(table), rows)
    elif doc is not None:
        with db.transaction() as session:
            roster.apply_roster(doc, session=session)


def _run_due(db: Database, ctx: Context, clock: FrozenClock) -> None:
    """Run every job due now with the real handlers; deliveries are created but never sent."""
    lease = timedelta(minutes=5)
    while True:
        with db.transaction() as session:
            claimed = jobs.claim(
                session, owner="simulation", now=clock.now(), lease=lease, limit=500
            )
        if not claimed:
            return
        for job in claimed:
            with db.transaction() as session:
                handler = HANDLERS.get(job.kind)
                if handler is not None and job.kind != SEND_JOB:
                    handler(job, session, clock.now(), ctx)
                jobs.complete(session, job.id, owner="simulation", now=clock.now())


def _apply(db: Database, catalog: Catalog, incident_id: str, change: Change, now: datetime) -> None:
    with db.transaction() as session:
        incident = response.get_incident(incident_id, session=session)
        if change.name == "severity":
            response.change(
                incident,
                session=session,
                now=now,
                catalog=catalog,
                severity=str(change.value),
                actor="simulation",
            )
        elif change.name == "status":
            response.change(
                incident,
                session=session,
                now=now,
                catalog=catalog,
                status=str(change.value),
                actor="simulation",
            )
        else:
            response.change(
                incident,
                session=session,
                now=now,
                catalog=catalog,
                facts={change.name: change.value},
                actor="simulation",
            )
