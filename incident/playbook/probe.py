"""Try a playbook's templates and conditions on facts with and without each optional input.

Loading checks the names a template uses; only rendering shows a template that works when an
optional fact is given and fails when it is not (``{% if expected_delay_min >= 60 %}`` on a
missing fact compares None with a number). ``playbooks check`` and ``playbooks simulate`` run
this; the engine never fails on it (a failing page goes out with a plain text).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from incident.errors import Problem
from incident.playbook.conditions import LEVELS
from incident.playbook.schema import InputSpec, Playbook
from incident.playbook.templates import LANGUAGES, render_template

PROBE_NOW = datetime(2026, 1, 1, 8, 30, tzinfo=UTC)
_DECLARED_AT = PROBE_NOW - timedelta(minutes=30)


def plausible(spec: InputSpec) -> Any:
    """A value of the input's type that its checks accept (as stored on an incident)."""
    if spec.choices:
        return spec.choices[0]
    if spec.default is not None:
        return spec.default
    if spec.type in ("int", "float"):
        value: int | float = spec.min if spec.min is not None else 1
        if spec.max is not None and value > spec.max:
            value = spec.max
        return float(value) if spec.type == "float" else int(value)
    if spec.type == "bool":
        return True
    if spec.type == "datetime":
        return _DECLARED_AT.isoformat()
    return "X1"


def _scenarios(playbook: Playbook) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """(the optional inputs left out, the facts): every input given, then each optional
    input left out, then all of them left out."""
    every = {name: plausible(spec) for name, spec in playbook.inputs.items()}
    optional = [name for name, spec in playbook.inputs.items() if not spec.required]
    yield [], every
    for name in optional:
        yield [name], {k: v for k, v in every.items() if k != name}
    if len(optional) > 1:
        yield optional, {k: v for k, v in every.items() if k not in optional}


def _context(playbook: Playbook, facts: dict[str, Any], severity: str) -> dict[str, Any]:
    return {
        **facts,
        "incident_id": "inc_probe",
        "title": playbook.title.get("zh", playbook.id),
        "severity": severity,
        "mode": "live",
        "declared_at": _DECLARED_AT,
        "now": PROBE_NOW,
        "ack_url": "https://incident.example/ack/probe",
        "person_name": "X",
        "stage": playbook.stages[0].id if playbook.stages else None,
    }


def _when(left_out: list[str]) -> str:
    if not left_out:
        return "fails"
    if len(left_out) == 1:
        return f"fails when optional input {left_out[0]} is absent"
    return f"fails when optional inputs {', '.join(left_out)} are absent"


def rendering_problems(playbook: Playbook) -> list[Problem]:
    """Each template (per language) and each ``if`` condition that fails on some facts, at
    its line: ``template 'X' (zh) fails when optional input Y is absent: <error>``."""
    problems: list[Problem] = []
    failed: set[tuple[str, str]] = set()
    for left_out, facts in _scenarios(playbook):
        for severity in LEVELS:
            context = _context(playbook, facts, severity)
            for name, texts in playbook.templates.items():
                for lang in (lang for lang in LANGUAGES if lang in texts):
                    if (name, lang) in failed:
                        continue
                    try:
                        render_template(playbook, name, lang, context, tz=UTC)
                    except Exception as exc:
                        failed.add((name, lang))
                        line = playbook.template_lines.get(name, {}).get(lang, 0)
                        problems.append(
                            Problem(
                                playbook.path,
                                line,
                                f"template '{name}' ({lang}) {_when(left_out)}: {exc}",
                            )
                        )
            for stage in playbook.stages:
                condition = stage.when.condition
                if condition is None or ("if", stage.id) in failed:
                    continue
                try:
                    condition.evaluate(context, PROBE_NOW)
                    condition.next_change(context, PROBE_NOW)
                except Exception as exc:
                    failed.add(("if", stage.id))
                    problems.append(
                        Problem(
                            playbook.path,
                            stage.line,
                            f"stage '{stage.id}': condition {condition.source!r} "
                            f"{_when(left_out)}: {exc}",
                        )
                    )
    return sorted(problems, key=lambda problem: problem.line)
