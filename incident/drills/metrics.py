"""What a drill (or a live incident) measured, from what the system recorded: never typed in."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from incident.catalog import Catalog
from incident.models import Delivery, Incident, Page, PageRecipient, TimelineEvent
from incident.models.notices import Notice
from incident.response import get_incident, playbook_of


def _seconds(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else round((later - earlier).total_seconds(), 3)


@dataclass
class Measure:
    """One measured duration (seconds from declaration, or from the page) with its target."""

    seconds: float | None
    target_s: float | None = None

    @property
    def on_time(self) -> bool | None:
        if self.seconds is None or self.target_s is None:
            return None
        return self.seconds <= self.target_s


@dataclass
class Metrics:
    incident_id: str
    playbook: str
    mode: str
    declared_at: datetime
    first_page_delivered: Measure
    first_ack: Measure
    first_notice: Measure
    ack_by_department: dict[str, dict[str, Any]] = field(default_factory=dict)
    ack_by_level: dict[str, dict[str, Any]] = field(default_factory=dict)
    escalations: int = 0
    unanswered_pages: int = 0
    unreachable_people: list[str] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        def measure(m: Measure) -> dict[str, Any]:
            return {"seconds": m.seconds, "target_s": m.target_s, "on_time": m.on_time}

        data = asdict(self)
        data["declared_at"] = self.declared_at.isoformat()
        for name in ("first_page_delivered", "first_ack", "first_notice"):
            data[name] = measure(getattr(self, name))
        return data


def _target(playbook_targets: dict[str, Any], name: str) -> float | None:
    value = playbook_targets.get(name)
    return None if value is None else float(value.total_seconds())


def measure(incident_id: str, *, session: Session, catalog: Catalog) -> Metrics:
    """Measure an incident from its pages, deliveries, notices, stages and timeline."""
    incident: Incident = get_incident(incident_id, session=session)
    playbook = playbook_of(incident, catalog)
    declared = incident.declared_at
    targets = dict(playbook.targets)
    first_delivered = session.scalar(
        select(func.min(Delivery.finished_at)).where(
            Delivery.incident_id == incident_id,
            Delivery.purpose == "page",
            Delivery.status == "delivered",
        )
    )
    pages = list(
        session.scalars(
            select(Page).where(Page.incident_id == incident_id).order_by(Page.created_at, Page.id)
        )
    )
    acks = [p.acked_at for p in pages if p.acked_at is not None]
    first_notice = session.scalar(
        select(func.min(Notice.first_published_at)).where(Notice.incident_id == incident_id)
    )
    metrics = Metrics(
        incident_id=incident.id,
        playbook=incident.playbook_id,
        mode=incident.mode,
        declared_at=declared,
        first_page_delivered=Measure(
            _seconds(first_delivered, declared), _target(targets, "first_page")
        ),
        first_ack=Measure(
            _seconds(min(acks), declared) if acks else None, _target(targets, "first_ack")
        ),
        first_notice=Measure(_seconds(first_notice, declared), _target(targets, "first_notice")),
    )
    by_level: dict[int, list[float]] = {}
    for page in pages:
        if page.acked_at is not None:
            waited = (page.acked_at - page.created_at).total_seconds()
            by_level.setdefault(page.level, []).append(waited)
        if page.target_kind != "department":
            continue
        entry = metrics.ack_by_department.setdefault(
            page.target_id, {"pages": 0, "acked": 0, "ack_seconds": [], "escalated_to_level": 0}
        )
        entry["pages"] += 1
        entry["escalated_to_level"] = max(entry["escalated_to_level"], page.level)
        if page.acked_at is not None:
            entry["acked"] += 1
            entry["ack_seconds"].append(round((page.acked_at - page.created_at).total_seconds(), 3))
    for entry in metrics.ack_by_department.values():
        times = entry["ack_seconds"]
        entry["first_ack_s"] = min(times) if times else None
    metrics.ack_by_level = {
        str(level): {
            "acked": len(times),
            "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3),
        }
        for level, times in sorted(by_level.items())
    }
    kinds = dict(
        session.execute(
            select(TimelineEvent.kind, func.count())
            .where(
                TimelineEvent.incident_id == incident_id,
                TimelineEvent.kind.in_(("page:escalated", "page:unanswered")),
            )
            .group_by(TimelineEvent.kind)
        ).all()
    )
    metrics.escalations = int(kinds.get("page:escalated", 0))
    metrics.unanswered_pages = int(kinds.get("page:unanswered", 0))
    metrics.unreachable_people = sorted(
        set(
            session.scalars(
                select(PageRecipient.person_id)
                .join(Page)
                .where(Page.incident_id == incident_id, PageRecipient.status == "failed")
            )
        )
    )
    for stage in incident.stages:
        spec = playbook.stage(stage.key)
        target = spec.target.total_seconds() if spec.target is not None else None
        fired = _seconds(stage.fired_at, declared) if stage.fire_count else None
        metrics.stages.append(
            {
                "stage": stage.key,
                "state": stage.state,
                "fired_after_s": fired,
                "target_s": target,
                "on_time": None if target is None or fired is None else fired <= target,
            }
        )
    return metrics
