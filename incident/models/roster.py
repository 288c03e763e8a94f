"""The roster: departments, people, contact methods, the duty rota and its overrides."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from incident.models.base import Base


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    head_id: Mapped[str | None] = mapped_column(String(64))
    # Levels such as ["on_duty", "section_head", "deputy_director", "duty_director"].
    escalation: Mapped[list[Any]] = mapped_column(default=list)


class Person(Base):
    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16), default="zh-CN")
    department_id: Mapped[str | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL"), index=True
    )
    roles: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(default=True)

    contacts: Mapped[list[ContactMethod]] = relationship(
        order_by="ContactMethod.position", cascade="all, delete-orphan", lazy="selectin"
    )


class ContactMethod(Base):
    __tablename__ = "contact_methods"
    __table_args__ = (UniqueConstraint("person_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    position: Mapped[int]
    url: Mapped[str] = mapped_column(String(2000))
    label: Mapped[str | None] = mapped_column(String(100))


class RotaPattern(Base):
    """A repeating shift pattern: from ``starts_on`` at ``start_time``, shifts of
    ``shift_hours`` cycle through ``teams`` (each a list of person ids)."""

    __tablename__ = "rota_patterns"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    department_id: Mapped[str] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True
    )
    starts_on: Mapped[date]
    start_time: Mapped[str] = mapped_column(String(5))  # "08:00", centre time zone
    shift_hours: Mapped[int]
    teams: Mapped[list[Any]]


class RotaOverride(Base):
    """Someone on duty for a period: ``covers`` names who they replace (a swap)."""

    __tablename__ = "rota_overrides"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    department_id: Mapped[str] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    covers_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
