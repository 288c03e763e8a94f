"""Stranded passengers as the API shows them: personal data in full only for roles that may see
it, masked for the others; broadcast recipients always masked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from incident.logs import mask_text
from incident.models import (
    Broadcast,
    BroadcastRecipient,
    CareEntry,
    Delivery,
    Inquiry,
    ManifestUpload,
    Passenger,
    PassengerGroup,
)
from incident.passengers import broadcasts
from incident.passengers.privacy import Vault, mask_name, mask_phone
from incident.privacy import mask_optional
from incident.web.views import iso


def _mask_ticket(ticket: str | None) -> str | None:
    return None if not ticket else "*" * max(len(ticket) - 3, 1) + ticket[-3:]


def group_json(group: PassengerGroup, *, now: datetime) -> dict[str, Any]:
    return {
        "id": group.id,
        "incident": group.incident_id,
        "train": group.train,
        "station": group.station,
        "location": group.location,
        "count": group.count,
        "vulnerable": group.vulnerable,
        "needs": group.needs,
        "since": iso(group.since),
        "minutes_stranded": int((now - group.since).total_seconds() // 60)
        if group.status == "stranded"
        else None,
        "status": group.status,
        "cleared_at": iso(group.cleared_at),
        "manifest": group.current_upload_id,
        "passengers_purged_at": iso(group.passengers_purged_at),
        "created_at": iso(group.created_at),
        "created_by": group.created_by,
        "updated_at": iso(group.updated_at),
    }


def care_json(entry: CareEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "need": entry.need,
        "what": entry.what,
        "quantity": entry.quantity,
        "provided_at": iso(entry.provided_at),
        "provided_by": entry.provided_by,
        "recorded_at": iso(entry.recorded_at),
        "recorded_by": entry.recorded_by,
    }


def upload_json(upload: ManifestUpload) -> dict[str, Any]:
    return {
        "id": upload.id,
        "group": upload.group_id,
        "status": upload.status,
        "encoding": upload.encoding,
        "rows_read": upload.rows_read,
        "stored": upload.rows_stored,
        "merged": upload.rows_merged,
        "rejected_count": upload.rows_rejected,
        "rejected": upload.rejected,
        "error": upload.error,
        "started_at": iso(upload.started_at),
        "finished_at": iso(upload.finished_at),
        "uploaded_by": upload.uploaded_by,
    }


def passenger_json(p: Passenger, vault: Vault, *, full: bool) -> dict[str, Any]:
    fields = vault.open(p.personal) if p.personal else {}
    name, phone, ticket = fields.get("name"), fields.get("phone"), fields.get("ticket")
    return {
        "id": p.id,
        "line": p.line,
        "name": name if full else mask_name(name),
        "phone": phone if full else mask_phone(phone),
        "ticket": ticket if full else _mask_ticket(ticket),
        "coach": p.coach,
        "seat": p.seat,
        "language": p.language,
    }


def _text(value: str | None, *, full: bool) -> str | None:
    """Free text may hold a number someone typed: masked like the logs for other roles."""
    return value if full or value is None else mask_text(value)


def inquiry_json(inquiry: Inquiry, vault: Vault, *, full: bool, now: datetime) -> dict[str, Any]:
    fields = vault.open(inquiry.personal) if inquiry.personal else {}
    phone, name = fields.get("phone"), fields.get("name")
    overdue = (
        inquiry.callback_status == "pending"
        and inquiry.callback_due is not None
        and inquiry.callback_due <= now
    )
    return {
        "id": inquiry.id,
        "incident": inquiry.incident_id,
        "group": inquiry.group_id,
        "kind": inquiry.kind,
        "name": name if full else mask_name(name),
        "phone": phone if full else mask_phone(phone),
        "question": _text(fields.get("question"), full=full),
        "answer": _text(fields.get("answer"), full=full),
        "outcome": _text(fields.get("outcome"), full=full),
        "language": inquiry.language,
        "matched_by": inquiry.matched_by,
        "callback": {
            "status": inquiry.callback_status,
            "due": iso(inquiry.callback_due),
            "overdue": overdue,
            "paged_at": iso(inquiry.overdue_at),
            "page": inquiry.page_id,
            "completed_at": iso(inquiry.completed_at),
            "completed_by": inquiry.completed_by,
        },
        "personal_data_purged": inquiry.personal is None,
        "created_at": iso(inquiry.created_at),
        "created_by": inquiry.created_by,
    }


def broadcast_json(
    b: Broadcast, counts: dict[str, int], items: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": b.id,
        "incident": b.incident_id,
        "groups": b.group_ids,
        "mode": b.mode,
        "template": b.template,
        "offer": b.offer,
        "texts": b.texts,
        "status": b.status if b.status != "sending" or counts["queued"] else "done",
        "error": mask_optional(b.error),
        "recipients": b.total,
        "counts": counts,
        "resends": b.resends,
        "created_at": iso(b.created_at),
        "created_by": b.created_by,
        "prepared_at": iso(b.prepared_at),
    }
    if items is not None:
        view["items"] = items
    return view


def recipient_json(r: BroadcastRecipient, d: Delivery | None, vault: Vault) -> dict[str, Any]:
    phone = broadcasts.phone_of(d.address, vault) if d is not None else None
    return {
        "id": r.id,
        "group": r.group_id,
        "phone": mask_phone(phone),
        "language": r.language,
        "status": d.status if d is not None else "unknown",
        "attempts": d.attempts if d is not None else 0,
        "sends": r.sends,
        "last_error": mask_optional(d.last_error) if d is not None else None,
        "finished_at": iso(d.finished_at) if d is not None else None,
    }
