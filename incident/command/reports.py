"""Reports up to the railway authority, in the fields of the accident reporting rules: time,
place, train, passengers, casualties, impact, preliminary cause, measures taken and help
requested. A report is drafted from what the incident knows, completed and submitted by a duty
manager (by whatever line the authority takes: the system records it, it does not send it).
Once one was submitted, a change of facts or severity opens a supplementary draft; a playbook
``authority_report`` action requires one by a due time, and a draft still open then pages the
incident commander.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from incident import jobs, paging, timeline
from incident.command.events import CommandEvent
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.logs import get_logger
from incident.models import AuthorityReport, Incident, IncidentRole, Task, new_id
from incident.passengers.groups import groups_of
from incident.playbook import Action, Playbook

log = get_logger(__name__)

DUE_JOB = "authority_report.due"
FIELDS: dict[str, tuple[str, str]] = {
    "time": ("发生时间", "Time"),
    "place": ("地点", "Place"),
    "train": ("车次", "Train"),
    "passengers": ("旅客人数", "Passengers"),
    "casualties": ("人员伤亡", "Casualties"),
    "impact": ("影响", "Impact"),
    "preliminary_cause": ("初步原因", "Preliminary cause"),
    "measures_taken": ("已采取措施", "Measures taken"),
    "help_requested": ("请求支援", "Help requested"),
}
REQUIRED = ("time", "place")
VIA = ("phone", "fax", "email", "system", "by_hand")
PAGE_ACK_WITHIN = timedelta(minutes=10)
FIELD_MAX = 4000
_PLACE_FACTS = ("line", "station", "section", "location")
_USED_FACTS = {
    *_PLACE_FACTS,
    "train",
    "trains",
    "cause",
    "casualties",
    "passengers_stranded",
    "stopped_since",
    "stranded_since",
}


def draft_fields(
    incident: Incident, playbook: Playbook | None, *, session: Session, now: datetime
) -> dict[str, Any]:
    """The report's fields as the incident knows them now (a duty manager completes them)."""
    facts = incident.facts
    groups = groups_of(incident.id, session=session)
    stranded = [g for g in groups if g.status == "stranded"]
    places = [str(facts[k]) for k in _PLACE_FACTS if facts.get(k)]
    places += [g.location for g in stranded if g.location not in places]
    trains = [str(facts[k]) for k in ("train", "trains") if facts.get(k)]
    trains += [g.train for g in groups if g.train and g.train not in trains]
    count = sum(g.count for g in stranded) if groups else facts.get("passengers_stranded")
    impact = [f"{k}={v}" for k, v in facts.items() if k not in _USED_FACTS and v is not None]
    measures: list[str] = []
    if playbook is not None:
        for stage in incident.stages:
            if stage.fire_count and stage.fired_at is not None:
                try:
                    title = playbook.stage(stage.key).title or {}
                except KeyError:
                    title = {}
                measures.append(title.get("zh") or stage.key)
    done = session.scalars(
        select(Task)
        .where(Task.incident_id == incident.id, Task.status == "done")
        .order_by(Task.done_at, Task.id)
    )
    measures += [t.title.get("zh") or t.title.get("en", "") for t in done]
    return {
        "time": str(facts.get("stopped_since") or incident.declared_at.isoformat()),
        "place": "; ".join(places) or None,
        "train": ", ".join(trains) or None,
        "passengers": count,
        "casualties": facts.get("casualties"),
        "impact": f"level {incident.severity}; " + ", ".join(impact),
        "preliminary_cause": facts.get("cause"),
        "measures_taken": "; ".join(measures) or None,
        "help_requested": None,
    }


def _open_draft(incident_id: str, *, session: Session) -> AuthorityReport | None:
    return session.scalar(
        select(AuthorityReport)
        .where(AuthorityReport.incident_id == incident_id, AuthorityReport.status == "draft")
        .order_by(AuthorityReport.number.desc())
        .limit(1)
    )


def _submitted(incident_id: str, *, session: Session) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(AuthorityReport)
            .where(
                AuthorityReport.incident_id == incident_id, AuthorityReport.status == "submitted"
            )
        )
        or 0
    )


