"""Public notices: the page, Atom, CAP 1.2 and GTFS-Realtime; no login, live notices only.

Every surface is rendered once per publication generation and minute and then served from
memory (see ``incident.notices.cache``); drafts and drills never reach any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident.models import Notice
from incident.notices import cap, cap_sender, feeds, gtfs, reading
from incident.notices import generation as read_generation
from incident.notices.cache import FeedCache, Rendered, stamp_of
from incident.notices.texts import Text
from incident.playbook import LEVEL_COLOURS, LEVEL_NAMES_ZH
from incident.web.problems import BadRequest
from incident.web.state import AppState, state_of

HTML = "text/html; charset=utf-8"
CACHE_CONTROL = "public, max-age=15"
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(("html",), default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
STATUS_LABELS = {
    "current": ("当前", "Current"),
    "closed": ("已解除", "Closed"),
    "withdrawn": ("已撤回", "Withdrawn"),
}
KIND_LABELS = {
    "initial": ("首次公告", "First notice"),
    "update": ("更新", "Update"),
    "all_clear": ("解除", "All clear"),
    "withdrawal": ("撤回", "Withdrawn"),
}


def cache_of(request: Request) -> FeedCache:
    """The app's cache of public surfaces (made on first use)."""
    app_state = request.app.state
    cache = getattr(app_state, "notice_cache", None)
    if cache is None:
        cache = FeedCache(state_of(request).settings.notice_cache_seconds)
        app_state.notice_cache = cache
    assert isinstance(cache, FeedCache)
    return cache


def _public_url(state: AppState) -> str:
    return state.settings.public_url.rstrip("/")


async def _serve(
    request: Request, key: str, render: Callable[[Session, datetime], Rendered]
) -> Response:
    state = state_of(request)
    cache = cache_of(request)
    now = state.clock.now()
    generation, epoch = cache.known_generation()
    if generation is None:

        def check() -> int:
            with state.db.reading() as session:
                return read_generation(session=session)

        generation = await run_in_threadpool(check)
        cache.learn(generation, epoch)
    stamp = stamp_of(generation, now)
    rendered = cache.lookup(key, stamp)
    if rendered is None:

        def build() -> Rendered:
            with state.db.reading() as session:
                return render(session, now)

        rendered = await run_in_threadpool(cache.fill, key, stamp, build)
    headers = {"ETag": rendered.etag, "Cache-Control": CACHE_CONTROL}
    if request.headers.get("if-none-match") == rendered.etag:
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)


# -- the page ------------------------------------------------------------------------------
def _local(moment: datetime | None, zone: tzinfo) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _card(notice: Notice, zone: tzinfo, *, history: bool) -> dict[str, Any]:
    version = reading.public_version(notice)
    texts = {lang: Text.from_json(value) for lang, value in version.texts.items()}
    card: dict[str, Any] = {
        "id": notice.id,
        "status": notice.status,
        "status_label": STATUS_LABELS.get(notice.status, (notice.status, notice.status)),
        "kind_label": KIND_LABELS[version.kind],
        "level": version.level,
        "level_zh": LEVEL_NAMES_ZH.get(version.level, ""),
        "colour": LEVEL_COLOURS.get(version.level, "blue"),
        "number": version.number,
        "published_at": _local(version.published_at, zone),
        "first_published_at": _local(notice.first_published_at, zone),
        "next_update_due": _local(notice.next_update_due, zone)
        if notice.status == "current"
        else None,
        "zh": texts.get("zh"),
        "en": texts.get("en"),
        "lines": version.lines,
        "stations": version.stations,
        "trains": version.trains,
    }
    if history:
        card["history"] = [
            {
                "number": v.number,
                "kind_label": KIND_LABELS[v.kind],
                "published_at": _local(v.published_at, zone),
                "zh": Text.from_json(v.texts["zh"]).headline,
                "en": Text.from_json(v.texts["en"]).headline if "en" in v.texts else "",
            }
            for v in reversed(reading.published_versions(notice))
            if v.number != version.number
        ]
    return card


