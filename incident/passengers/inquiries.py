"""Inquiries and call-backs: what a passenger asked, what we promised, and whether we did.

An inquiry is matched to a group by the caller's phone number (keyed hash) when no group is
named. A promised call-back has a deadline job: when it is still open then, the inquiry
section is paged. Complaints are inquiries of kind ``complaint``, listed for the complaints
section. What the caller said is personal data and stored sealed like the manifests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import jobs, paging, timeline
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.logs import get_logger
from incident.models import Incident, Inquiry, Passenger, PassengerGroup, new_id
from incident.passengers import checks
from incident.passengers.events import PassengerEvent
from incident.passengers.privacy import Vault, mask_phone, normalise_phone

log = get_logger(__name__)

CALLBACK_JOB = "inquiry.callback_due"
KINDS = ("inquiry", "complaint")
PAGE_ACK_WITHIN = timedelta(minutes=10)
_FIELDS = {
    "phone",
    "name",
    "question",
    "answer",
    "kind",
    "language",
    "callback",
    "callback_due",
    "callback_minutes",
    "group",
}


def record(
    incident: Incident,
    body: Mapping[str, Any],
    *,
    group: PassengerGroup | None,
    session: Session,
    now: datetime,
    actor: str | None,
    vault: Vault,
    region: str,
    callback_minutes: int,
) -> Inquiry:
    """Record an inbound inquiry (or complaint) and its promised call-back."""
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    errors: list[FieldError] = []
    data = dict(body)
    errors.extend(FieldError(n, "is not a field of an inquiry") for n in set(data) - _FIELDS)
    question = checks.text(data, "question", errors, required=True, limit=2000)
    answer = checks.text(data, "answer", errors, limit=2000)
    name = checks.text(data, "name", errors, limit=100)
    kind = checks.choice(data, "kind", KINDS, errors) or "inquiry"
    language = checks.choice(data, "language", ("zh", "en"), errors) or "zh"
    phone: str | None = None
    raw_phone = checks.text(data, "phone", errors, limit=40)
    if raw_phone:
        try:
            phone = normalise_phone(raw_phone, region)
        except ValueError as exc:
            errors.append(FieldError("phone", str(exc)))
    wants_callback = data.get("callback", phone is not None)
    if not isinstance(wants_callback, bool):
        errors.append(FieldError("callback", "must be true or false"))
        wants_callback = False
    due = checks.moment(data, "callback_due", errors)
    minutes = checks.count(data, "callback_minutes", errors)
    if wants_callback and phone is None and raw_phone is None:
        errors.append(FieldError("phone", "a call-back needs a phone number"))
    if due is not None and due <= now:
        errors.append(FieldError("callback_due", "must be in the future"))
    group_id = data.get("group")
    if group is None and group_id is not None:
        found = session.get(PassengerGroup, group_id) if isinstance(group_id, str) else None
        if found is None or found.incident_id != incident.id:
            errors.append(FieldError("group", "not a group of this incident"))
        group = found
    if errors:
        raise ValidationFailed("the inquiry is not valid", errors)
    assert question is not None
    matched_by: str | None = "given" if group is not None else None
    phone_hash = vault.phone_hash(phone) if phone else None
    if group is None and phone is not None:
        group = _group_by_phone(incident, phone, vault, session=session)
        matched_by = "phone" if group is not None else None
    callback_due = None
    if wants_callback:
        callback_due = due or now + timedelta(minutes=minutes or callback_minutes)
    inquiry = Inquiry(
        id=new_id("inq"),
        incident_id=incident.id,
        group_id=group.id if group is not None else None,
        kind=kind,
        personal=vault.seal(_personal(name=name, phone=phone, question=question, answer=answer)),
        phone_hash=phone_hash,
        language=language,
        matched_by=matched_by,
        callback_due=callback_due,
        callback_status="pending" if callback_due else "none",
        created_at=now,
        created_by=actor,
    )
    session.add(inquiry)
    session.flush()
    if callback_due is not None:
        jobs.enqueue(
            session,
            CALLBACK_JOB,
            {"inquiry_id": inquiry.id},
            key=f"callback:{inquiry.id}",
            run_at=callback_due,
            incident_id=incident.id,
        )
    timeline.append(
        incident,
        PassengerEvent.INQUIRY_RECORDED,
        {
            "inquiry": inquiry.id,
            "kind": kind,
            "group": inquiry.group_id,
            "matched_by": matched_by,
            "callback_due": callback_due.isoformat() if callback_due else None,
        },
        session=session,
        at=now,
        actor=actor,
    )
    return inquiry


def _personal(**fields: str | None) -> dict[str, str]:
    return {k: v for k, v in fields.items() if v}


def _group_by_phone(
    incident: Incident, phone: str, vault: Vault, *, session: Session
) -> PassengerGroup | None:
    """The group whose current manifest lists this number (hash under every key)."""
    uploads = [
        u
        for u in session.scalars(
            select(PassengerGroup.current_upload_id).where(
                PassengerGroup.incident_id == incident.id
            )
        )
        if u
    ]
    if not uploads:
        return None
    group_id = session.scalar(
        select(Passenger.group_id)
        .where(
            Passenger.phone_hash.in_(vault.phone_hashes(phone)),
            Passenger.upload_id.in_(uploads),
        )
        .order_by(Passenger.id)
        .limit(1)
    )
    return session.get(PassengerGroup, group_id) if group_id else None


def on_deadline(
    inquiry_id: str, *, session: Session, now: datetime, policy: paging.PagingPolicy, vault: Vault
) -> bool:
    """A call-back still open at its deadline pages the inquiry section; True if it did."""
    inquiry = session.get(Inquiry, inquiry_id)
    if inquiry is None or inquiry.callback_status != "pending" or inquiry.overdue_at is not None:
        return False
    incident = session.get(Incident, inquiry.incident_id)
    assert incident is not None
    inquiry.overdue_at = now
    masked = "-"
    if inquiry.personal:
        masked = mask_phone(vault.open(inquiry.personal).get("phone")) or "-"
    due = (
        inquiry.callback_due.astimezone(policy.zone).strftime("%H:%M")
        if inquiry.callback_due
        else ""
    )
    page = paging.open_page(
        incident,
        None,
        kind="department",
        target="inquiry",
        chain=paging.chain_for("department", "inquiry", session=session),
        template="",
        ack_within=PAGE_ACK_WITHIN,
        origin=f"callback:{inquiry.id}",
        stage_key=None,
        session=session,
        now=now,
        policy=policy,
        text={
            "zh": f"回访超时：{incident.title} 的旅客来电（{masked}）承诺 {due} 前回访，"
            f"尚未完成（{inquiry.id}）。",
            "en": f"Call-back overdue: a passenger ({masked}) who called about {incident.title} "
            f"was promised a call-back by {due} ({inquiry.id}).",
        },
    )
    inquiry.page_id = page.id if page is not None else None
    timeline.append(
        incident,
        PassengerEvent.CALLBACK_OVERDUE,
        {"inquiry": inquiry.id, "page": inquiry.page_id},
        session=session,
        at=now,
    )
    log.info("callback_overdue", inquiry_id=inquiry.id, incident_id=incident.id)
    return True


def complete(
    inquiry: Inquiry,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
    vault: Vault,
) -> Inquiry:
    """Record the call-back's outcome (and who), or change the answer or kind."""
    errors: list[FieldError] = []
    data = dict(body)
    allowed = {"callback_status", "outcome", "answer", "kind"}
    errors.extend(FieldError(n, "cannot be changed") for n in set(data) - allowed)
    status = checks.choice(data, "callback_status", ("done",), errors)
    outcome = checks.text(data, "outcome", errors, limit=2000)
    answer = checks.text(data, "answer", errors, limit=2000)
    kind = checks.choice(data, "kind", KINDS, errors)
    if status == "done" and inquiry.callback_status == "none":
        errors.append(FieldError("callback_status", "no call-back was promised"))
    if status == "done" and not outcome:
        errors.append(FieldError("outcome", "say how the call-back went"))
    if errors:
        raise ValidationFailed("the change is not valid", errors)
    if (outcome or answer) and inquiry.personal is None:
        raise Conflict("this inquiry's personal data was purged")
    incident = session.get(Incident, inquiry.incident_id)
    assert incident is not None
    if outcome or answer:
        fields = vault.open(inquiry.personal) if inquiry.personal else {}
        if outcome:
            fields["outcome"] = outcome
        if answer:
            fields["answer"] = answer
        inquiry.personal = vault.seal(fields)
    if kind is not None:
        inquiry.kind = kind
    if status == "done" and inquiry.callback_status != "done":
        inquiry.callback_status = "done"
        inquiry.completed_at = now
        inquiry.completed_by = actor
        jobs.cancel_keys(session, [f"callback:{inquiry.id}"], now=now)
        late = inquiry.callback_due is not None and now > inquiry.callback_due
        timeline.append(
            incident,
            PassengerEvent.CALLBACK_DONE,
            {"inquiry": inquiry.id, "late": late},
            session=session,
            at=now,
            actor=actor,
        )
    return inquiry


def get_inquiry(inquiry_id: str, *, session: Session) -> Inquiry:
    found = session.get(Inquiry, inquiry_id)
    if found is None:
        raise NotFound(f"no inquiry {inquiry_id!r}")
    return found


def list_inquiries(
    *,
    session: Session,
    incident_id: str | None = None,
    group_id: str | None = None,
    kind: str | None = None,
    open_only: bool = False,
    limit: int = 100,
    before: tuple[datetime, str] | None = None,
) -> list[Inquiry]:
    """Inquiries, newest first."""
    query = select(Inquiry)
    if incident_id:
        query = query.where(Inquiry.incident_id == incident_id)
    if group_id:
        query = query.where(Inquiry.group_id == group_id)
    if kind:
        query = query.where(Inquiry.kind == kind)
    if open_only:
        query = query.where(Inquiry.callback_status == "pending")
    if before is not None:
        at, ident = before
        query = query.where(
            (Inquiry.created_at < at) | ((Inquiry.created_at == at) & (Inquiry.id < ident))
        )
    query = query.order_by(Inquiry.created_at.desc(), Inquiry.id.desc()).limit(limit)
    return list(session.scalars(query))
