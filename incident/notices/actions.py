"""Playbook ``notice`` actions: draft an initial notice, an update or the all-clear from a
template, or record on the timeline why nothing was drafted."""

from __future__ import annotations

from datetime import datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import timeline
from incident.errors import FieldError
from incident.logs import get_logger
from incident.models import Incident, Notice, NoticeVersion
from incident.notices.drafting import (
    Draft,
    Fields,
    add_version,
    latest_open,
    open_notice,
    resolve_fields,
    texts_of,
)
from incident.notices.events import NoticeEvent
from incident.playbook import Action, Playbook

log = get_logger(__name__)


def _skip(incident: Incident, origin: str, reason: str, *, session: Session, now: datetime) -> None:
    timeline.append(
        incident,
        NoticeEvent.SKIPPED,
        {"origin": origin, "reason": reason},
        session=session,
        at=now,
        dedup_key=f"notice-skip:{origin}",
    )


def _withdraw_drafts(notice: Notice, reason: str, *, session: Session, now: datetime) -> None:
    for version in notice.versions:
        if version.status == "draft":
            version.status = "withdrawn"
            version.superseded_at = now
    notice.status = "withdrawn"
    notice.closed_at = now
    notice.next_update_due = None
    timeline.append(
        notice.incident,
        NoticeEvent.WITHDRAWN,
        {"notice": notice.id, "reason": reason},
        session=session,
        at=now,
    )


def draft_from_action(
    incident: Incident,
    playbook: Playbook,
    action: Action,
    *,
    origin: str,
    stage_key: str,
    session: Session,
    now: datetime,
    zone: tzinfo,
) -> NoticeVersion | None:
    """Do a playbook ``notice`` action: draft from its template (initial, update, all-clear).

    An ``initial`` opens a notice unless one is open; an ``update`` goes to the open notice
    once it was published (before that it is skipped: it never replaces a first notice
    awaiting approval), or opens one when none is open; an ``all_clear`` closes the open
    notice, or withdraws it when nothing of it was ever published. A repeat of the same
    stage occurrence drafts nothing."""
    seen = session.scalar(
        select(NoticeVersion.id)
        .join(Notice)
        .where(Notice.incident_id == incident.id, NoticeVersion.origin == origin)
    )
    if seen is not None:
        return None
    kind = str(action.params.get("kind") or "initial")
    template = str(action.params["template"])
    current = latest_open(incident.id, session=session)
    if kind == "initial" and current is not None:
        _skip(incident, origin, f"notice {current.id} is already open", session=session, now=now)
        return None
    if kind == "all_clear":
        if current is None:
            _skip(incident, origin, "no open notice to clear", session=session, now=now)
            return None
        if current.published_number is None:
            _withdraw_drafts(current, "resolved before publication", session=session, now=now)
            return None
    if kind == "update" and current is not None and current.published_number is None:
        # The first notice awaits approval: an update (an `every` stage) must not replace the
        # text being reviewed. It waits; the first occurrence after publication drafts it.
        reason = f"the first notice {current.id} is not published yet; the update waits for it"
        _skip(incident, origin, reason, session=session, now=now)
        return None
    errors: list[FieldError] = []
    texts = texts_of(
        incident,
        playbook,
        Draft(template=template),
        now=now,
        zone=zone,
        stage_key=stage_key,
        errors=errors,
    )
    if errors:
        # A playbook is checked when it loads; a text that still renders wrong (an empty
        # headline from the facts) is recorded rather than failing the stage again and again.
        log.warning(
            "notice_template_failed", incident_id=incident.id, template=template, origin=origin
        )
        _skip(incident, origin, "; ".join(e.message for e in errors), session=session, now=now)
        return None
    notice = current or open_notice(incident, playbook, session=session, now=now, actor=None)
    values = resolve_fields(incident, playbook, Fields())
    return add_version(
        notice,
        kind,
        texts,
        values,
        session=session,
        now=now,
        actor=None,
        template=template,
        origin=origin,
    )
