"""Forms made from a playbook's inputs: one field per fact, read back into facts.

A field is named ``facts.<input>`` so that the engine's errors (``facts.<input>``) land next
to it. Times are typed in the centre's time zone and stored with their offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from incident.errors import FieldError
from incident.playbook import InputSpec, Playbook
from incident.playbook.conditions import as_datetime

PREFIX = "facts."


@dataclass(frozen=True)
class FactField:
    """How one input is asked: ``widget`` is text, number, select, bool or datetime."""

    name: str
    fact: str
    widget: str
    title: dict[str, str]
    required: bool
    choices: list[str]
    min: int | float | None
    max: int | float | None
    step: str
    type: str


def _widget(spec: InputSpec) -> str:
    if spec.choices:
        return "select"
    return {"int": "number", "float": "number", "bool": "bool", "datetime": "datetime"}.get(
        spec.type, "text"
    )


def fact_fields(playbook: Playbook) -> list[FactField]:
    """The playbook's inputs as form fields, required ones first."""
    fields = [
        FactField(
            name=PREFIX + name,
            fact=name,
            widget=_widget(spec),
            title=spec.title or {"zh": name, "en": name},
            required=spec.required,
            choices=[str(c) for c in spec.choices or []],
            min=spec.min,
            max=spec.max,
            step="1" if spec.type == "int" else "any",
            type=spec.type,
        )
        for name, spec in playbook.inputs.items()
    ]
    return sorted(fields, key=lambda f: not f.required)


def local_time(raw: str, zone: tzinfo) -> str | None:
    """A typed time (``2026-11-22T10:30`` from a datetime-local field, or ISO with an
    offset) as ISO 8601 with an offset; None when it is not a time."""
    try:
        moment = datetime.fromisoformat(raw.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()


def facts_from_form(
    playbook: Playbook, form: Mapping[str, str], zone: tzinfo, *, errors: list[FieldError]
) -> dict[str, Any]:
    """The facts a form gives (empty fields left out); unreadable times are errors."""
    facts: dict[str, Any] = {}
    for name, spec in playbook.inputs.items():
        raw = form.get(PREFIX + name, "").strip()
        if not raw:
            continue
        if spec.type == "datetime":
            moment = local_time(raw, zone)
            if moment is None:
                errors.append(FieldError(PREFIX + name, "a date and time, like 2026-11-22 10:30"))
                continue
            facts[name] = moment
        else:
            facts[name] = raw
    return facts


def form_values(playbook: Playbook, facts: Mapping[str, Any], zone: tzinfo) -> dict[str, str]:
    """An incident's facts as the form shows them (times in the centre's zone)."""
    values: dict[str, str] = {}
    for name, spec in playbook.inputs.items():
        value = facts.get(name)
        if value is None:
            continue
        if spec.type == "datetime":
            moment = as_datetime(value)
            values[PREFIX + name] = (
                "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M")
            )
        elif spec.type == "bool":
            values[PREFIX + name] = "true" if value else "false"
        else:
            values[PREFIX + name] = str(value)
    return values


def changed_facts(
    playbook: Playbook,
    facts: Mapping[str, Any],
    form: Mapping[str, str],
    zone: tzinfo,
    *,
    errors: list[FieldError],
) -> dict[str, Any]:
    """What a facts form changes: new values, and ``None`` for facts it empties."""
    given = facts_from_form(playbook, form, zone, errors=errors)
    shown = form_values(playbook, facts, zone)
    changes: dict[str, Any] = {}
    for name in playbook.inputs:
        field = PREFIX + name
        if field not in form or any(e.field == field for e in errors):
            continue
        if name in given:
            if form.get(field, "").strip() != shown.get(field, ""):
                changes[name] = given[name]
        elif name in facts:
            changes[name] = None
    return changes
