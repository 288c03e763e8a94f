"""Drill schedules, evaluations (HSEEP) and the corrective actions that follow them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from incident.models.base import Base


class DrillSchedule(Base):
    """A playbook drilled on a cron schedule in the centre's time zone."""

    __tablename__ = "drill_schedules"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    playbook_id: Mapped[str] = mapped_column(String(100))
    cron: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(3))
    facts: Mapped[dict[str, Any]]
    participants: Mapped[list[Any]]  # person or department ids; empty: whom the playbook pages
    channels: Mapped[list[Any]]  # drill-only apprise URLs for notices and messages
    active: Mapped[bool] = mapped_column(default=True)
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))


class Evaluation(Base):
    """An evaluator's ratings (P/S/M/U per critical task) and findings for one drill."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    evaluator: Mapped[str] = mapped_column(String(100))
    ratings: Mapped[list[Any]]  # [{task, rating, notes}]
    strengths: Mapped[list[Any]]  # [text]
    improvements: Mapped[list[Any]]  # [{finding, root_cause}]
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class CorrectiveAction(Base):
    """An improvement with an owner and a due date, tracked until done."""

    __tablename__ = "corrective_actions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    evaluation_id: Mapped[str | None] = mapped_column(
        ForeignKey("evaluations.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(300))
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12))  # open|in_progress|done
    playbook_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
