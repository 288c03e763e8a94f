"""Timeline events in words, for the incident page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from incident.models import TimelineEvent
from incident.playbook import Playbook
from incident.web.console.labels import TABLES, Pair
from incident.web.console.names import Names


@dataclass(frozen=True)
class EventRow:
    seq: int
    at: datetime
    kind: str
    actor: str | None
    what: Pair
    detail: Pair


def _stage(playbook: Playbook, key: object) -> Pair:
    text = str(key)
    try:
        title = playbook.stage(text).title or {}
    except KeyError:
        title = {}
    return (title.get("zh") or text, title.get("en") or title.get("zh") or text)


def _named(table: str, value: object) -> Pair:
    return TABLES[table].get(str(value), (str(value), str(value)))


def _facts(value: object) -> str:
    if not isinstance(value, dict):
        return ""
    return ", ".join(f"{k}={v}" for k, v in value.items())


def _detail(event: TimelineEvent, playbook: Playbook, names: Names) -> Pair:
    data: dict[str, Any] = event.data or {}
    kind = event.kind
    if "stage" in data and kind.startswith("stage:"):
        zh, en = _stage(playbook, data["stage"])
        reason = data.get("reason")
        return (
            f"{zh}{f'（{reason}）' if reason else ''}",
            f"{en}{f' ({reason})' if reason else ''}",
        )
    if kind in ("incident:severity_changed", "incident:status_changed"):
        table = "severity" if kind.endswith("severity_changed") else "incident"
        before, after = _named(table, data.get("from")), _named(table, data.get("to"))
        return (f"{before[0]} → {after[0]}", f"{before[1]} → {after[1]}")
    if kind == "incident:facts_changed":
        old_facts, new_facts = data.get("from") or {}, data.get("to") or {}
        changed = {k: v for k, v in new_facts.items() if old_facts.get(k) != v}
        removed = [k for k in old_facts if k not in new_facts]
        text = ", ".join([_facts(changed), *(f"-{k}" for k in removed)]).strip(", ")
        return (text, text)
    if kind == "incident:declared":
        level = _named("severity", data.get("severity"))
        mode = _named("mode", data.get("mode"))
        facts = _facts(data.get("facts"))
        return (f"{level[0]} · {mode[0]} · {facts}", f"{level[1]} · {mode[1]} · {facts}")
    if kind == "page:opened":
        zh, en = names.spec(str(data.get("target", "")))
        return (zh, en)
    if kind in ("page:acked", "page:declined", "page:unreachable"):
        who = names.person(data.get("person")) or (event.actor or "")
        via = _named("via", data.get("via")) if data.get("via") else ("", "")
        return (
            f"{who}{f'（{via[0]}）' if via[0] else ''}",
            f"{who}{f' ({via[1]})' if via[1] else ''}",
        )
    if kind == "page:escalated":
        number = int(data.get("from_level", 0)) + 2
        return (
            f"升至第{number}级（{data.get('reason')}）",
            f"to level {number} ({data.get('reason')})",
        )
    if kind.startswith("notice:"):
        headline = data.get("headline") or {}
        version = data.get("version")
        text_zh = headline.get("zh", "") if isinstance(headline, dict) else ""
        text_en = headline.get("en", text_zh) if isinstance(headline, dict) else ""
        tag = f"v{version} " if version is not None else ""
        reason = str(data.get("reason", ""))
        return (f"{tag}{text_zh or reason}".strip(), f"{tag}{text_en or reason}".strip())
    if kind == "role:assigned":
        role = _named("command_role", data.get("role"))
        was = names.person(data.get("from")) or "—"
        now = names.person(data.get("to"))
        return (f"{role[0]}：{was} → {now}", f"{role[1]}: {was} → {now}")
    if kind == "job:failed":  # a job that ran out of attempts (#14): what did not run, and why
        subject = str(data.get("stage") or data.get("target") or data.get("kind", ""))
        error = str(data.get("error", ""))
        return (f"{subject}：{error}", f"{subject}: {error}")
    if kind == "contact:reached_by_hand":
        who, by = names.person(data.get("person")), str(data.get("by", ""))
        return (f"{who}（{by} 当面通知）", f"{who} (by {by})")
    if kind.endswith(":requested"):
        params = data.get("params") or {}
        title = params.get("title") if isinstance(params, dict) else None
        if isinstance(title, dict):
            return (str(title.get("zh", "")), str(title.get("en") or title.get("zh", "")))
        template = str(params.get("template", "")) if isinstance(params, dict) else ""
        return (template, template)
    return ("", "")


def describe(event: TimelineEvent, playbook: Playbook, names: Names) -> EventRow:
    kind = event.kind
    what = TABLES["event"].get(kind, (kind, kind))
    return EventRow(event.seq, event.at, kind, event.actor, what, _detail(event, playbook, names))
