"""Stranded passengers: groups and their care, manifests, broadcasts, inquiries.

Personal data (names, phone numbers, ticket numbers, what an inquirer said) is stored only
encrypted (``personal``: a Fernet token of a small JSON object) and found by a keyed hash of
the E.164 phone number (``phone_hash``); see ``incident.passengers.privacy``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from incident.models.base import Base


class PassengerGroup(Base):
    """Passengers stranded together: on a train, at a station, or both."""

    __tablename__ = "passenger_groups"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    train: Mapped[str | None] = mapped_column(String(40))
    station: Mapped[str | None] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(200))
    count: Mapped[int]
    vulnerable: Mapped[dict[str, Any]]  # {"elderly": n, "children": n, "reduced_mobility": n}
    needs: Mapped[dict[str, Any]]  # {"water": "open" | "met", ...}
    since: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(10))  # stranded|cleared
    cleared_at: Mapped[datetime | None]
    current_upload_id: Mapped[str | None] = mapped_column(String(40))
    passengers_purged_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime]


class CareEntry(Base):
    """The care log of a group: what was provided, when, by whom."""

    __tablename__ = "care_entries"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("passenger_groups.id", ondelete="CASCADE"), index=True
    )
    need: Mapped[str] = mapped_column(String(24))
    what: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int | None]
    provided_at: Mapped[datetime]
    provided_by: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str | None] = mapped_column(String(100))


class ManifestUpload(Base):
    """One upload of a group's manifest: staged in batches, visible when complete."""

    __tablename__ = "manifest_uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("passenger_groups.id", ondelete="CASCADE"), index=True
    )
    # staging|complete|failed|superseded|discarded
    status: Mapped[str] = mapped_column(String(12))
    encoding: Mapped[str | None] = mapped_column(String(20))
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_stored: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    rows_merged: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[list[Any]]  # [{"line": n, "reason": "..."}], the first ones
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    uploaded_by: Mapped[str | None] = mapped_column(String(100))


class Passenger(Base):
    """One passenger of a manifest upload; visible when the upload is the group's current."""

    __tablename__ = "passengers"
    __table_args__ = (Index("ix_passengers_upload_line", "upload_id", "line"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("manifest_uploads.id", ondelete="CASCADE"))
    group_id: Mapped[str] = mapped_column(String(40))
    line: Mapped[int]
    personal: Mapped[str | None] = mapped_column(Text)  # Fernet {name, phone, ticket}
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    coach: Mapped[str | None] = mapped_column(String(10))
    seat: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(5))  # zh|en


class Broadcast(Base):
    """A message to every passenger of one or more groups (or a drill's test numbers)."""

    __tablename__ = "broadcasts"
    __table_args__ = (UniqueConstraint("incident_id", "origin"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    origin: Mapped[str] = mapped_column(String(200))  # stage occurrence + action, or api:...
    group_ids: Mapped[list[Any]]
    template: Mapped[str | None] = mapped_column(String(100))
    texts: Mapped[dict[str, Any]]  # {"zh": ..., "en": ...} as sent
    offer: Mapped[str | None] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(8))  # live|drill
    status: Mapped[str] = mapped_column(String(12))  # preparing|sending|unsent
    total: Mapped[int] = mapped_column(default=0)
    prepared_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    resends: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))


class BroadcastRecipient(Base):
    """One phone number a broadcast goes to, and its current delivery."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (UniqueConstraint("broadcast_id", "phone_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    broadcast_id: Mapped[str] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    passenger_id: Mapped[int | None]  # None: a drill test number
    group_id: Mapped[str | None] = mapped_column(String(40))
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(5))
    delivery_id: Mapped[int | None] = mapped_column(index=True)
    sends: Mapped[int] = mapped_column(default=1)


class Inquiry(Base):
    """An inbound inquiry or complaint, with a promised call-back."""

    __tablename__ = "inquiries"
    __table_args__ = (Index("ix_inquiries_callback", "callback_status", "callback_due"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[str | None] = mapped_column(
        ForeignKey("passenger_groups.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(12))  # inquiry|complaint
    personal: Mapped[str | None] = mapped_column(Text)  # Fernet {name, phone, question, ...}
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(5))
    matched_by: Mapped[str | None] = mapped_column(String(10))  # given|phone
    callback_due: Mapped[datetime | None]
    callback_status: Mapped[str] = mapped_column(String(10))  # pending|done|none
    overdue_at: Mapped[datetime | None]
    page_id: Mapped[str | None] = mapped_column(String(40))
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))