def draft(
    incident: Incident,
    playbook: Playbook | None,
    *,
    origin: str,
    reason: str,
    due_at: datetime | None,
    fields: Mapping[str, Any] | None = None,
    session: Session,
    now: datetime,
    actor: str | None,
) -> AuthorityReport:
    """Open the next report (initial, or supplementary once one was submitted)."""
    number = 1 + int(
        session.scalar(
            select(func.coalesce(func.max(AuthorityReport.number), 0)).where(
                AuthorityReport.incident_id == incident.id
            )
        )
        or 0
    )
    drafted = draft_fields(incident, playbook, session=session, now=now)
    report = AuthorityReport(
        id=new_id("rpt"),
        incident_id=incident.id,
        number=number,
        kind="supplementary" if _submitted(incident.id, session=session) else "initial",
        origin=origin,
        reason=reason,
        fields={**drafted, **(fields or {})},
        drafted=drafted,
        status="draft",
        due_at=due_at,
        created_at=now,
        created_by=actor,
    )
    session.add(report)
    session.flush()
    if due_at is not None:
        jobs.enqueue(
            session,
            DUE_JOB,
            {"report_id": report.id},
            key=f"report-due:{report.id}",
            run_at=due_at,
            incident_id=incident.id,
        )
    timeline.append(
        incident,
        CommandEvent.REPORT_DRAFTED,
        {
            "report": report.id,
            "number": number,
            "kind": report.kind,
            "reason": reason,
            "due_at": due_at.isoformat() if due_at else None,
        },
        session=session,
        at=now,
        actor=actor,
    )
    return report


def from_action(
    incident: Incident,
    playbook: Playbook,
    action: Action,
    *,
    origin: str,
    session: Session,
    now: datetime,
) -> AuthorityReport | None:
    """A playbook requires a report: open one unless a draft is already waiting."""
    if _open_draft(incident.id, session=session) is not None:
        return None
    seen = session.scalar(
        select(AuthorityReport.id).where(
            AuthorityReport.incident_id == incident.id, AuthorityReport.origin == origin
        )
    )
    if seen is not None:
        return None
    due: timedelta | None = action.params.get("due")
    return draft(
        incident,
        playbook,
        origin=origin,
        reason="playbook",
        due_at=now + due if due is not None else None,
        session=session,
        now=now,
        actor=None,
    )


def facts_changed(
    incident: Incident, playbook: Playbook, *, session: Session, now: datetime
) -> AuthorityReport | None:
    """Facts or severity changed: a waiting draft follows them (in the fields nobody edited);
    after a report went up, a supplementary draft is opened."""
    waiting = _open_draft(incident.id, session=session)
    if waiting is not None:
        fresh = draft_fields(incident, playbook, session=session, now=now)
        kept = {k: v for k, v in waiting.fields.items() if waiting.drafted.get(k) != v}
        waiting.fields, waiting.drafted = {**fresh, **kept}, fresh
        return None
    if not _submitted(incident.id, session=session):
        return None
    return draft(
        incident,
        playbook,
        origin=f"change:{incident.timeline_seq}",
        reason="facts changed",
        due_at=None,
        session=session,
        now=now,
        actor=None,
    )


