"""Worker heartbeats, read by /readyz, /metrics and the auditor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from incident.models.base import Base


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]
    jobs_done: Mapped[int] = mapped_column(default=0)
    stopped_at: Mapped[datetime | None]
