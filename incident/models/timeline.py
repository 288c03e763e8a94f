"""The append-only, hash-chained timeline of an incident."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from incident.models.base import Base


class TimelineEvent(Base):
    __tablename__ = "timeline_events"
    __table_args__ = (
        UniqueConstraint("incident_id", "seq"),
        UniqueConstraint("incident_id", "dedup_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    seq: Mapped[int]
    kind: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime]
    actor: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict[str, Any]]
    dedup_key: Mapped[str | None] = mapped_column(String(200))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # The audit key that keyed ``hash`` (HMAC-SHA256); NULL: a legacy, unkeyed SHA-256 event
    key_id: Mapped[str | None] = mapped_column(String(40))