def _fields(value: object, errors: list[FieldError]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append(FieldError("fields", "an object of report fields"))
        return {}
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name not in FIELDS:
            errors.append(FieldError(f"fields.{name}", f"not a report field ({', '.join(FIELDS)})"))
        elif (
            name == "passengers"
            and item is not None
            and (type(item) is not int or not 0 <= item <= 10_000_000)
        ):
            errors.append(FieldError("fields.passengers", "a whole number, 0 or more"))
        elif name != "passengers" and item is not None and not isinstance(item, str):
            errors.append(FieldError(f"fields.{name}", "text"))
        elif isinstance(item, str) and len(item) > FIELD_MAX:
            errors.append(FieldError(f"fields.{name}", f"at most {FIELD_MAX} characters"))
        else:
            out[name] = item.strip() if isinstance(item, str) else item
    return out


def open_report(
    incident: Incident,
    playbook: Playbook,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
) -> AuthorityReport:
    """A duty manager drafts a report (fields given override the drafted ones)."""
    errors = [FieldError(n, "is not a field here") for n in sorted(set(body) - {"fields"})]
    fields = _fields(body.get("fields"), errors)
    if errors:
        raise ValidationFailed("the report is not valid", errors)
    if _open_draft(incident.id, session=session) is not None:
        raise Conflict("a draft report is waiting: complete and submit it first")
    return draft(
        incident,
        playbook,
        origin=f"api:{new_id('api')}",
        reason="by hand",
        due_at=None,
        fields=fields,
        session=session,
        now=now,
        actor=actor,
    )


def change(
    report: AuthorityReport,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
) -> AuthorityReport:
    """Change a draft's fields (merged)."""
    errors = [FieldError(n, "cannot be changed") for n in sorted(set(body) - {"fields"})]
    fields = _fields(body.get("fields"), errors)
    if errors:
        raise ValidationFailed("the change is not valid", errors)
    if report.status != "draft":
        raise Conflict("the report was submitted; open a supplementary one")
    changed = {k: v for k, v in fields.items() if report.fields.get(k) != v}
    if changed:
        report.fields = {**report.fields, **changed}
        incident = session.get(Incident, report.incident_id)
        assert incident is not None
        timeline.append(
            incident,
            CommandEvent.REPORT_CHANGED,
            {"report": report.id, "fields": sorted(changed)},
            session=session,
            at=now,
            actor=actor,
        )
    return report


def submit(
    report: AuthorityReport,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
) -> AuthorityReport:
    """Record that the report went up: to whom and how."""
    errors = [FieldError(n, "is not a field here") for n in sorted(set(body) - {"to", "via"})]
    to, via = body.get("to"), body.get("via", "phone")
    if to is not None and (not isinstance(to, str) or not to.strip() or len(to) > 200):
        errors.append(FieldError("to", "who received it (at most 200 characters)"))
    if via not in VIA:
        errors.append(FieldError("via", f"one of {', '.join(VIA)}"))
    errors += [
        FieldError(f"fields.{n}", "is required before submitting")
        for n in REQUIRED
        if not report.fields.get(n)
    ]
    if errors:
        raise ValidationFailed("the report cannot be submitted", errors)
    if report.status == "submitted":
        return report
    incident = session.get(Incident, report.incident_id)
    assert incident is not None
    report.status = "submitted"
    report.submitted_at, report.submitted_by = now, actor
    report.submitted_to = to.strip() if isinstance(to, str) else None
    report.submitted_via = str(via)
    jobs.cancel_keys(session, [f"report-due:{report.id}"], now=now)
    timeline.append(
        incident,
        CommandEvent.REPORT_SUBMITTED,
        {
            "report": report.id,
            "number": report.number,
            "kind": report.kind,
            "to": report.submitted_to,
            "via": report.submitted_via,
            "late": report.due_at is not None and now > report.due_at,
        },
        session=session,
        at=now,
        actor=actor,
    )
    log.info("authority_report_submitted", incident_id=incident.id, report_id=report.id)
    return report


def on_due(report_id: str, *, session: Session, now: datetime, policy: paging.PagingPolicy) -> bool:
    """A required report still a draft at its due time pages the incident commander."""
    report = session.get(AuthorityReport, report_id)
    if report is None or report.status != "draft" or report.overdue_at is not None:
        return False
    incident = session.get(Incident, report.incident_id)
    assert incident is not None
    report.overdue_at = now
    text = {
        "zh": f"上报逾期：{incident.title} 的第{report.number}次上级报告尚未报出（{report.id}）。",
        "en": f"Report overdue: report {report.number} on {incident.title} to the railway "
        f"authority has not gone up yet ({report.id}).",
    }
    commander = session.scalar(
        select(IncidentRole.person_id).where(
            IncidentRole.incident_id == incident.id, IncidentRole.role == "commander"
        )
    )
    if commander is not None:
        page = paging.open_page(
            incident,
            None,
            kind="person",
            target=commander,
            chain=[f"person:{commander}"],
            template="",
            ack_within=PAGE_ACK_WITHIN,
            origin=f"report:{report.id}",
            stage_key=None,
            session=session,
            now=now,
            policy=policy,
            escalates=False,
            text=text,
        )
    else:
        page = paging.alert_duty(
            incident,
            text=text,
            reason=f"report:{report.id}",
            session=session,
            now=now,
            policy=policy,
        )
    timeline.append(
        incident,
        CommandEvent.REPORT_OVERDUE,
        {"report": report.id, "page": page.id if page is not None else None},
        session=session,
        at=now,
    )
    return True


def get_report(report_id: str, *, session: Session) -> AuthorityReport:
    found = session.get(AuthorityReport, report_id)
    if found is None:
        raise NotFound(f"no authority report {report_id!r}")
    return found


def reports_of(incident_id: str, *, session: Session) -> list[AuthorityReport]:
    return list(
        session.scalars(
            select(AuthorityReport)
            .where(AuthorityReport.incident_id == incident_id)
            .order_by(AuthorityReport.number)
        )
    )


def markdown(report: AuthorityReport, incident: Incident) -> str:
    """The report as text to read out or send (Chinese and English labels)."""
    kind = {"initial": ("首报", "Initial report"), "supplementary": ("续报", "Supplementary")}
    zh, en = kind.get(report.kind, (report.kind, report.kind))
    out = [
        f"# {zh} / {en} {report.number}: {incident.title}",
        "",
        f"- Incident `{incident.id}`, level {incident.severity}, {incident.mode}",
        f"- Status: {report.status}"
        + (
            f", submitted {report.submitted_at.isoformat()} by {report.submitted_by}"
            f" via {report.submitted_via}"
            + (f" to {report.submitted_to}" if report.submitted_to else "")
            if report.submitted_at
            else ""
        ),
        "",
        "| 项目 / field | 内容 / value |",
        "|---|---|",
    ]
    for name, (label_zh, label_en) in FIELDS.items():
        value = report.fields.get(name)
        shown = "—" if value in (None, "") else str(value).replace("|", "\\|").replace("\n", " ")
        out.append(f"| {label_zh} / {label_en} | {shown} |")
    return "\n".join(out) + "\n"
