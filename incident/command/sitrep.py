"""The situation report of one incident: what happened, what is affected, who holds each
role, pages, notices, stranded passengers, open tasks, reports to the authority and the last
events, as one JSON-ready dict; :func:`markdown` writes it out. Counts only for passengers:
safe for every role."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import paging, timeline
from incident.command import reports, roles, tasks
from incident.command.events import CommandEvent
from incident.models import Delivery, Incident, Person, Task, TimelineEvent
from incident.notices.reading import notices_of
from incident.passengers import summary
from incident.passengers.groups import groups_of
from incident.playbook import LEVEL_NAMES_ZH, Playbook

EVENTS_SHOWN = 10
_AWAITING = ("pending", "sent", "escalated")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() / 60, 1)


def task_json(task: Task, now: datetime) -> dict[str, Any]:
    return {
        "id": task.id,
        "incident_id": task.incident_id,
        "title": task.title,
        "owner": {"department": task.department_id, "person": task.person_id},
        "status": task.status,
        "overdue": tasks.is_overdue(task, now),
        "due_at": _iso(task.due_at),
        "follow_up": task.follow_up,
        "stage": task.stage_key,
        "note": task.note,
        "created_at": _iso(task.created_at),
        "created_by": task.created_by,
        "acknowledged_at": _iso(task.acknowledged_at),
        "acknowledged_by": task.acknowledged_by,
        "done_at": _iso(task.done_at),
        "done_by": task.done_by,
        "overdue_paged_at": _iso(task.overdue_at),
        "page": task.page_id,
    }


def _affected(incident: Incident, *, session: Session) -> dict[str, list[str]]:
    lines: list[str] = []
    stations: list[str] = []
    trains: list[str] = []

    def add(into: list[str], value: object) -> None:
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item not in (None, "") and str(item) not in into:
                into.append(str(item))

    facts = incident.facts
    add(lines, facts.get("line"))
    add(stations, facts.get("station"))
    add(trains, facts.get("train"))
    for group in groups_of(incident.id, session=session):
        add(stations, group.station)
        add(trains, group.train)
    for notice in notices_of(incident.id, session=session):
        for version in notice.versions:
            add(lines, version.lines)
            add(stations, version.stations)
            add(trains, version.trains)
    return {"lines": lines, "stations": stations, "trains": trains}


def _pages(incident_id: str, *, session: Session) -> dict[str, Any]:
    pages = paging.pages_of(incident_id, session=session)
    delivered = set(
        session.scalars(
            select(Delivery.recipient_id).where(
                Delivery.incident_id == incident_id,
                Delivery.purpose == "page",
                Delivery.status == "delivered",
            )
        )
    )
    by_hand = session.scalars(
        select(TimelineEvent).where(
            TimelineEvent.incident_id == incident_id,
            TimelineEvent.kind == str(CommandEvent.REACHED_BY_HAND),
        )
    ).all()
    items = []
    for page in pages:
        reached = any(r.id in delivered for r in page.recipients)
        items.append(
            {
                "id": page.id,
                "target": f"{page.target_kind}:{page.target_id}",
                "stage": page.stage_key,
                "status": page.status,
                "level": page.level,
                "delivered": reached,
                "created_at": _iso(page.created_at),
                "acked_at": _iso(page.acked_at),
                "acked_by": page.acked_by,
                "acked_via": page.acked_via,
                "minutes_to_ack": _minutes(page.created_at, page.acked_at),
            }
        )
    return {
        "total": len(pages),
        "sent": sum(1 for i in items if i["delivered"]),
        "acknowledged": sum(1 for p in pages if p.status == "acked"),
        "awaiting": sum(1 for p in pages if p.status in _AWAITING),
        "escalated": sum(1 for p in pages if p.level > 0),
        "unreachable": sum(1 for p in pages if p.status == "unreachable"),
        "unanswered": sum(1 for p in pages if p.exhausted_at is not None),
        "reached_by_hand": [
            {"person": e.data.get("person"), "by": e.data.get("by"), "at": _iso(e.at)}
            for e in by_hand
        ],
        "items": items,
    }


def _notices(incident_id: str, *, session: Session, now: datetime) -> dict[str, Any]:
    found = notices_of(incident_id, session=session)
    dues = [n.next_update_due for n in found if n.next_update_due is not None]
    return {
        "total": len(found),
        "published": sum(1 for n in found if n.published_number is not None),
        "drafts_awaiting": sum(1 for n in found if n.versions and n.versions[-1].status == "draft"),
        "next_update_due": _iso(min(dues)) if dues else None,
        "update_overdue": any(d <= now for d in dues),
        "items": [
            {
                "id": n.id,
                "status": n.status,
                "published_version": n.published_number,
                "headline": None
                if not n.versions
                else {k: v.get("headline") for k, v in n.versions[-1].texts.items()},
                "first_published_at": _iso(n.first_published_at),
                "last_published_at": _iso(n.last_published_at),
                "next_update_due": _iso(n.next_update_due),
            }
            for n in found
        ],
    }


def situation(
    incident: Incident, playbook: Playbook, *, session: Session, now: datetime
) -> dict[str, Any]:
    """Everything the situation report says, as of ``now``."""
    people = {
        p.id: p
        for p in session.scalars(
            select(Person).where(
                Person.id.in_([r.person_id for r in roles.roles_of(incident.id, session=session)])
            )
        )
    }
    held = [
        {
            "role": r.role,
            "title": roles.TITLES[r.role],
            "person": r.person_id,
            "name": people[r.person_id].name if r.person_id in people else None,
            "department": people[r.person_id].department_id if r.person_id in people else None,
            "source": r.source,
            "since": _iso(r.assigned_at),
        }
        for r in roles.roles_of(incident.id, session=session)
    ]
    passengers = summary.summarise(incident, session=session, now=now)
    all_tasks = tasks.tasks_of(incident.id, session=session)
    open_ = [t for t in all_tasks if t.status != "done"]
    last = timeline.events(
        incident.id, session=session, after_seq=max(0, incident.timeline_seq - EVENTS_SHOWN)
    )
    filed = reports.reports_of(incident.id, session=session)
    since = incident.facts.get("stopped_since") or _iso(incident.declared_at)
    return {
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "playbook": incident.playbook_id,
            "playbook_title": playbook.title,
            "kind": playbook.kind,
            "mode": incident.mode,
            "status": incident.status,
            "declared_at": _iso(incident.declared_at),
            "declared_by": incident.declared_by,
            "resolved_at": _iso(incident.resolved_at),
        },
        "as_of": now.isoformat(),
        "what_happened": {
            "level": incident.severity,
            "level_zh": LEVEL_NAMES_ZH.get(incident.severity, ""),
            "since": since,
            "minutes_since_declared": _minutes(incident.declared_at, now),
            "facts": incident.facts,
        },
        "affected": _affected(incident, session=session),
        "roles": held,
        "pages": _pages(incident.id, session=session),
        "notices": _notices(incident.id, session=session, now=now),
        "passengers": passengers,
        "tasks": {
            "open": len(open_),
            "overdue": sum(1 for t in open_ if tasks.is_overdue(t, now)),
            "done": len(all_tasks) - len(open_),
            "items": [task_json(t, now) for t in open_],
        },
        "authority_reports": {
            "submitted": sum(1 for r in filed if r.status == "submitted"),
            "drafts": [
                {"id": r.id, "number": r.number, "kind": r.kind, "due_at": _iso(r.due_at)}
                for r in filed
                if r.status == "draft"
            ],
        },
        "events": [
            {"seq": e.seq, "kind": e.kind, "at": _iso(e.at), "actor": e.actor, "data": e.data}
            for e in last
        ],
    }


def _local(value: object, zone: ZoneInfo) -> str:
    if not isinstance(value, str):
        return "—"
    try:
        return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def _holder(role: dict[str, Any]) -> str:
    if not role["person"]:
        return "(vacant)"
    return f"{role['name']} ({role['person']})"


def markdown(report: dict[str, Any], zone: ZoneInfo) -> str:
    """The situation report as Markdown, times in the centre's time zone."""
    inc, what = report["incident"], report["what_happened"]
    pages, notices = report["pages"], report["notices"]
    p, t = report["passengers"], report["tasks"]
    affected = report["affected"]
    drill = " (DRILL 演练)" if inc["mode"] == "drill" else ""
    out = [
        f"# 情况报告 Situation report: {inc['title']}{drill}",
        "",
        f"As of {_local(report['as_of'], zone)} · `{inc['id']}` · playbook `{inc['playbook']}` "
        f"· status {inc['status']}",
        "",
        "## What happened",
        "",
        f"- Level {what['level']} ({what['level_zh']}), since {_local(what['since'], zone)}; "
        f"declared {_local(inc['declared_at'], zone)}"
        + (f" by {inc['declared_by']}" if inc["declared_by"] else ""),
        *[f"- {k}: {v}" for k, v in what["facts"].items()],
        "",
        "## Affected",
        "",
        f"- Lines: {', '.join(affected['lines']) or '—'}",
        f"- Stations: {', '.join(affected['stations']) or '—'}",
        f"- Trains: {', '.join(affected['trains']) or '—'}",
        "",
        "## Roles",
        "",
        "| role | held by | since |",
        "|---|---|---|",
        *[
            f"| {r['title']['zh']} {r['title']['en']} | {_holder(r)} | {_local(r['since'], zone)} |"
            for r in report["roles"]
        ],
        "",
        "## Pages",
        "",
        f"{pages['total']} pages: {pages['sent']} delivered, {pages['acknowledged']} "
        f"acknowledged, {pages['awaiting']} awaiting, {pages['escalated']} escalated, "
        f"{pages['unreachable']} unreachable.",
    ]
    for hand in pages["reached_by_hand"]:
        out.append(
            f"- {hand['person']} reached by hand by {hand['by']} ({_local(hand['at'], zone)})"
        )
    out += [
        "",
        "## Notices",
        "",
        f"{notices['total']} notices, {notices['published']} published; next update due "
        f"{_local(notices['next_update_due'], zone)}"
        + (" (OVERDUE)" if notices["update_overdue"] else "")
        + ".",
        "",
        "## Stranded passengers",
        "",
        f"{p['stranded']} stranded, the longest for {p['longest_minutes']} min; messages "
        f"{p['messages']['sent']} sent, {p['messages']['failed']} failed; call-backs "
        f"{p['callbacks']['due']} due, {p['callbacks']['overdue']} overdue.",
        "",
        "| where | train | station | how many | minutes stopped | needs open |",
        "|---|---|---|---|---|---|",
        *[
            f"| {g['location']} | {g['train'] or ''} | {g['station'] or ''} | {g['count']} | "
            f"{'' if g['minutes'] is None else g['minutes']} | {', '.join(g['needs_open'])} |"
            for g in p["groups"]
        ],
        "",
        f"## Open tasks ({t['open']}, {t['overdue']} overdue)",
        "",
        *[
            f"- {'**OVERDUE** ' if x['overdue'] else ''}{x['title'].get('zh', '')} / "
            f"{x['title'].get('en', '')} — {x['owner']['person'] or x['owner']['department']}"
            f", {x['status']}, due {_local(x['due_at'], zone)}"
            for x in t["items"]
        ],
        "",
        "## Last events",
        "",
        *[
            f"- {_local(e['at'], zone)} `{e['kind']}` {e['actor'] or ''}".rstrip()
            for e in report["events"]
        ],
    ]
    return "\n".join(out) + "\n"
