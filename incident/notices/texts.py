"""What a notice says and the structured fields feeds need: checked, cleaned, defaulted.

Text is plain (never markup): every surface escapes it. Languages are keyed ``zh`` and ``en``
in requests and storage; feeds label them ``zh-CN`` and ``en``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from incident.errors import FieldError
from incident.playbook.conditions import as_datetime

LANGUAGES = ("zh", "en")
LANGUAGE_TAGS = {"zh": "zh-CN", "en": "en"}
HEADLINE_MAX = 200
BODY_MAX = 4000
INSTRUCTION_MAX = 1000
ITEMS_MAX = 50
ITEM_MAX = 64
KINDS = ("initial", "update", "all_clear", "withdrawal")

CAUSES = (
    "UNKNOWN_CAUSE",
    "OTHER_CAUSE",
    "TECHNICAL_PROBLEM",
    "STRIKE",
    "DEMONSTRATION",
    "ACCIDENT",
    "HOLIDAY",
    "WEATHER",
    "MAINTENANCE",
    "CONSTRUCTION",
    "POLICE_ACTIVITY",
    "MEDICAL_EMERGENCY",
)
EFFECTS = (
    "NO_SERVICE",
    "REDUCED_SERVICE",
    "SIGNIFICANT_DELAYS",
    "DETOUR",
    "ADDITIONAL_SERVICE",
    "MODIFIED_SERVICE",
    "OTHER_EFFECT",
    "UNKNOWN_EFFECT",
    "STOP_MOVED",
    "NO_EFFECT",
    "ACCESSIBILITY_ISSUE",
)

# The level crosswalk of DOMAIN.md.
CAP_SEVERITY = {"I": "Extreme", "II": "Severe", "III": "Moderate", "IV": "Minor"}
GTFS_SEVERITY = {"I": "SEVERE", "II": "SEVERE", "III": "WARNING", "IV": "INFO"}

# GTFS-RT cause and effect by playbook kind (reference/domain-standards.md, hazard table).
KIND_DEFAULTS: dict[str, tuple[str, str]] = {
    "mass_delay": ("OTHER_CAUSE", "SIGNIFICANT_DELAYS"),
    "equipment_failure": ("TECHNICAL_PROBLEM", "SIGNIFICANT_DELAYS"),
    "network_outage": ("TECHNICAL_PROBLEM", "OTHER_EFFECT"),
    "natural_disaster": ("WEATHER", "REDUCED_SERVICE"),
    "passenger_stranding": ("OTHER_CAUSE", "SIGNIFICANT_DELAYS"),
}
DEFAULT_CAUSE_EFFECT = ("OTHER_CAUSE", "OTHER_EFFECT")

# A body line starting with one of these is an instruction ("what to do") for CAP.
_INSTRUCTION_PREFIXES = ("请您", "请旅客", "What to do", "Please")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(text: str) -> str:
    """Normalise line ends, drop control characters (XML cannot carry them), trim."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


@dataclass(frozen=True)
class Text:
    """One language of a version."""

    headline: str
    body: str
    instruction: str = ""

    def to_json(self) -> dict[str, str]:
        return {"headline": self.headline, "body": self.body, "instruction": self.instruction}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Text:
        return cls(
            str(value.get("headline", "")),
            str(value.get("body", "")),
            str(value.get("instruction", "")),
        )

    @classmethod
    def from_rendered(cls, text: str) -> Text:
        """A rendered notice template: the first non-empty line is the headline."""
        lines = clean(text).split("\n")
        while lines and not lines[0].strip():
            lines.pop(0)
        headline = lines[0].strip() if lines else ""
        return cls(headline, "\n".join(line.rstrip() for line in lines[1:]).strip())

    def description_and_instruction(self) -> tuple[str, str]:
        """The body split for CAP: what happened and what it means, then what to do."""
        if self.instruction:
            return self.body, self.instruction
        told: list[str] = []
        asked: list[str] = []
        for line in self.body.split("\n"):
            (asked if line.strip().startswith(_INSTRUCTION_PREFIXES) else told).append(line)
        return "\n".join(told).strip(), "\n".join(asked).strip()

    def plain(self) -> str:
        return f"{self.headline}\n{self.body}".strip()


