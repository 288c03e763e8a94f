"""Message templates: plain-text Jinja2 in a sandbox, every name checked when a playbook loads."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from datetime import tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from incident.playbook.conditions import as_datetime

if TYPE_CHECKING:
    from incident.playbook.schema import Playbook

LANGUAGES = ("zh", "en")
LEVEL_NAMES_ZH = {"I": "特别重大", "II": "重大", "III": "较大", "IV": "一般"}
LEVEL_COLOURS = {"I": "red", "II": "orange", "III": "yellow", "IV": "blue"}

TEMPLATE_BUILTINS = frozenset(
    {
        "incident_id",
        "title",
        "severity",
        "severity_zh",
        "level_colour",
        "playbook_title",
        "mode",
        "is_drill",
        "declared_at",
        "now",
        "ack_url",
        "person_name",
        "stage",
    }
)
"""Names every template may use besides the playbook's inputs."""

PAGE_ONLY_BUILTINS = frozenset({"ack_url", "person_name"})
"""Names only templates used by page actions may use: a notice has no one to acknowledge."""

_TZ = "_tz"  # where render_template leaves the time zone for the time filters


@pass_context
def _hhmm(context: Context, value: Any) -> str:
    return _strftime(context, value, "%H:%M")


@pass_context
def _datetime(context: Context, value: Any) -> str:
    return _strftime(context, value, "%Y-%m-%d %H:%M")


def _strftime(context: Context, value: Any, pattern: str) -> str:
    moment = as_datetime(value)
    if moment is None:
        return "" if value is None else str(value)
    zone = context.get(_TZ)
    return (moment.astimezone(zone) if zone is not None else moment).strftime(pattern)


def _environment() -> SandboxedEnvironment:
    environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    environment.filters["hhmm"] = _hhmm
    environment.filters["datetime"] = _datetime
    return environment


_ENVIRONMENT = _environment()


@lru_cache(maxsize=512)
def _compiled(text: str) -> Template:
    return _ENVIRONMENT.from_string(text)


def template_problems(text: str, allowed: Collection[str]) -> list[tuple[int, str]]:
    """Find what is wrong with a template: (line within the text, 0-based; message) pairs."""
    try:
        tree = _ENVIRONMENT.parse(text)
        _ENVIRONMENT.compile(tree)  # unknown filters and tests show only when compiling
    except TemplateSyntaxError as error:
        return [((error.lineno or 1) - 1, f"template syntax error: {error.message}")]
    problems = []
    for name in sorted(meta.find_undeclared_variables(tree) - set(allowed)):
        message = f"template uses '{name}', which is neither an input nor a template built-in"
        if name in PAGE_ONLY_BUILTINS:
            message = f"template uses '{name}', which only templates of page actions may use"
        elif close := difflib.get_close_matches(name, sorted(allowed), n=1):
            message += f" (did you mean '{close[0]}'?)"
        problems.append((_line_of(text, name), message))
    return problems


def _line_of(text: str, name: str) -> int:
    word = re.compile(rf"\b{re.escape(name)}\b")
    for number, line in enumerate(text.splitlines()):
        if word.search(line):
            return number
    return 0


def render_template(
    playbook: Playbook,
    name: str,
    lang: str,
    context: Mapping[str, Any],
    *,
    tz: tzinfo | None = None,
) -> str:
    """Render a playbook's template in ``lang`` ("zh" or "en"; en falls back to zh).

    Inputs missing from ``context`` render as None; ``playbook_title``, ``severity_zh``,
    ``level_colour`` and ``is_drill`` are derived when not given; ``tz`` is the time zone the
    ``hhmm`` and ``datetime`` filters show times in. KeyError if the template does not exist.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"'{lang}' is not a language of the playbooks; use zh or en")
    texts = playbook.templates[name]
    severity = context.get("severity")
    values: dict[str, Any] = dict.fromkeys(playbook.inputs)
    values.update(
        playbook_title=playbook.title.get(lang) or playbook.title["zh"],
        severity_zh=LEVEL_NAMES_ZH.get(severity) if isinstance(severity, str) else None,
        level_colour=LEVEL_COLOURS.get(severity) if isinstance(severity, str) else None,
        is_drill=context.get("mode") == "drill",
    )
    values.update(context)
    values[_TZ] = tz
    return _compiled(texts.get(lang) or texts["zh"]).render(values).strip()
