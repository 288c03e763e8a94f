"""Command support: who holds each incident role, tasks, upward reports to the railway
authority, and shift handovers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from incident.models.base import Base


class IncidentRole(Base):
    """One command role of an incident and who holds it now (changes are on the timeline)."""

    __tablename__ = "incident_roles"
    __table_args__ = (UniqueConstraint("incident_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(24))  # commander|public_information|...
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"))
    source: Mapped[str] = mapped_column(String(12))  # rota|playbook|manual|vacant
    assigned_at: Mapped[datetime]
    assigned_by: Mapped[str | None] = mapped_column(String(100))
    changes: Mapped[int] = mapped_column(default=0)


class Task(Base):
    """Something a department or person must do by a due time: open, acknowledged, done."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("incident_id", "origin"),
        Index("ix_tasks_status_due_at", "status", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    origin: Mapped[str] = mapped_column(String(200))  # stage occurrence + action, or api:...
    stage_key: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[dict[str, Any]]  # {"zh": ..., "en": ...}
    department_id: Mapped[str | None] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(12))  # open|acknowledged|done
    follow_up: Mapped[bool] = mapped_column(default=False)  # made after resolution
    note: Mapped[str | None] = mapped_column(Text)
    overdue_at: Mapped[datetime | None]
    page_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime]


class AuthorityReport(Base):
    """A report up to the railway authority, initial or supplementary, in the fields of the
    accident reporting rules; drafted from the incident, submitted by a duty manager."""

    __tablename__ = "authority_reports"
    __table_args__ = (
        UniqueConstraint("incident_id", "number"),
        UniqueConstraint("incident_id", "origin"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(String(14))  # initial|supplementary
    origin: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(200))
    fields: Mapped[dict[str, Any]]  # time, place, train, passengers, casualties, ...
    drafted: Mapped[dict[str, Any]]  # the fields as last drafted from the incident
    status: Mapped[str] = mapped_column(String(10))  # draft|submitted
    due_at: Mapped[datetime | None]
    overdue_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))
    submitted_at: Mapped[datetime | None]
    submitted_by: Mapped[str | None] = mapped_column(String(100))
    submitted_to: Mapped[str | None] = mapped_column(String(200))
    submitted_via: Mapped[str | None] = mapped_column(String(40))


class Handover(Base):
    """A shift handover the incoming duty manager acknowledged, with what was open then."""

    __tablename__ = "handovers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outgoing: Mapped[str | None] = mapped_column(String(100))
    incoming: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    snapshot: Mapped[dict[str, Any]]
    open_items: Mapped[int]
    acknowledged_at: Mapped[datetime] = mapped_column(index=True)
