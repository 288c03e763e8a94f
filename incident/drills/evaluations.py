"""Evaluations (HSEEP): ratings per critical task, strengths, areas for improvement with root
cause, and corrective actions with owner and due date, tracked until done; an overdue action
pages its owner."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import jobs, paging, timeline
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.models import CorrectiveAction, Evaluation, Person, new_id
from incident.response import get_incident

RATINGS = {
    "P": "performed without challenges",
    "S": "performed with some challenges",
    "M": "performed with major challenges",
    "U": "unable to be performed",
}
ACTION_DUE_JOB = "action.due"
ACTION_STATUSES = ("open", "in_progress", "done")


def _text(value: object, field: str, errors: list[FieldError], limit: int = 2000) -> str:
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(field, "is required"))
        return ""
    if len(value) > limit:
        errors.append(FieldError(field, f"at most {limit} characters"))
    return value.strip()


def _list(body: Mapping[str, Any], field: str, errors: list[FieldError]) -> list[Any]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(FieldError(field, "must be a list"))
        return []
    return value


def _when(value: object, field: str, errors: list[FieldError]) -> datetime | None:
    if not isinstance(value, str):
        errors.append(FieldError(field, "an ISO 8601 date-time with offset is required"))
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(field, "not an ISO 8601 date-time"))
        return None
    if moment.tzinfo is None:
        errors.append(FieldError(field, "needs a UTC offset, e.g. +08:00"))
        return None
    return moment


def evaluate(
    incident_id: str,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    evaluator: str,
) -> Evaluation:
    """Record an evaluation with its corrective actions (each due date becomes a job)."""
    incident = get_incident(incident_id, session=session)
    errors: list[FieldError] = []
    ratings = []
    raw_ratings = body.get("ratings")
    if not isinstance(raw_ratings, list) or not raw_ratings:
        errors.append(FieldError("ratings", "rate at least one critical task"))
        raw_ratings = []
    for n, item in enumerate(raw_ratings):
        item = item if isinstance(item, Mapping) else {}
        task = _text(item.get("task"), f"ratings.{n}.task", errors, 300)
        rating = item.get("rating")
        if not isinstance(rating, str) or rating not in RATINGS:
            errors.append(FieldError(f"ratings.{n}.rating", "one of P, S, M, U"))
        notes = item.get("notes")
        ratings.append(
            {"task": task, "rating": rating, "notes": notes if isinstance(notes, str) else None}
        )
    strengths = [s for s in _list(body, "strengths", errors) if isinstance(s, str) and s.strip()]
    improvements = []
    for n, item in enumerate(_list(body, "improvements", errors)):
        item = item if isinstance(item, Mapping) else {}
        improvements.append(
            {
                "finding": _text(item.get("finding"), f"improvements.{n}.finding", errors),
                "root_cause": _text(item.get("root_cause"), f"improvements.{n}.root_cause", errors),
            }
        )
    actions = []
    for n, item in enumerate(_list(body, "corrective_actions", errors)):
        item = item if isinstance(item, Mapping) else {}
        title = _text(item.get("title"), f"corrective_actions.{n}.title", errors, 300)
        owner = item.get("owner")
        if not isinstance(owner, str) or session.get(Person, owner) is None:
            errors.append(FieldError(f"corrective_actions.{n}.owner", "a roster person id"))
        due = _when(item.get("due_at"), f"corrective_actions.{n}.due_at", errors)
        playbook = item.get("playbook")
        actions.append((title, owner, due, playbook if isinstance(playbook, str) else None))
    if errors:
        raise ValidationFailed("the evaluation is not valid", errors)
    notes = body.get("notes")
    evaluation = Evaluation(
        id=new_id("evl"),
        incident_id=incident.id,
        evaluator=evaluator,
        ratings=ratings,
        strengths=strengths,
        improvements=improvements,
        notes=notes if isinstance(notes, str) else None,
        created_at=now,
    )
    session.add(evaluation)
    session.flush()
    timeline.append(
        incident,
        timeline.Kind.DRILL_EVALUATED,
        {"evaluation": evaluation.id, "ratings": {r["task"]: r["rating"] for r in ratings}},
        session=session,
        at=now,
        actor=evaluator,
    )
    for title, owner, due, playbook_id in actions:
        assert due is not None and isinstance(owner, str)
        action = CorrectiveAction(
            id=new_id("cra"),
            incident_id=incident.id,
            evaluation_id=evaluation.id,
            title=title,
            owner_id=owner,
            due_at=due,
            status="open",
            playbook_id=playbook_id,
            created_at=now,
        )
        session.add(action)
        session.flush()
        jobs.enqueue(
            session,
            ACTION_DUE_JOB,
            {"action_id": action.id},
            key=f"action-due:{action.id}",
            run_at=due,
            incident_id=incident.id,
        )
        timeline.append(
            incident,
            timeline.Kind.ACTION_CREATED,
            {
                "action": action.id,
                "title": title,
                "owner": owner,
                "due_at": due.isoformat(),
                "playbook": playbook_id,
            },
            session=session,
            at=now,
            actor=evaluator,
        )
    return evaluation


def on_action_due(
    action_id: str, *, session: Session, now: datetime, policy: paging.PagingPolicy
) -> None:
    """An action not done by its due date pages its owner."""
    action = session.get(CorrectiveAction, action_id)
    if action is None or action.status == "done":
        return
    incident = get_incident(action.incident_id, session=session)
    timeline.append(
        incident,
        timeline.Kind.ACTION_OVERDUE,
        {"action": action.id, "owner": action.owner_id},
        session=session,
        at=now,
        dedup_key=f"overdue:{action.id}",
    )
    paging.open_page(
        incident,
        None,
        kind="person",
        target=action.owner_id,
        chain=[f"person:{action.owner_id}"],
        template="",
        ack_within=policy.duty_ack_within,
        origin=f"action-overdue:{action.id}",
        stage_key=None,
        session=session,
        now=now,
        policy=policy,
        escalates=False,
        text={
            "zh": f"整改措施逾期：{action.title}（演练 {incident.title}）。请尽快完成并更新状态。",
            "en": f"Corrective action overdue: {action.title} (drill {incident.title}). "
            "Please complete it and update its status.",
        },
    )


def close_action(
    action_id: str, status: object, *, session: Session, now: datetime, actor: str
) -> CorrectiveAction:
    action = session.get(CorrectiveAction, action_id)
    if action is None:
        raise NotFound(f"no corrective action {action_id!r}")
    if status not in ACTION_STATUSES:
        raise ValidationFailed(
            "the change is not valid", [FieldError("status", "one of open, in_progress, done")]
        )
    if action.status == "done" and status != "done":
        raise Conflict("the action is done")
    action.status = str(status)
    if status == "done" and action.done_at is None:
        action.done_at = now
        incident = get_incident(action.incident_id, session=session)
        timeline.append(
            incident,
            timeline.Kind.ACTION_DONE,
            {"action": action.id},
            session=session,
            at=now,
            actor=actor,
        )
    return action


def evaluations_of(incident_id: str, *, session: Session) -> list[Evaluation]:
    return list(
        session.scalars(
            select(Evaluation)
            .where(Evaluation.incident_id == incident_id)
            .order_by(Evaluation.created_at)
        )
    )


def actions_of(incident_id: str, *, session: Session) -> list[CorrectiveAction]:
    return list(
        session.scalars(
            select(CorrectiveAction)
            .where(CorrectiveAction.incident_id == incident_id)
            .order_by(CorrectiveAction.due_at)
        )
    )


def overdue_actions(*, session: Session, now: datetime) -> list[CorrectiveAction]:
    return list(
        session.scalars(
            select(CorrectiveAction)
            .where(CorrectiveAction.status != "done", CorrectiveAction.due_at < now)
            .order_by(CorrectiveAction.due_at)
        )
    )
