"""Drafting notices and their versions, from a playbook's template or from typed text.

A draft is never public. A new draft replaces an unpublished one (which is kept, marked
superseded); what was published is never changed: the next publication supersedes it.
Functions here add and flush; they never commit and never send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import jobs, timeline
from incident.errors import Conflict, FieldError, ValidationFailed
from incident.logs import get_logger
from incident.models import Incident, Notice, NoticeVersion, new_id
from incident.notices.events import NoticeEvent
from incident.notices.texts import (
    CAUSES,
    DEFAULT_CAUSE_EFFECT,
    EFFECTS,
    KIND_DEFAULTS,
    Text,
    check_choice,
    check_items,
    check_rendered,
    check_texts,
    check_time,
    facts_items,
)
from incident.playbook import Playbook, render_template

log = get_logger(__name__)

CHECK_DUE_JOB = "notice.check_due"
OPEN = ("draft", "current")


@dataclass(frozen=True)
class Fields:
    """The structured fields of a version; None means "as the incident's facts say"."""

    lines: list[str] | None = None
    stations: list[str] | None = None
    trains: list[str] | None = None
    cause: str | None = None
    effect: str | None = None
    impact_start: datetime | None = None
    impact_end: datetime | None = None
    communication_end: datetime | None = None


@dataclass(frozen=True)
class Draft:
    """A request to draft: a template, typed text (which wins per language), fields."""

    template: str | None = None
    languages: Mapping[str, Any] | None = None
    fields: Fields = field(default_factory=Fields)


def check_fields(body: Mapping[str, Any], *, errors: list[FieldError]) -> Fields:
    """Read the structured fields of a request body."""
    impact_start = check_time(body.get("impact_start"), field="impact_start", errors=errors)
    impact_end = check_time(body.get("impact_end"), field="impact_end", errors=errors)
    if impact_start and impact_end and impact_end <= impact_start:
        errors.append(FieldError("impact_end", "must be after impact_start"))
    return Fields(
        lines=check_items(body.get("lines"), field="lines", errors=errors),
        stations=check_items(body.get("stations"), field="stations", errors=errors),
        trains=check_items(body.get("trains"), field="trains", errors=errors),
        cause=check_choice(body.get("cause"), CAUSES, field="cause", errors=errors),
        effect=check_choice(body.get("effect"), EFFECTS, field="effect", errors=errors),
        impact_start=impact_start,
        impact_end=impact_end,
        communication_end=check_time(
            body.get("communication_end"), field="communication_end", errors=errors
        ),
    )


def template_context(incident: Incident, *, now: datetime, stage_key: str | None) -> dict[str, Any]:
    """What a notice template sees: the facts and the built-ins (no ack link: no one acks)."""
    return {
        **incident.facts,
        "incident_id": incident.id,
        "title": incident.title,
        "severity": incident.severity,
        "mode": incident.mode,
        "declared_at": incident.declared_at,
        "now": now,
        "stage": stage_key,
    }


def texts_of(
    incident: Incident,
    playbook: Playbook,
    draft: Draft,
    *,
    now: datetime,
    zone: tzinfo,
    stage_key: str | None,
    errors: list[FieldError],
) -> dict[str, Text]:
    texts: dict[str, Text] = {}
    if draft.template is not None:
        if draft.template not in playbook.templates:
            names = ", ".join(sorted(playbook.templates))
            errors.append(FieldError("template", f"unknown template; this playbook has {names}"))
        else:
            context = template_context(incident, now=now, stage_key=stage_key)
            try:
                for lang in ("zh", "en"):
                    rendered = render_template(playbook, draft.template, lang, context, tz=zone)
                    texts[lang] = Text.from_rendered(rendered)
            except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
                # Checked at load, a template can still fail on the facts it is given
                # (comparing a missing optional fact with a number).
                errors.append(FieldError("template", f"the template failed to render: {exc}"))
            else:
                check_rendered(texts, errors=errors, field="template")
    if draft.languages is not None or draft.template is None:
        typed = check_texts(draft.languages, errors=errors, body_required=True)
        texts.update(typed)
    return texts


def _first_notice_due(incident: Incident, playbook: Playbook, *, session: Session) -> bool:
    if "first_notice" not in playbook.targets:
        return False
    published = session.scalar(
        select(Notice.id).where(
            Notice.incident_id == incident.id, Notice.first_published_at.is_not(None)
        )
    )
    return published is None


def open_notice(
    incident: Incident, playbook: Playbook, *, session: Session, now: datetime, actor: str | None
) -> Notice:
    """A new, empty notice of the incident (its first version comes next)."""
    every = playbook.targets.get("notice_every")
    notice = Notice(
        id=new_id("ntc"),
        incident_id=incident.id,
        mode=incident.mode,
        status="draft",
        created_at=now,
        created_by=actor,
        update_every_s=int(every.total_seconds()) if every else None,
    )
    if _first_notice_due(incident, playbook, session=session):
        notice.next_update_due = incident.declared_at + playbook.targets["first_notice"]
    session.add(notice)
    session.flush()
    if notice.next_update_due is not None:
        schedule_check(notice, 0, notice.next_update_due, session=session)
    return notice


def schedule_check(notice: Notice, published: int, due: datetime, *, session: Session) -> None:
    """Check at ``due`` that the notice has moved past its ``published``-th version."""
    jobs.enqueue(
        session,
        CHECK_DUE_JOB,
        {"notice_id": notice.id, "version": published},
        key=f"notice-due:{notice.id}:{published}",
        run_at=due,
        incident_id=notice.incident_id,
    )


def resolve_fields(incident: Incident, playbook: Playbook, fields: Fields) -> dict[str, Any]:
    facts = incident.facts
    cause, effect = KIND_DEFAULTS.get(playbook.kind, DEFAULT_CAUSE_EFFECT)
    return {
        "lines": fields.lines if fields.lines is not None else facts_items(facts, "line", "lines"),
        "stations": fields.stations
        if fields.stations is not None
        else facts_items(facts, "station", "stations"),
        "trains": fields.trains
        if fields.trains is not None
        else facts_items(facts, "train", "trains"),
        "cause": fields.cause or cause,
        "effect": fields.effect or effect,
        "impact_start": fields.impact_start or incident.declared_at,
        "impact_end": fields.impact_end,
        "communication_end": fields.communication_end,
    }


def add_version(
    notice: Notice,
    kind: str,
    texts: Mapping[str, Text],
    values: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
    template: str | None = None,
    origin: str | None = None,
) -> NoticeVersion:
    """Add the next draft version; an unpublished draft before it is superseded."""
    incident = notice.incident
    if notice.status in ("closed", "withdrawn"):
        raise Conflict(f"the notice is {notice.status}; draft a new notice instead")
    if notice.published_number is None:
        if kind in ("all_clear", "withdrawal"):
            raise Conflict("nothing of this notice was published yet: there is nothing to clear")
        kind = "initial"
    elif kind == "initial":
        kind = "update"
    latest = notice.versions[-1] if notice.versions else None
    version = NoticeVersion(
        number=(latest.number if latest else 0) + 1,
        kind=kind,
        status="draft",
        origin=origin,
        template=template,
        texts={lang: text.to_json() for lang, text in texts.items()},
        level=incident.severity,
        drafted_at=now,
        drafted_by=actor,
        **values,
    )
    notice.versions.append(version)
    session.flush()
    if latest is not None and latest.status == "draft":
        latest.status = "superseded"
        latest.superseded_at = now
        timeline.append(
            incident,
            NoticeEvent.SUPERSEDED,
            {"notice": notice.id, "version": latest.number, "by": version.number, "draft": True},
            session=session,
            at=now,
            actor=actor,
        )
    timeline.append(
        incident,
        NoticeEvent.DRAFTED,
        {
            "notice": notice.id,
            "version": version.number,
            "kind": kind,
            "template": template,
            "origin": origin,
            "headline": {lang: text.headline for lang, text in texts.items()},
        },
        session=session,
        at=now,
        actor=actor,
    )
    log.info(
        "notice_drafted",
        incident_id=incident.id,
        notice_id=notice.id,
        version=version.number,
        kind=kind,
    )
    return version


def draft_notice(
    incident: Incident,
    playbook: Playbook,
    draft: Draft,
    *,
    session: Session,
    now: datetime,
    zone: tzinfo,
    actor: str | None,
) -> Notice:
    """Draft a new notice of the incident (its initial version)."""
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    errors: list[FieldError] = []
    texts = texts_of(incident, playbook, draft, now=now, zone=zone, stage_key=None, errors=errors)
    if errors:
        raise ValidationFailed("the notice is not valid", errors)
    notice = open_notice(incident, playbook, session=session, now=now, actor=actor)
    values = resolve_fields(incident, playbook, draft.fields)
    add_version(
        notice,
        "initial",
        texts,
        values,
        session=session,
        now=now,
        actor=actor,
        template=draft.template,
    )
    return notice


def draft_version(
    notice: Notice,
    playbook: Playbook,
    kind: object,
    draft: Draft,
    *,
    session: Session,
    now: datetime,
    zone: tzinfo,
    actor: str | None,
) -> NoticeVersion:
    """Draft the next version of a notice: an update, the all-clear or a withdrawal."""
    errors: list[FieldError] = []
    if kind not in ("update", "all_clear", "withdrawal"):
        errors.append(FieldError("kind", "must be update, all_clear or withdrawal"))
    texts = texts_of(
        notice.incident, playbook, draft, now=now, zone=zone, stage_key=None, errors=errors
    )
    if errors:
        raise ValidationFailed("the version is not valid", errors)
    assert isinstance(kind, str)
    values = resolve_fields(notice.incident, playbook, draft.fields)
    return add_version(
        notice,
        kind,
        texts,
        values,
        session=session,
        now=now,
        actor=actor,
        template=draft.template,
    )


def latest_open(incident_id: str, *, session: Session) -> Notice | None:
    """The incident's most recent notice that is still a draft or current."""
    return session.scalar(
        select(Notice)
        .where(Notice.incident_id == incident_id, Notice.status.in_(OPEN))
        .order_by(Notice.created_at.desc(), Notice.id.desc())
        .limit(1)
    )


def update_every(notice: Notice) -> timedelta | None:
    return None if notice.update_every_s is None else timedelta(seconds=notice.update_every_s)
