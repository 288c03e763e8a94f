"""A job of an incident that failed for good is an alarm (#14): the incident's timeline says
what did not run, and the duty director is paged, once per job.

The worker calls :func:`on_job_failed` in the transaction that marks the job failed. Jobs of
no incident (and the operations side of every failure) are the auditor's business: its
``failed-jobs`` alert goes to ``INCIDENT_OPS_ALERT_URLS``. Adds and flushes; never commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from incident import paging, timeline
from incident.jobs import Claimed
from incident.logs import get_logger, mask_text
from incident.models import Incident, Page, Stage

log = get_logger(__name__)
ERROR_CHARS = 200


def error_line(error: str) -> str:
    """The first line of an error, phone numbers masked, at most ERROR_CHARS characters."""
    lines = error.strip().splitlines()
    return mask_text(lines[0] if lines else "")[:ERROR_CHARS]


def _what(job: Claimed, session: Session) -> tuple[dict[str, Any], str, str]:
    """What the job was for: timeline data, and a Chinese and an English phrase naming it."""
    payload = job.payload
    if job.kind == "stage.fire" and "stage_id" in payload:
        stage = session.get(Stage, int(payload["stage_id"]))
        key = stage.key if stage is not None else str(payload["stage_id"])
        data = {"stage": key, "stage_id": int(payload["stage_id"])}
        return data, f"阶段「{key}」", f"stage '{key}'"
    if job.kind == paging.DEADLINE_JOB and "page_id" in payload:
        page = session.get(Page, payload["page_id"])
        level = int(payload.get("level", 0)) + 1
        target = f"{page.target_kind}:{page.target_id}" if page is not None else "?"
        data = {"page_id": payload["page_id"], "level": level, "target": target}
        return (
            data,
            f"呼叫 {payload['page_id']}（{target}，第{level}级）的升级检查",
            f"the escalation check of page {payload['page_id']} ({target}, level {level})",
        )
    if "notice_id" in payload:
        data = {"notice_id": payload["notice_id"]}
        return (
            data,
            f"公告 {payload['notice_id']} 的逾期检查",
            f"the overdue check of notice {payload['notice_id']}",
        )
    for field in ("task_id", "report_id", "inquiry_id", "broadcast_id"):
        if field in payload:
            name = field.removesuffix("_id")
            data = {field: payload[field]}
            return (
                data,
                f"{job.kind}（{name} {payload[field]}）",
                f"{job.kind} ({name} {payload[field]})",
            )
    return {}, job.kind, job.kind


def on_job_failed(
    job: Claimed,
    error: str,
    *,
    session: Session,
    now: datetime,
    policy: paging.PagingPolicy,
) -> None:
    """Record on its incident that ``job`` failed for good and page the duty director; once
    per job however often it is called. Never raises: a failure to say so is logged (the
    auditor still reports the job) and leaves the caller's transaction as it was."""
    if job.incident_id is None:
        return
    try:
        with session.begin_nested():
            _record(job, error, session=session, now=now, policy=policy)
    except Exception as exc:  # the job is marked failed all the same
        log.error(
            "job_failure_alert_failed",
            job_id=job.id,
            job_kind=job.kind,
            incident_id=job.incident_id,
            error_type=type(exc).__name__,
        )


def _record(
    job: Claimed, error: str, *, session: Session, now: datetime, policy: paging.PagingPolicy
) -> None:
    incident = session.get(Incident, job.incident_id)
    if incident is None:
        return
    first = error_line(error)
    data, what_zh, what_en = _what(job, session)
    added = timeline.append(
        incident,
        timeline.Kind.JOB_FAILED,
        {"job": job.id, "kind": job.kind, "attempts": job.attempts, **data, "error": first},
        session=session,
        at=now,
        dedup_key=f"job_failed:{job.id}",
    )
    error_type = first.split(":", 1)[0] or "error"
    paging.alert_duty(
        incident,
        text={
            "zh": f"未执行：{incident.title} 的{what_zh}连续失败{job.attempts}次，"
            f"已停止重试（{error_type}）。请人工处理并通知运维。",
            "en": f"Not done: {what_en} of {incident.title} failed {job.attempts} times and "
            f"will not be retried ({error_type}). Do it by hand and tell operations.",
        },
        reason=f"job_failed:{job.id}",
        session=session,
        now=now,
        policy=policy,
    )
    if added is not None:
        log.error(
            "incident_job_failed",
            job_id=job.id,
            job_kind=job.kind,
            incident_id=incident.id,
            error=first,
        )
