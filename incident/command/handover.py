"""Shift handover: for the outgoing duty manager, every incident not yet closed with what is
still open on it (pages awaiting acknowledgement, notices due, overdue call-backs, open tasks,
reports to the authority not yet submitted); the incoming duty manager acknowledges it, and
the handover is recorded with what was open at that moment."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import timeline
from incident.command import reports, sitrep, tasks
from incident.command.events import CommandEvent
from incident.errors import FieldError, NotFound, ValidationFailed
from incident.logs import get_logger
from incident.models import Handover, Incident, Inquiry, Notice, Page, new_id
from incident.playbook import level_rank

log = get_logger(__name__)

AWAITING = ("pending", "sent", "escalated", "unreachable")
NOTE_MAX = 2000


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def open_incidents(*, session: Session) -> list[Incident]:
    """Incidents not closed, most severe first, then oldest."""
    found = list(session.scalars(select(Incident).where(Incident.status != "closed")))
    return sorted(found, key=lambda i: (-level_rank(i.severity), i.declared_at, i.id))


def _incident_items(incident: Incident, *, session: Session, now: datetime) -> dict[str, Any]:
    pages = session.scalars(
        select(Page)
        .where(Page.incident_id == incident.id, Page.status.in_(AWAITING))
        .order_by(Page.created_at, Page.id)
    )
    notices = session.scalars(
        select(Notice)
        .where(Notice.incident_id == incident.id, Notice.status.in_(("draft", "current")))
        .order_by(Notice.created_at, Notice.id)
    )
    notices_due = []
    for n in notices:
        draft = bool(n.versions) and n.versions[-1].status == "draft"
        if n.next_update_due is None and not draft:
            continue
        notices_due.append(
            {
                "id": n.id,
                "status": n.status,
                "next_update_due": _iso(n.next_update_due),
                "overdue": n.next_update_due is not None and n.next_update_due <= now,
                "draft_awaiting_approval": draft,
            }
        )
    callbacks = session.scalars(
        select(Inquiry)
        .where(
            Inquiry.incident_id == incident.id,
            Inquiry.callback_status == "pending",
            Inquiry.callback_due <= now,
        )
        .order_by(Inquiry.callback_due, Inquiry.id)
    )
    return {
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity,
        "mode": incident.mode,
        "status": incident.status,
        "declared_at": _iso(incident.declared_at),
        "pending_acks": [
            {
                "id": p.id,
                "target": f"{p.target_kind}:{p.target_id}",
                "status": p.status,
                "level": p.level,
                "ack_deadline": _iso(p.ack_deadline),
            }
            for p in pages
        ],
        "notices_due": notices_due,
        "callbacks_overdue": [
            {"id": c.id, "kind": c.kind, "group": c.group_id, "callback_due": _iso(c.callback_due)}
            for c in callbacks
        ],
        "tasks_open": [
            sitrep.task_json(t, now)
            for t in tasks.open_tasks(session=session, incident_ids=[incident.id])
        ],
        "reports_due": [
            {"id": r.id, "number": r.number, "kind": r.kind, "due_at": _iso(r.due_at)}
            for r in reports.reports_of(incident.id, session=session)
            if r.status == "draft"
        ],
    }


ITEM_KINDS = ("pending_acks", "notices_due", "callbacks_overdue", "tasks_open", "reports_due")


def handover_list(*, session: Session, now: datetime) -> dict[str, Any]:
    """What the outgoing duty manager hands over, as of ``now``."""
    items = [_incident_items(i, session=session, now=now) for i in open_incidents(session=session)]
    counts = {kind: sum(len(i[kind]) for i in items) for kind in ITEM_KINDS}
    last = session.scalar(select(Handover).order_by(Handover.acknowledged_at.desc()).limit(1))
    return {
        "as_of": now.isoformat(),
        "incidents": items,
        "counts": {"incidents": len(items), **counts},
        "last_handover": None if last is None else handover_json(last, snapshot=False),
    }


def handover_json(handover: Handover, *, snapshot: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": handover.id,
        "outgoing": handover.outgoing,
        "incoming": handover.incoming,
        "note": handover.note,
        "open_items": handover.open_items,
        "acknowledged_at": _iso(handover.acknowledged_at),
    }
    if snapshot:
        view["snapshot"] = handover.snapshot
    return view


def acknowledge(
    body: Mapping[str, Any], *, session: Session, now: datetime, incoming: str
) -> Handover:
    """The incoming duty manager takes over: recorded with what is open now, and on the
    timeline of every incident handed over."""
    errors = [
        FieldError(n, "is not a field here") for n in sorted(set(body) - {"outgoing", "note"})
    ]
    outgoing, note = body.get("outgoing"), body.get("note")
    if outgoing is not None and (not isinstance(outgoing, str) or not 0 < len(outgoing) <= 100):
        errors.append(FieldError("outgoing", "the outgoing duty manager's name"))
    if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
        errors.append(FieldError("note", f"text of at most {NOTE_MAX} characters"))
    if errors:
        raise ValidationFailed("the handover is not valid", errors)
    snapshot = handover_list(session=session, now=now)
    snapshot.pop("last_handover", None)
    open_items = sum(v for k, v in snapshot["counts"].items() if k != "incidents")
    handover = Handover(
        id=new_id("hnd"),
        outgoing=outgoing,
        incoming=incoming,
        note=note,
        snapshot=snapshot,
        open_items=open_items,
        acknowledged_at=now,
    )
    session.add(handover)
    session.flush()
    for item in snapshot["incidents"]:
        incident = session.get(Incident, item["id"])
        assert incident is not None
        timeline.append(
            incident,
            CommandEvent.HANDOVER,
            {
                "handover": handover.id,
                "outgoing": outgoing,
                "incoming": incoming,
                "open": {k: len(item[k]) for k in ITEM_KINDS},
            },
            session=session,
            at=now,
            actor=incoming,
        )
    log.info("handover_acknowledged", handover_id=handover.id, open_items=open_items)
    return handover


def handovers(*, session: Session, limit: int = 50) -> list[Handover]:
    """Recorded handovers, newest first."""
    return list(
        session.scalars(
            select(Handover)
            .order_by(Handover.acknowledged_at.desc(), Handover.id.desc())
            .limit(limit)
        )
    )


def get_handover(handover_id: str, *, session: Session) -> Handover:
    found = session.get(Handover, handover_id)
    if found is None:
        raise NotFound(f"no handover {handover_id!r}")
    return found
