"""Official notices, their versions, and the publication generation the public feeds key on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from incident.models.base import Base
from incident.models.incidents import Incident


class Notice(Base):
    """An official public notice of an incident; what it says lives in its versions."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_mode_status", "mode", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    mode: Mapped[str] = mapped_column(String(8))  # the incident's: live|drill
    status: Mapped[str] = mapped_column(String(10))  # draft|current|closed|withdrawn
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))
    update_every_s: Mapped[int | None]  # the playbook's notice_every target
    next_update_due: Mapped[datetime | None]
    published_number: Mapped[int | None]  # the version the public sees now
    first_published_at: Mapped[datetime | None]
    last_published_at: Mapped[datetime | None] = mapped_column(index=True)
    closed_at: Mapped[datetime | None]

    incident: Mapped[Incident] = relationship(lazy="joined")
    versions: Mapped[list[NoticeVersion]] = relationship(
        order_by="NoticeVersion.number",
        cascade="all, delete-orphan",
        lazy="selectin",
        back_populates="notice",
    )


class NoticeVersion(Base):
    """One version of a notice: initial, update, all-clear or withdrawal, in zh and en."""

    __tablename__ = "notice_versions"
    __table_args__ = (
        UniqueConstraint("notice_id", "number"),
        UniqueConstraint("notice_id", "origin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    notice_id: Mapped[str] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(String(12))  # initial|update|all_clear|withdrawal
    # draft|approved|published|superseded|withdrawn
    status: Mapped[str] = mapped_column(String(12))
    origin: Mapped[str | None] = mapped_column(String(200))  # stage occurrence and action
    template: Mapped[str | None] = mapped_column(String(100))
    # {"zh": {"headline", "body", "instruction"}, "en": {...}}
    texts: Mapped[dict[str, Any]]
    lines: Mapped[list[Any]]
    stations: Mapped[list[Any]]
    trains: Mapped[list[Any]]
    cause: Mapped[str] = mapped_column(String(24))  # GTFS-RT Cause name
    effect: Mapped[str] = mapped_column(String(24))  # GTFS-RT Effect name
    level: Mapped[str] = mapped_column(String(3))  # I..IV, the incident's at drafting
    impact_start: Mapped[datetime | None]
    impact_end: Mapped[datetime | None]
    communication_start: Mapped[datetime | None]
    communication_end: Mapped[datetime | None]
    drafted_at: Mapped[datetime]
    drafted_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(100))
    published_at: Mapped[datetime | None]
    superseded_at: Mapped[datetime | None]

    notice: Mapped[Notice] = relationship(back_populates="versions")


class NoticeFeedState(Base):
    """One row: the publication generation, raised by every publication.

    Each process caches the public page and feeds keyed by this number, so a publication made
    by any process shows on every process's surfaces."""

    __tablename__ = "notice_feed_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int]
    changed_at: Mapped[datetime]
