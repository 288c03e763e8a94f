"""Job handlers: one thin function per job kind.

A handler runs inside the transaction that also completes its job, so its effects and the
job's completion commit together (a handler that must send does so between transactions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from incident import response
from incident.catalog import Catalog
from incident.jobs import Claimed
from incident.models import Incident
from incident.settings import Settings


@dataclass(frozen=True)
class Context:
    """What every handler may use besides its session."""

    settings: Settings
    catalog: Catalog


Handler = Callable[[Claimed, Session, datetime, Context], None]


def fire_stage(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    response.fire_stage(
        int(job.payload["stage_id"]),
        job.payload["occurrence"],
        session=session,
        now=now,
        catalog=ctx.catalog,
    )


def evaluate_incident(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    incident = session.get(Incident, job.payload["incident_id"])
    if incident is not None:
        response.evaluate_conditions(
            incident, response.playbook_of(incident, ctx.catalog), session=session, now=now
        )


HANDLERS: dict[str, Handler] = {
    "stage.fire": fire_stage,
    "incident.evaluate": evaluate_incident,
}
