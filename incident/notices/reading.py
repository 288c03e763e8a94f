"""Finding notices: what the public may see (live, published) and what staff see (all)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, object_session

from incident.errors import NotFound
from incident.models import Incident, Notice, NoticeVersion

RECENT = timedelta(hours=24)
"""How long a closed or withdrawn notice stays listed (marked closed) on the public page,
the Atom feed and the CAP index; GTFS-Realtime drops it at once."""
PUBLIC_LIMIT = 200


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def published_versions(notice: Notice) -> list[NoticeVersion]:
    """The versions the public saw, oldest first."""
    return [v for v in notice.versions if v.published_at is not None]


def public_version(notice: Notice) -> NoticeVersion:
    """The version the public sees now."""
    return next(v for v in notice.versions if v.number == notice.published_number)


def public_notices(*, session: Session, now: datetime) -> list[Notice]:
    """Live published notices: current ones, and closed ones of the last day; newest first."""
    query = (
        select(Notice)
        .where(
            Notice.mode == "live",
            Notice.published_number.is_not(None),
            or_(Notice.status == "current", Notice.closed_at >= now - RECENT),
        )
        .order_by(Notice.last_published_at.desc(), Notice.id.desc())
        .limit(PUBLIC_LIMIT)
    )
    return list(session.scalars(query))


def active_notices(*, session: Session) -> list[Notice]:
    """Live notices in force (published, not closed): what GTFS-Realtime carries."""
    query = (
        select(Notice)
        .where(
            Notice.mode == "live",
            Notice.status == "current",
            Notice.published_number.is_not(None),
        )
        .order_by(Notice.first_published_at, Notice.id)
    )
    return list(session.scalars(query))


def public_notice(notice_id: str, *, session: Session) -> Notice:
    """One live, published notice; a drill's, a draft or an unknown id is not found."""
    notice = session.get(Notice, notice_id)
    if notice is None or notice.mode != "live" or notice.published_number is None:
        raise NotFound(f"no published notice {notice_id!r}")
    return notice


def notices_of(incident_id: str, *, session: Session) -> list[Notice]:
    query = (
        select(Notice)
        .where(Notice.incident_id == incident_id)
        .order_by(Notice.created_at, Notice.id)
    )
    return list(session.scalars(query))


def version_json(version: NoticeVersion) -> dict[str, Any]:
    return {
        "number": version.number,
        "kind": version.kind,
        "status": version.status,
        "template": version.template,
        "origin": version.origin,
        "languages": version.texts,
        "lines": version.lines,
        "stations": version.stations,
        "trains": version.trains,
        "cause": version.cause,
        "effect": version.effect,
        "level": version.level,
        "impact_start": _iso(version.impact_start),
        "impact_end": _iso(version.impact_end),
        "communication_start": _iso(version.communication_start),
        "communication_end": _iso(version.communication_end),
        "drafted_at": _iso(version.drafted_at),
        "drafted_by": version.drafted_by,
        "approved_at": _iso(version.approved_at),
        "approved_by": version.approved_by,
        "published_at": _iso(version.published_at),
        "superseded_at": _iso(version.superseded_at),
    }


def notice_json(notice: Notice, *, versions: bool = True) -> dict[str, Any]:
    """The API's view of a notice (``versions`` left out in summaries)."""
    latest = notice.versions[-1] if notice.versions else None
    view: dict[str, Any] = {
        "id": notice.id,
        "incident_id": notice.incident_id,
        "mode": notice.mode,
        "status": notice.status,
        "published_version": notice.published_number,
        "latest_version": None if latest is None else latest.number,
        "draft_pending": latest is not None and latest.status == "draft",
        "headline": None
        if latest is None
        else {lang: text.get("headline") for lang, text in latest.texts.items()},
        "next_update_due": _iso(notice.next_update_due),
        "created_at": _iso(notice.created_at),
        "first_published_at": _iso(notice.first_published_at),
        "last_published_at": _iso(notice.last_published_at),
        "closed_at": _iso(notice.closed_at),
        "public_url": f"/notices/{notice.id}" if notice.mode == "live" else None,
    }
    if versions:
        view["versions"] = [version_json(v) for v in notice.versions]
    return view


def summaries(incident: Incident) -> list[dict[str, Any]]:
    """The incident's notices for the incident's own view (same session as the incident)."""
    session = object_session(incident)
    if session is None:
        return []
    return [notice_json(n, versions=False) for n in notices_of(incident.id, session=session)]
