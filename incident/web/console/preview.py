"""What a declaration would do, shown before it is made: the playbook simulated with the
facts typed (``incident.simulation``), told in words."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from incident.catalog import Catalog
from incident.db import Database
from incident.playbook import Playbook, format_duration
from incident.playbook.conditions import as_datetime
from incident.simulation import START, simulate
from incident.web.console.labels import TABLES, Pair
from incident.web.console.names import Names

HORIZON = timedelta(hours=4)
REPEATS_SHOWN = 2
# The simulation runs without a roster: whom a page reaches, and its escalation, are not
# known there; the console shows what is asked, not those artefacts.
HIDDEN = {"page:unanswered", "page:escalated"}


@dataclass(frozen=True)
class PreviewRow:
    offset: str
    stage: bool
    what: Pair


def _stage_title(playbook: Playbook, key: str) -> Pair:
    try:
        title = playbook.stage(key).title or {}
    except KeyError:
        title = {}
    return (title.get("zh") or key, title.get("en") or title.get("zh") or key)


def _action(step_kind: str, data: Mapping[str, Any], names: Names) -> Pair:
    params = data.get("params") or {}
    action = step_kind.split(":")[0]
    zh, en = TABLES["action"].get(action, (action, action))
    if action == "task":
        title = params.get("title") or {}
        department = names.department(str(params.get("department", "")))
        due = f"，{params['due']}内" if params.get("due") else ""
        due_en = f", within {params['due']}" if params.get("due") else ""
        return (
            f"{zh}：{title.get('zh', '')}（{department[0]}{due}）",
            f"{en}: {title.get('en') or title.get('zh', '')} ({department[1]}{due_en})",
        )
    if action == "authority_report":
        within = params.get("due")
        if not within:
            return (zh, en)
        return (f"{zh}（{within}内）", f"{en} (within {within})")
    template = params.get("template", "")
    kind = params.get("kind")
    kind_label = TABLES["notice_kind"].get(str(kind), (str(kind), str(kind))) if kind else None
    extra_zh = f"，{kind_label[0]}" if kind_label else ""
    extra_en = f", {kind_label[1]}" if kind_label else ""
    return (f"{zh}（{template}{extra_zh}）", f"{en} ({template}{extra_en})")


def preview(
    catalog: Catalog,
    playbook: Playbook,
    *,
    severity: str,
    facts: Mapping[str, Any],
    now: datetime,
    names: Names,
    roster_from: Database | None = None,
) -> list[PreviewRow]:
    """What would happen in the first hours, in order (a stage repeating every N minutes is
    shown twice, then summarised)."""
    shifted = dict(facts)
    for name, spec in playbook.inputs.items():
        moment = as_datetime(shifted.get(name)) if spec.type == "datetime" else None
        if moment is not None:
            # The simulation starts at its own fixed moment: keep times relative to now.
            shifted[name] = (START + (moment - now)).isoformat()
    simulation = simulate(
        catalog,
        playbook.id,
        severity=severity,
        facts=shifted,
        title="Preview",
        horizon=HORIZON,
        roster_from=roster_from,
    )
    rows: list[PreviewRow] = []
    fired: dict[str, int] = {}
    for step in simulation.steps:
        data = step.data
        stage = str(data.get("stage") or "")
        if step.kind in HIDDEN:
            continue
        if step.kind == "stage:fired":
            fired[stage] = fired.get(stage, 0) + 1
        if fired.get(stage, 0) > REPEATS_SHOWN:
            continue
        offset = "+" + (format_duration(step.offset) if step.offset else "0m")
        if step.kind == "stage:fired":
            zh, en = _stage_title(playbook, stage)
            when = playbook.stage(stage).when
            again = fired[stage] == REPEATS_SHOWN and when.kind == "every"
            every = format_duration(when.delay) if when.delay else ""
            rows.append(
                PreviewRow(
                    offset,
                    True,
                    (
                        f"{zh}{f'（此后每{every}一次，直到解除）' if again else ''}",
                        f"{en}{f' (then every {every} until resolved)' if again else ''}",
                    ),
                )
            )
        elif step.kind == "stage:skipped":
            zh, en = _stage_title(playbook, stage)
            rows.append(PreviewRow(offset, True, (f"跳过：{zh}", f"Skipped: {en}")))
        elif step.kind == "page:opened":
            target = str(data.get("target", ""))
            if target.startswith("duty:"):
                continue
            who = names.spec(target)
            rows.append(PreviewRow(offset, False, (f"呼叫 {who[0]}", f"Page {who[1]}")))
        elif step.kind.endswith(":requested"):
            rows.append(PreviewRow(offset, False, _action(step.kind, data, names)))
    return rows
