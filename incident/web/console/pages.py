"""Rendering console pages: one Jinja environment, the reader's language, times shown in the
centre's time zone, and the headers every console page carries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from incident.playbook import format_duration
from incident.security import Principal
from incident.web.console.labels import COLOURS, label, message, pick
from incident.web.console.session import csrf_token, pop_flashes
from incident.web.state import state_of

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LANGUAGES = ("zh", "en")
LANG_COOKIE = "incident_lang"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def clock_span(delta: timedelta) -> str:
    """``1:02:03`` or ``4:05``: how the console shows ages and countdowns (the script too)."""
    seconds = int(abs(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@pass_context
def _local(context: Context, moment: datetime | None, style: str = "short") -> str:
    """A stored UTC time in the centre's zone: ``short`` (time, with the date when not
    today), ``time`` (with seconds), ``full``, or ``input`` (for datetime-local fields)."""
    if moment is None:
        return ""
    zone: tzinfo = context["zone"]
    local = moment.astimezone(zone)
    if style == "time":
        return local.strftime("%H:%M:%S")
    if style == "input":
        return local.strftime("%Y-%m-%dT%H:%M")
    if style == "full":
        return local.strftime("%Y-%m-%d %H:%M:%S")
    today = context["now"].astimezone(zone).date()
    return local.strftime("%H:%M" if local.date() == today else "%m-%d %H:%M")


@pass_context
def _since(context: Context, moment: datetime | None) -> str:
    return "" if moment is None else clock_span(context["now"] - moment)


@pass_context
def _until(context: Context, moment: datetime | None) -> str:
    if moment is None:
        return ""
    left = moment - context["now"]
    return ("-" if left < timedelta(0) else "") + clock_span(left)


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def _duration(value: timedelta | None) -> str:
    return "" if value is None else format_duration(value)


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(local=_local, since=_since, until=_until, iso=_iso, duration=_duration)
_env.globals.update(colours=COLOURS)


def language(request: Request) -> str:
    """The reader's language: the remembered choice, else what the browser prefers."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    accept = request.headers.get("accept-language", "").strip().lower()
    return "en" if accept.startswith("en") else "zh"


def nav_items(user: Principal | None, *, demo_inbox: bool) -> list[tuple[str, str, str]]:
    """(path, zh, en) of the console's sections the user may open."""
    if user is None:
        return []
    items = [("/", "总览", "Dashboard"), ("/incidents", "事件", "Incidents")]
    if user.may("duty_manager"):
        items.append(("/declare", "启动响应", "Declare"))
    items.append(("/handover", "交接班", "Handover"))
    items += [("/playbooks", "预案", "Playbooks"), ("/roster", "人员值班", "Roster")]
    items.append(("/drills", "演练", "Drills"))
    if demo_inbox:
        items.append(("/demo/inbox", "演示收件箱", "Demo inbox"))
    items.append(("/notices", "公开公告", "Public notices"))
    return items


def render(
    request: Request,
    template: str,
    *,
    user: Principal | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a console template with what every page needs."""
    state = state_of(request)
    lang = language(request)
    partial = template.startswith("console/_")
    values: dict[str, Any] = {
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "t": lambda zh, en: zh if lang == "zh" else en,
        "lbl": lambda table, value: label(table, value, lang),
        "pick": lambda pair: pick(pair, lang),
        "msg": lambda text: message(text, lang),
        "user": user,
        "may_run": user is not None and user.may("duty_manager"),
        "csrf": csrf_token(request),
        "flashes": [] if partial else pop_flashes(request),
        "now": state.clock.now(),
        "zone": state.settings.zone,
        "timezone": state.settings.timezone,
        "path": request.url.path,
        "here": quote(request.url.path + (f"?{request.url.query}" if request.url.query else "")),
        "nav": nav_items(user, demo_inbox=state.settings.demo_inbox),
        "demo": state.settings.demo_inbox,
        "errors": {},
        "values": {},
        **context,
    }
    shown_errors = values["errors"]
    values["errors_under"] = lambda prefix: any(str(k).startswith(prefix) for k in shown_errors)
    html = _env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def see_other(url: str) -> RedirectResponse:
    """Redirect after a POST (303: the browser follows with a GET)."""
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def field_errors(errors: Any) -> dict[str, str]:
    """``{field: message}`` of a ValidationFailed's errors (the first message per field)."""
    found: dict[str, str] = {}
    for error in errors:
        found.setdefault(error.field, error.message)
    return found


def local_path(value: object, default: str = "/") -> str:
    """A path on this site to go back to (never another site's address)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 32 for c in value):
        return default
    return value


def first(mapping: Mapping[str, str], name: str) -> str:
    return mapping.get(name, "").strip()
