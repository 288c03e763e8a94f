"""Incidents, their stages and the playbook versions they were declared from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from incident.models.base import Base


class PlaybookVersion(Base):
    """The exact playbook text an incident runs, pinned at declaration."""

    __tablename__ = "playbook_versions"
    __table_args__ = (UniqueConstraint("playbook_id", "digest"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    playbook_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    digest: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    definition: Mapped[dict[str, Any]]
    loaded_at: Mapped[datetime]


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_status_mode", "status", "mode"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    playbook_id: Mapped[str] = mapped_column(String(100))
    playbook_version_id: Mapped[int] = mapped_column(ForeignKey("playbook_versions.id"))
    title: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(3))
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    facts: Mapped[dict[str, Any]]
    declared_at: Mapped[datetime] = mapped_column(index=True)
    declared_by: Mapped[str | None] = mapped_column(String(40))
    contained_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # Drills: who may be paged (person or department ids; empty: whom the playbook pages),
    # the schedule that started it, and its drill-only channels.
    participants: Mapped[list[Any] | None]
    drill_schedule_id: Mapped[str | None] = mapped_column(String(40))
    drill_channels: Mapped[list[Any] | None]
    timeline_seq: Mapped[int] = mapped_column(default=0)
    timeline_head: Mapped[str] = mapped_column(String(64), default="")

    playbook_version: Mapped[PlaybookVersion] = relationship(lazy="joined")
    stages: Mapped[list[Stage]] = relationship(
        order_by="Stage.position",
        cascade="all, delete-orphan",
        lazy="selectin",
        back_populates="incident",
    )


class Stage(Base):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("incident_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    position: Mapped[int]
    trigger: Mapped[str] = mapped_column(String(10))  # declared|after|every|if|manual|resolved
    state: Mapped[str] = mapped_column(String(10))  # pending|due|fired|skipped
    due_at: Mapped[datetime | None]
    fired_at: Mapped[datetime | None]
    fire_count: Mapped[int] = mapped_column(default=0)

    incident: Mapped[Incident] = relationship(back_populates="stages")