def _page(template: str, **context: Any) -> Rendered:
    html = _templates.get_template(template).render(**context)
    return Rendered.of(html.encode(), HTML)


async def notices_page(request: Request) -> Response:
    """The public page of current and recent notices, in Chinese and English."""
    state = state_of(request)
    zone = state.settings.zone

    def render(session: Session, now: datetime) -> Rendered:
        found = reading.public_notices(session=session, now=now)
        cards = [_card(n, zone, history=False) for n in found]
        return _page(
            "notices.html",
            current=[c for c in cards if c["status"] == "current"],
            recent=[c for c in cards if c["status"] != "current"],
            updated=_local(now, zone),
            timezone=state.settings.timezone,
        )

    return await _serve(request, "page", render)


async def notice_page(request: Request) -> Response:
    """One public notice with its earlier versions."""
    state = state_of(request)
    zone = state.settings.zone
    notice_id = request.path_params["notice_id"]

    def render(session: Session, now: datetime) -> Rendered:
        notice = reading.public_notice(notice_id, session=session)
        return _page(
            "notice.html",
            card=_card(notice, zone, history=True),
            updated=_local(now, zone),
            timezone=state.settings.timezone,
        )

    return await _serve(request, f"page:{notice_id}", render)


# -- feeds ---------------------------------------------------------------------------------
async def notices_atom(request: Request) -> Response:
    """Atom feed of published notices."""
    state = state_of(request)

    def render(session: Session, now: datetime) -> Rendered:
        found = reading.public_notices(session=session, now=now)
        body = feeds.atom(found, public_url=_public_url(state), now=now)
        return Rendered.of(body, f"{feeds.ATOM_MEDIA_TYPE}; charset=utf-8")

    return await _serve(request, "atom", render)


async def cap_index(request: Request) -> Response:
    """Atom index of the current CAP 1.2 messages."""
    state = state_of(request)
    sender = _sender(state)

    def render(session: Session, now: datetime) -> Rendered:
        found = reading.public_notices(session=session, now=now)
        body = feeds.cap_index(found, public_url=_public_url(state), sender=sender, now=now)
        return Rendered.of(body, f"{feeds.ATOM_MEDIA_TYPE}; charset=utf-8")

    return await _serve(request, "cap-index", render)


def _sender(state: AppState) -> str:
    return cap_sender(state.settings)


async def notice_cap(request: Request) -> Response:
    """CAP 1.2 message of the notice's latest published version."""
    state = state_of(request)
    notice_id = request.path_params["notice_id"]
    sender = _sender(state)

    def render(session: Session, now: datetime) -> Rendered:
        notice = reading.public_notice(notice_id, session=session)
        version = reading.public_version(notice)
        body = cap.alert(notice, version, sender=sender, public_url=_public_url(state))
        return Rendered.of(body, f"{cap.MEDIA_TYPE}; charset=utf-8")

    return await _serve(request, f"cap:{notice_id}", render)


async def gtfs_alerts(request: Request) -> Response:
    """GTFS-Realtime Service Alerts of the live notices in force (``?format=json``)."""
    state = state_of(request)
    wanted = request.query_params.get("format", "pb")
    if wanted not in ("pb", "json"):
        raise BadRequest("format must be pb or json")

    def render(session: Session, now: datetime) -> Rendered:
        found = reading.active_notices(session=session)
        message = gtfs.feed(found, now=now, public_url=_public_url(state))
        if wanted == "json":
            return Rendered.of(gtfs.to_json(message).encode(), "application/json")
        return Rendered.of(message.SerializeToString(), gtfs.MEDIA_TYPE)

    return await _serve(request, f"gtfs:{wanted}", render)


routes = [
    Route("/notices", notices_page, methods=["GET"]),
    Route("/notices.atom", notices_atom, methods=["GET"]),
    Route("/notices.cap", cap_index, methods=["GET"]),
    Route("/notices/{notice_id}.cap", notice_cap, methods=["GET"]),
    Route("/notices/{notice_id}", notice_page, methods=["GET"]),
    Route("/gtfs-rt/alerts.pb", gtfs_alerts, methods=["GET"]),
]
