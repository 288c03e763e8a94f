"""Checking request fields: each check adds a FieldError and returns a usable value."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from incident.errors import FieldError
from incident.playbook.conditions import as_datetime


def text(
    body: dict[str, Any],
    name: str,
    errors: list[FieldError],
    *,
    required: bool = False,
    limit: int = 200,
) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.append(FieldError(name, "is required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be text"))
        return None
    if len(value) > limit:
        errors.append(FieldError(name, f"at most {limit} characters"))
        return None
    return value.strip()


def count(
    body: dict[str, Any], name: str, errors: list[FieldError], *, required: bool = False
) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            errors.append(FieldError(name, "is required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors.append(FieldError(name, "must be a whole number, 0 or more"))
        return None
    if value > 10_000_000:
        errors.append(FieldError(name, "is not a believable number"))
        return None
    return value


def moment(body: dict[str, Any], name: str, errors: list[FieldError]) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    found = as_datetime(value) if isinstance(value, str) else None
    if found is None:
        errors.append(
            FieldError(name, "must be a date and time with an offset, like 2026-11-22T10:30+08:00")
        )
    return found


def choice(
    body: dict[str, Any], name: str, options: tuple[str, ...], errors: list[FieldError]
) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in options:
        errors.append(FieldError(name, f"must be one of {', '.join(options)}"))
        return None
    return str(value)


def texts(body: dict[str, Any], name: str, errors: list[FieldError]) -> dict[str, str] | None:
    """Text per language ``{zh, en}``: at least one, each at most 500 characters."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not value or set(value) - {"zh", "en"}:
        errors.append(FieldError(name, "must be an object with zh and/or en texts"))
        return None
    out: dict[str, str] = {}
    for lang, item in value.items():
        if not isinstance(item, str) or not item.strip() or len(item) > 500:
            errors.append(FieldError(f"{name}.{lang}", "must be text of 1 to 500 characters"))
        else:
            out[lang] = item.strip()
    return out
