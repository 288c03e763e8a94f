"""What a loaded playbook holds: inputs, stages, their triggers and actions, templates."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from incident.playbook.conditions import Condition, as_datetime
from incident.playbook.durations import format_duration

BUILTIN_FACTS = frozenset({"severity", "mode", "declared_at", "title"})
"""Facts every condition and template may use besides the playbook's inputs."""

INPUT_TYPES = ("str", "int", "float", "bool", "datetime")
TRIGGERS = ("declared", "after", "every", "if", "manual", "resolved")
ACTIONS = ("page", "notice", "passenger_message", "task", "authority_report")
INCIDENT_ROLES = ("commander", "public_information", "liaison", "operations", "planning")
"""The command roles of an incident; a playbook's ``roles`` may say who fills each."""
ROLE_SOURCES = ("department", "role", "person")
NOTICE_KINDS = ("initial", "update", "all_clear")
TARGET_NAMES = (
    "first_page",
    "first_ack",
    "first_notice",
    "notice_every",
    "first_passenger_message",
)
"""The measured targets a playbook may set (drills report each against the real time)."""

_WHOLE = re.compile(r"-?[0-9]+")
_TYPE_WORDS = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "datetime": "a date and time with an offset, like 2026-11-22T10:30:00+08:00",
}


@dataclass(frozen=True)
class RosterRefs:
    """The roster's names a playbook may refer to; given, unknown ones are problems."""

    departments: frozenset[str]
    roles: frozenset[str]
    people: frozenset[str]

    def __post_init__(self) -> None:
        for name in ("departments", "roles", "people"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))


@dataclass(frozen=True)
class InputSpec:
    """A fact asked at declaration."""

    type: str
    required: bool = False
    title: dict[str, str] | None = None
    choices: list[Any] | None = None
    min: int | float | None = None
    max: int | float | None = None
    default: Any = None

    def coerce(self, name: str, value: Any) -> Any:
        """Check one JSON value for this input and return it normalised (datetimes: UTC ISO)."""
        if value is None or value == "":
            if self.required:
                raise ValueError(f"{name} is required")
            return None
        result = self._typed(value)
        if result is None:
            raise ValueError(f"{name} must be {_TYPE_WORDS[self.type]}, not {value!r}")
        if self.choices is not None and result not in self.choices:
            options = ", ".join(str(choice) for choice in self.choices)
            raise ValueError(f"{name} must be one of {options}, not {value!r}")
        if self.min is not None and result < self.min:
            raise ValueError(f"{name} must be at least {self.min}, not {value!r}")
        if self.max is not None and result > self.max:
            raise ValueError(f"{name} must be at most {self.max}, not {value!r}")
        return result

    def _typed(self, value: Any) -> Any:
        match self.type:
            case "str":
                return value if isinstance(value, str) else None
            case "bool":
                if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                    return value.strip().lower() == "true"
                return value if isinstance(value, bool) else None
            case "int":
                if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
                    return int(value.strip())
                return value if isinstance(value, int) and not isinstance(value, bool) else None
            case "float":
                return _float(value)
            case "datetime":
                moment = as_datetime(value)
                return None if moment is None else moment.astimezone(UTC).isoformat()
        return None

    def to_summary(self) -> dict[str, Any]:
        """Describe the input for the API."""
        summary: dict[str, Any] = {"type": self.type, "required": self.required}
        summary["title"] = self.title
        summary["choices"] = self.choices
        for key in ("min", "max", "default"):
            if getattr(self, key) is not None:
                summary[key] = getattr(self, key)
        return summary


def _float(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Trigger:
    """When a stage fires: kind, with a delay (after, every) or a condition (if)."""

    kind: str
    delay: timedelta | None = None
    condition: Condition | None = None

    def to_summary(self) -> str | dict[str, str]:
        """Write the trigger the way the playbook does: ``declared`` or ``{"after": "10m"}``."""
        if self.delay is not None:
            return {self.kind: format_duration(self.delay)}
        if self.condition is not None:
            return {self.kind: self.condition.source}
        return self.kind


@dataclass(frozen=True)
class Action:
    """One thing a stage does; ``params`` are checked and complete for the kind."""

    kind: str
    params: dict[str, Any]
    line: int = 0


@dataclass(frozen=True)
class StageSpec:
    id: str
    title: dict[str, str] | None
    when: Trigger
    actions: list[Action]
    target: timedelta | None = None
    line: int = 0


@dataclass(frozen=True)
class Playbook:
    """A checked playbook; ``version`` and ``digest`` are stored with every incident using it."""

    id: str
    version: int
    title: dict[str, str]
    kind: str
    description: dict[str, str] | None
    inputs: dict[str, InputSpec]
    targets: dict[str, timedelta]
    stages: list[StageSpec]
    templates: dict[str, dict[str, str]]
    source: str = field(repr=False)
    digest: str
    path: str
    roles: dict[str, dict[str, str]] = field(default_factory=dict)
    """Who fills each command role at declaration: role -> {department|role|person: id}."""
    template_lines: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    """Where each template's text starts in the file: name -> language -> 1-based line."""

    def stage(self, stage_id: str) -> StageSpec:
        """Find a stage by id; KeyError if the playbook has none."""
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)

    def validate_facts(
        self, facts: Mapping[str, Any], *, partial: bool = False
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Check facts against the inputs: the coerced facts and the (field, message) errors.

        With ``partial`` (a change of some facts) missing required facts and defaults are left.
        """
        values: dict[str, Any] = {}
        errors: list[tuple[str, str]] = []
        for name, value in facts.items():
            spec = self.inputs.get(name)
            if spec is None:
                where = "is set on the incident itself" if name in BUILTIN_FACTS else "is unknown"
                errors.append((name, f"{name} {where}, not a fact of playbook {self.id}"))
                continue
            try:
                values[name] = spec.coerce(name, value)
            except ValueError as error:
                errors.append((name, str(error)))
        if not partial:
            wrong = {name for name, _ in errors}
            for name, spec in self.inputs.items():
                if values.get(name) is None and name not in wrong:
                    if spec.default is not None:
                        values[name] = spec.default
                    elif spec.required:
                        errors.append((name, f"{name} is required"))
        return values, errors

    def to_summary(self) -> dict[str, Any]:
        """Describe the playbook for the API; JSON-serialisable."""
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "kind": self.kind,
            "description": self.description,
            "digest": self.digest,
            "inputs": {name: spec.to_summary() for name, spec in self.inputs.items()},
            "targets": {name: format_duration(value) for name, value in self.targets.items()},
            "stages": [
                {
                    "id": stage.id,
                    "title": stage.title,
                    "when": stage.when.to_summary(),
                    "actions": [
                        {"kind": action.kind, "params": _json_safe(action.params)}
                        for action in stage.actions
                    ],
                    "target": None if stage.target is None else format_duration(stage.target),
                }
                for stage in self.stages
            ],
            "roles": {name: dict(source) for name, source in self.roles.items()},
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(item) for item in value]
    return value
