"""Plain factory functions for tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from incident import response
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.models import Incident, Job, Stage, TimelineEvent

MASS_DELAY_FACTS: dict[str, Any] = {"line": "G", "expected_delay_min": 90, "trains_affected": 40}


def declare(
    db: Database,
    catalog: Catalog,
    clock: FrozenClock,
    *,
    playbook: str = "mass-delay",
    severity: str = "III",
    facts: dict[str, Any] | None = None,
    mode: str = "live",
) -> str:
    with db.transaction() as session:
        return response.declare(
            session=session,
            now=clock.now(),
            catalog=catalog,
            playbook_id=playbook,
            severity=severity,
            title="Line G signal fault",
            facts=MASS_DELAY_FACTS if facts is None else facts,
            mode=mode,
            actor="test",
        ).id


def stage_states(db: Database, incident_id: str) -> dict[str, str]:
    with db.reading() as session:
        rows = session.execute(
            select(Stage.key, Stage.state).where(Stage.incident_id == incident_id)
        ).all()
    return {key: state for key, state in rows}


def fired_counts(db: Database, incident_id: str) -> dict[str, int]:
    """How many times each stage fired, from the timeline."""
    with db.reading() as session:
        events = session.scalars(
            select(TimelineEvent).where(
                TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "stage:fired"
            )
        )
        counts: dict[str, int] = {}
        for event in events:
            counts[event.data["stage"]] = counts.get(event.data["stage"], 0) + 1
    return counts


def change(
    db: Database, catalog: Catalog, clock: FrozenClock, incident_id: str, **changes: Any
) -> None:
    with db.transaction() as session:
        incident = response.get_incident(incident_id, session=session)
        response.change(
            incident, session=session, now=clock.now(), catalog=catalog, actor="test", **changes
        )


def count_rows(db: Database, model: type[Incident] | type[Job] | type[TimelineEvent]) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def stage_keys(catalog: Catalog, playbook: str, trigger: str) -> list[str]:
    return [s.id for s in catalog.get(playbook).stages if s.when.kind == trigger]
