"""Pages, who received them, and the deliveries (one message to one address) they caused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from incident.models.base import Base


class Page(Base):
    """A request that a department, role or person respond, climbing an escalation chain."""

    __tablename__ = "pages"
    __table_args__ = (UniqueConstraint("incident_id", "origin"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    origin: Mapped[str] = mapped_column(String(200))  # stage occurrence + action + target
    stage_key: Mapped[str | None] = mapped_column(String(100))
    target_kind: Mapped[str] = mapped_column(String(12))  # department|role|person|duty
    target_id: Mapped[str] = mapped_column(String(64))
    chain: Mapped[list[Any]]  # escalation levels, e.g. ["on_duty", "section_head", ...]
    level: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(12))  # pending|sent|acked|escalated|unreachable
    template: Mapped[str] = mapped_column(String(100))  # playbook template, or "" for text
    text: Mapped[dict[str, Any] | None]  # {"zh": ..., "en": ...} when not from a template
    ack_within_s: Mapped[int]
    ack_deadline: Mapped[datetime | None]
    created_at: Mapped[datetime]
    acked_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(String(64))
    acked_via: Mapped[str | None] = mapped_column(String(12))  # link|api|console|reply
    exhausted_at: Mapped[datetime | None]

    recipients: Mapped[list[PageRecipient]] = relationship(
        order_by="PageRecipient.id",
        cascade="all, delete-orphan",
        lazy="selectin",
        back_populates="page",
    )


class PageRecipient(Base):
    """One person paged at one level of a page."""

    __tablename__ = "page_recipients"
    __table_args__ = (UniqueConstraint("page_id", "level", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    page_id: Mapped[str] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"))
    level: Mapped[int]
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    status: Mapped[str] = mapped_column(String(12))  # pending|sent|failed|acked|declined
    contact_position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    responded_at: Mapped[datetime | None]

    page: Mapped[Page] = relationship(back_populates="recipients")


class Delivery(Base):
    """One message to one address over one channel, with its attempts."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    purpose: Mapped[str] = mapped_column(String(12))  # page|test|notice|broadcast|alert
    incident_id: Mapped[str | None] = mapped_column(String(40), index=True)
    recipient_id: Mapped[int | None] = mapped_column(
        ForeignKey("page_recipients.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[str | None] = mapped_column(String(64))
    contact_position: Mapped[int | None]
    address: Mapped[str] = mapped_column(String(2000))
    address_hash: Mapped[str] = mapped_column(String(64), index=True)  # flood limit, lookups
    urgent: Mapped[bool] = mapped_column(default=False)  # escalations: never held back
    bundled_into: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    # queued|sending|delivered|retrying|failed; held (flood limit) -> bundled
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    started_at: Mapped[datetime]
    duration_ms: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(10))  # delivered|transient|permanent
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))


class AckToken(Base):
    """A used acknowledgement link (links are single use)."""

    __tablename__ = "ack_tokens_used"

    nonce: Mapped[str] = mapped_column(String(40), primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("page_recipients.id", ondelete="CASCADE"))
    used_at: Mapped[datetime]
