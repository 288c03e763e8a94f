"""The acknowledgement board: every page of an incident, who it reached at which level, over
which channel, and who acknowledged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import paging
from incident.models import Delivery, Incident
from incident.playbook import Playbook
from incident.privacy import mask_optional
from incident.security import Principal
from incident.web.console.labels import Pair
from incident.web.console.names import Names

OPEN = ("pending", "sent", "escalated")


@dataclass(frozen=True)
class DeliveryRow:
    channel: str
    status: str
    attempts: int
    last_error: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class RecipientRow:
    person_id: str
    name: str
    level: int
    status: str
    responded_at: datetime | None
    deliveries: list[DeliveryRow]


@dataclass(frozen=True)
class PageCard:
    id: str
    target_kind: str
    target: Pair
    stage: Pair | None
    status: str
    level: int
    levels: int
    level_name: Pair
    created_at: datetime
    ack_deadline: datetime | None
    acked_at: datetime | None
    acked_by: str
    acked_via: str | None
    unanswered_at: datetime | None
    recipients: list[RecipientRow]
    may_ack: bool

    @property
    def open(self) -> bool:
        return self.status in OPEN


@dataclass(frozen=True)
class Board:
    cards: list[PageCard]

    @property
    def awaiting(self) -> int:
        return sum(1 for c in self.cards if c.open)

    @property
    def acked(self) -> int:
        return sum(1 for c in self.cards if c.status == "acked")

    @property
    def unreachable(self) -> int:
        return sum(1 for c in self.cards if c.status == "unreachable")


def _stage_title(playbook: Playbook, key: str | None) -> Pair | None:
    if key is None:
        return None
    try:
        title = playbook.stage(key).title
    except KeyError:
        return (key, key)
    if not title:
        return (key, key)
    return (title.get("zh") or key, title.get("en") or title.get("zh") or key)


def board(
    incident: Incident,
    playbook: Playbook,
    names: Names,
    *,
    session: Session,
    user: Principal,
) -> Board:
    """The incident's pages, those still waiting for an answer first."""
    pages = paging.pages_of(incident.id, session=session)
    deliveries: dict[int, list[DeliveryRow]] = {}
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.incident_id == incident.id, Delivery.purpose == "page")
        .order_by(Delivery.id)
    )
    for d in rows:
        if d.recipient_id is not None:
            deliveries.setdefault(d.recipient_id, []).append(
                DeliveryRow(
                    d.channel, d.status, d.attempts, mask_optional(d.last_error), d.finished_at
                )
            )
    running = incident.status in ("active", "contained")
    cards = []
    for page in pages:
        paged = {r.person_id for r in page.recipients}
        own = user.role == "staff" and user.person_id is not None and user.person_id in paged
        may_ack = running and (user.may("duty_manager") or own)
        level_spec = page.chain[page.level] if page.level < len(page.chain) else None
        cards.append(
            PageCard(
                id=page.id,
                target_kind=page.target_kind,
                target=names.target(page.target_kind, page.target_id),
                stage=_stage_title(playbook, page.stage_key),
                status=page.status,
                level=page.level,
                levels=len(page.chain),
                level_name=names.level(level_spec) if level_spec is not None else ("", ""),
                created_at=page.created_at,
                ack_deadline=page.ack_deadline,
                acked_at=page.acked_at,
                acked_by=names.person(page.acked_by),
                acked_via=page.acked_via,
                unanswered_at=page.exhausted_at,
                recipients=[
                    RecipientRow(
                        r.person_id,
                        names.person(r.person_id),
                        r.level,
                        r.status,
                        r.responded_at,
                        deliveries.get(r.id, []),
                    )
                    for r in page.recipients
                ],
                may_ack=may_ack and page.status in OPEN,
            )
        )
    cards.sort(key=lambda c: (not c.open, c.created_at))
    return Board(cards)