def check_texts(
    value: object, *, errors: list[FieldError], field: str = "languages", body_required: bool
) -> dict[str, Text]:
    """Check ``{zh: {headline, body, instruction?}, en: {...}}``; zh is required."""
    if not isinstance(value, Mapping):
        errors.append(FieldError(field, "must be an object with zh (required) and en"))
        return {}
    texts: dict[str, Text] = {}
    for lang in value:
        if lang not in LANGUAGES:
            errors.append(FieldError(f"{field}.{lang}", "unknown language; use zh and en"))
    for lang in LANGUAGES:
        given = value.get(lang)
        where = f"{field}.{lang}"
        if given is None:
            if lang == "zh":
                errors.append(FieldError(where, "the Chinese text is required"))
            continue
        if not isinstance(given, Mapping):
            errors.append(FieldError(where, "must be an object with headline and body"))
            continue
        parts: dict[str, str] = {}
        for name, limit, required in (
            ("headline", HEADLINE_MAX, True),
            ("body", BODY_MAX, body_required),
            ("instruction", INSTRUCTION_MAX, False),
        ):
            raw = given.get(name, "")
            if raw is None:
                raw = ""
            if not isinstance(raw, str):
                errors.append(FieldError(f"{where}.{name}", "must be text"))
                continue
            if len(raw) > limit:
                errors.append(
                    FieldError(f"{where}.{name}", f"at most {limit} characters (got {len(raw)})")
                )
                continue
            text = clean(raw)
            if name == "headline":
                text = " ".join(text.split())
            if required and not text:
                errors.append(FieldError(f"{where}.{name}", "is required"))
            parts[name] = text
        texts[lang] = Text(
            parts.get("headline", ""), parts.get("body", ""), parts.get("instruction", "")
        )
    return texts


def check_rendered(texts: Mapping[str, Text], *, errors: list[FieldError], field: str) -> None:
    """Rendered templates obey the same limits as typed text."""
    for lang, text in texts.items():
        if not text.headline:
            errors.append(FieldError(f"{field}.{lang}", "the template rendered no headline"))
        if len(text.headline) > HEADLINE_MAX:
            errors.append(FieldError(f"{field}.{lang}.headline", f"over {HEADLINE_MAX} chars"))
        if len(text.body) > BODY_MAX:
            errors.append(FieldError(f"{field}.{lang}.body", f"over {BODY_MAX} characters"))


def items(value: object) -> list[str]:
    """A fact or field naming lines, stations or trains: a list, or text split on commas."""
    if value is None:
        return []
    if isinstance(value, str):
        parts: list[object] = list(re.split(r"[,，、;；]", value))
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        parts = [value]
    seen: list[str] = []
    for part in parts:
        text = " ".join(str(part).split())
        if text and text not in seen:
            seen.append(text)
    return seen


def check_items(value: object, *, field: str, errors: list[FieldError]) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(FieldError(field, "must be a list of ids (text)"))
        return None
    found = items(value)
    if len(found) > ITEMS_MAX:
        errors.append(FieldError(field, f"at most {ITEMS_MAX} entries"))
    if any(len(v) > ITEM_MAX for v in found):
        errors.append(FieldError(field, f"each entry has at most {ITEM_MAX} characters"))
    return found


def check_choice(
    value: object, choices: tuple[str, ...], *, field: str, errors: list[FieldError]
) -> str | None:
    if value is None:
        return None
    if value not in choices:
        errors.append(FieldError(field, f"must be one of {', '.join(choices)}"))
        return None
    return str(value)


def check_time(value: object, *, field: str, errors: list[FieldError]) -> datetime | None:
    if value is None:
        return None
    moment = as_datetime(value)
    if moment is None or moment.tzinfo is None:
        errors.append(FieldError(field, "must be a date and time with an offset"))
        return None
    return moment


def facts_items(facts: Mapping[str, Any], *names: str) -> list[str]:
    """Lines (``line``/``lines``), stations or trains named by an incident's facts."""
    found: list[str] = []
    for name in names:
        for item in items(facts.get(name)):
            if item not in found:
                found.append(item)
    return found
