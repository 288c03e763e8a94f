"""Durations as playbooks write them: ``90s``, ``10m``, ``1h30m``, ``2d``."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.ASCII)
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text: str) -> timedelta:
    """Read a duration such as ``90s``, ``10m``, ``1h30m`` or ``2d``.

    Units go from the largest to the smallest, each at most once; ``0s`` is allowed.
    """
    if not isinstance(text, str):
        raise ValueError(
            f"{text!r} is not a duration; write it with a unit, like 90s, 10m, 1h30m or 2d"
        )
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"'{text}' is not a duration; write it like 90s, 10m, 1h30m or 2d")
    days, hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(f"'{text}' is too long a duration (at most 999999999d)") from None


def format_duration(value: timedelta) -> str:
    """Write a duration the way `parse_duration` reads it, e.g. ``1h30m``; whole seconds only."""
    total = int(value.total_seconds())
    if total < 0:
        return "-" + format_duration(-value)
    if total == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
