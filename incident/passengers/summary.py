"""The passenger picture of one incident: who is stranded where and for how long, what they
need, what they were told, and which call-backs are due or late."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from incident.models import Broadcast, BroadcastRecipient, Delivery, Incident, Inquiry
from incident.passengers.broadcasts import _STATUS_GROUPS
from incident.passengers.groups import NEEDS, groups_of


def summarise(incident: Incident, *, session: Session, now: datetime) -> dict[str, Any]:
    """Counts only: safe for every role."""
    groups = groups_of(incident.id, session=session)
    stranded = [g for g in groups if g.status == "stranded"]
    needs: dict[str, dict[str, int]] = {n: {"open": 0, "met": 0} for n in NEEDS}
    for group in groups:
        for need, state in group.needs.items():
            if need in needs and state in ("open", "met"):
                needs[need][state] += 1
    vulnerable: dict[str, int] = {}
    for group in stranded:
        for kind, n in group.vulnerable.items():
            vulnerable[kind] = vulnerable.get(kind, 0) + int(n)
    messages = {"queued": 0, "sent": 0, "failed": 0}
    rows = session.execute(
        select(Delivery.status, func.count())
        .join(BroadcastRecipient, BroadcastRecipient.delivery_id == Delivery.id)
        .join(Broadcast, Broadcast.id == BroadcastRecipient.broadcast_id)
        .where(Broadcast.incident_id == incident.id)
        .group_by(Delivery.status)
    ).all()
    for status, n in rows:
        messages[_STATUS_GROUPS.get(str(status), "queued")] += int(n)
    broadcasts = int(
        session.scalar(
            select(func.count()).select_from(Broadcast).where(Broadcast.incident_id == incident.id)
        )
        or 0
    )
    pending = session.scalars(
        select(Inquiry.callback_due).where(
            Inquiry.incident_id == incident.id, Inquiry.callback_status == "pending"
        )
    ).all()
    kinds = dict(
        session.execute(
            select(Inquiry.kind, func.count())
            .where(Inquiry.incident_id == incident.id)
            .group_by(Inquiry.kind)
        ).all()
    )
    earliest = min((g.since for g in stranded), default=None)
    return {
        "incident": incident.id,
        "as_of": now.isoformat(),
        "stranded": sum(g.count for g in stranded),
        "stranded_since": earliest.isoformat() if earliest else None,
        "longest_minutes": int((now - earliest).total_seconds() // 60) if earliest else 0,
        "vulnerable": vulnerable,
        "groups": [
            {
                "id": g.id,
                "train": g.train,
                "station": g.station,
                "location": g.location,
                "count": g.count,
                "status": g.status,
                "since": g.since.isoformat(),
                "minutes": int((now - g.since).total_seconds() // 60)
                if g.status == "stranded"
                else None,
                "needs_open": sorted(n for n, s in g.needs.items() if s == "open"),
                "needs_met": sorted(n for n, s in g.needs.items() if s == "met"),
            }
            for g in groups
        ],
        "needs": needs,
        "messages": {**messages, "broadcasts": broadcasts},
        "callbacks": {
            "due": sum(1 for d in pending if d is not None and d > now),
            "overdue": sum(1 for d in pending if d is not None and d <= now),
            "done": int(
                session.scalar(
                    select(func.count())
                    .select_from(Inquiry)
                    .where(Inquiry.incident_id == incident.id, Inquiry.callback_status == "done")
                )
                or 0
            ),
        },
        "inquiries": {
            "inquiry": int(kinds.get("inquiry", 0)),
            "complaint": int(kinds.get("complaint", 0)),
        },
    }
