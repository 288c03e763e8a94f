"""What the incident page shows: stages, notices, facts and the timeline, ready to render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from incident import response, timeline
from incident.catalog import Catalog
from incident.models import Incident, Notice
from incident.notices.reading import notices_of
from incident.playbook import Playbook, format_duration
from incident.playbook.conditions import as_datetime
from incident.security import Principal
from incident.web.console.board import Board, board
from incident.web.console.events import EventRow, describe
from incident.web.console.labels import Pair
from incident.web.console.names import Names

TIMELINE_SHOWN = 200
RUNNING = ("active", "contained")


@dataclass(frozen=True)
class StageRow:
    key: str
    title: Pair
    trigger: str
    when: str
    state: str
    due_at: datetime | None
    fired_at: datetime | None
    fire_count: int
    may_fire: bool


@dataclass(frozen=True)
class NoticeRow:
    id: str
    status: str
    mode: str
    published: int | None
    latest: int | None
    latest_kind: str | None
    latest_status: str | None
    headline: Pair
    next_update_due: datetime | None
    public_url: str | None


@dataclass(frozen=True)
class FactRow:
    name: str
    title: Pair
    value: str


def _when(playbook: Playbook, key: str) -> str:
    try:
        trigger = playbook.stage(key).when
    except KeyError:
        return ""
    if trigger.delay is not None:
        return format_duration(trigger.delay)
    if trigger.condition is not None:
        return trigger.condition.source
    return ""


def stage_rows(incident: Incident, playbook: Playbook, user: Principal) -> list[StageRow]:
    running = incident.status in RUNNING and user.may("duty_manager")
    rows = []
    for stage in incident.stages:
        try:
            title = playbook.stage(stage.key).title or {}
        except KeyError:
            title = {}
        rows.append(
            StageRow(
                key=stage.key,
                title=(
                    title.get("zh") or stage.key,
                    title.get("en") or title.get("zh") or stage.key,
                ),
                trigger=stage.trigger,
                when=_when(playbook, stage.key),
                state=stage.state,
                due_at=stage.due_at,
                fired_at=stage.fired_at,
                fire_count=stage.fire_count,
                may_fire=running
                and stage.trigger != "resolved"
                and (stage.trigger == "every" or stage.state == "pending"),
            )
        )
    return rows


def notice_row(notice: Notice) -> NoticeRow:
    latest = notice.versions[-1] if notice.versions else None
    texts: dict[str, Any] = latest.texts if latest is not None else {}
    zh = str((texts.get("zh") or {}).get("headline", ""))
    en = str((texts.get("en") or {}).get("headline", "")) or zh
    return NoticeRow(
        id=notice.id,
        status=notice.status,
        mode=notice.mode,
        published=notice.published_number,
        latest=latest.number if latest else None,
        latest_kind=latest.kind if latest else None,
        latest_status=latest.status if latest else None,
        headline=(zh, en),
        next_update_due=notice.next_update_due,
        public_url=f"/notices/{notice.id}"
        if notice.mode == "live" and notice.published_number is not None
        else None,
    )


def fact_rows(incident: Incident, playbook: Playbook, zone: Any) -> list[FactRow]:
    rows = []
    for name, value in incident.facts.items():
        spec = playbook.inputs.get(name)
        title = (spec.title if spec is not None else None) or {"zh": name, "en": name}
        shown = str(value)
        if spec is not None and spec.type == "datetime":
            moment = as_datetime(value)
            if moment is not None:
                shown = moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        rows.append(FactRow(name, (title.get("zh") or name, title.get("en") or name), shown))
    return rows


def timeline_rows(
    incident: Incident, playbook: Playbook, names: Names, *, session: Session
) -> list[EventRow]:
    """The most recent events, newest first."""
    after = max(0, incident.timeline_seq - TIMELINE_SHOWN)
    found = timeline.events(incident.id, session=session, after_seq=after)
    return [describe(e, playbook, names) for e in reversed(found)]


@dataclass(frozen=True)
class IncidentView:
    incident: Incident
    playbook: Playbook
    board: Board
    stages: list[StageRow]
    notices: list[NoticeRow]
    facts: list[FactRow]
    events: list[EventRow]

    @property
    def running(self) -> bool:
        return self.incident.status in RUNNING


def incident_view(
    incident_id: str,
    *,
    session: Session,
    catalog: Catalog,
    user: Principal,
    zone: Any,
    parts: frozenset[str] = frozenset({"board", "progress", "timeline"}),
) -> IncidentView:
    """The incident page's content (only the ``parts`` asked for are read)."""
    incident = response.get_incident(incident_id, session=session)
    playbook = response.playbook_of(incident, catalog)
    names = Names.load(session)
    return IncidentView(
        incident=incident,
        playbook=playbook,
        board=board(incident, playbook, names, session=session, user=user)
        if "board" in parts
        else Board([]),
        stages=stage_rows(incident, playbook, user) if "progress" in parts else [],
        notices=[notice_row(n) for n in notices_of(incident.id, session=session)]
        if "progress" in parts
        else [],
        facts=fact_rows(incident, playbook, zone),
        events=timeline_rows(incident, playbook, names, session=session)
        if "timeline" in parts
        else [],
    )
