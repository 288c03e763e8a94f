"""The passengers panel of the incident page: groups and their needs, messages sent, and
call-backs promised with their deadlines (personal data masked for roles that may not see it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import response
from incident.models import Incident, Inquiry, PassengerGroup
from incident.passengers import Vault, groups, inquiries, mask_name, mask_phone, summary
from incident.security import Principal

CALLBACKS_SHOWN = 50
NEEDS = groups.NEEDS
VULNERABLE = groups.VULNERABLE


@dataclass(frozen=True)
class CallbackRow:
    id: str
    kind: str
    caller: str
    phone: str
    question: str
    due: datetime | None
    status: str
    overdue: bool
    completed_at: datetime | None


@dataclass(frozen=True)
class PassengersView:
    incident: Incident
    summary: dict[str, Any]
    groups: list[PassengerGroup]
    callbacks: list[CallbackRow]
    needs: tuple[str, ...] = NEEDS
    vulnerable: tuple[str, ...] = VULNERABLE


def _callback_row(inquiry: Inquiry, vault: Vault, *, full: bool, now: datetime) -> CallbackRow:
    fields = vault.open(inquiry.personal) if inquiry.personal else {}
    phone, name = fields.get("phone"), fields.get("name")
    return CallbackRow(
        id=inquiry.id,
        kind=inquiry.kind,
        caller=(name if full else mask_name(name)) or "",
        phone=(phone if full else mask_phone(phone)) or "",
        question=str(fields.get("question") or "") if full else "",
        due=inquiry.callback_due,
        status=inquiry.callback_status,
        overdue=inquiry.callback_status == "pending"
        and inquiry.callback_due is not None
        and inquiry.callback_due <= now,
        completed_at=inquiry.completed_at,
    )


def passengers_view(
    incident_id: str, *, session: Session, now: datetime, vault: Vault, user: Principal
) -> PassengersView:
    incident = response.get_incident(incident_id, session=session)
    found = inquiries.list_inquiries(
        session=session, incident_id=incident_id, limit=CALLBACKS_SHOWN
    )
    rows = [
        _callback_row(i, vault, full=user.sees_personal_data, now=now)
        for i in found
        if i.callback_status != "none"
    ]
    rows.sort(key=lambda r: (r.status != "pending", r.due or now))
    return PassengersView(
        incident=incident,
        summary=summary.summarise(incident, session=session, now=now),
        groups=groups.groups_of(incident_id, session=session),
        callbacks=rows,
    )


def overdue_callbacks(*, session: Session, now: datetime, running: list[str]) -> list[Inquiry]:
    """Promised call-backs past their deadline, in running incidents (for the dashboard)."""
    return list(
        session.scalars(
            select(Inquiry)
            .where(
                Inquiry.incident_id.in_(running),
                Inquiry.callback_status == "pending",
                Inquiry.callback_due <= now,
            )
            .order_by(Inquiry.callback_due)
            .limit(CALLBACKS_SHOWN)
        )
    )
