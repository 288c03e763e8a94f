"""Tasks: what a department or person must do by when, from a playbook ``task`` action or by
a duty manager's hand. Tasks are acknowledged, updated and done; a task still not done at its
due time pages its owner (a ``task.due`` job, so the deadline holds through restarts).
Tasks made after resolution are follow-ups: they carry into the after-action report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import jobs, paging, timeline
from incident.command.events import CommandEvent
from incident.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from incident.logs import get_logger
from incident.models import Department, Incident, Person, Task, new_id
from incident.playbook import Action, Playbook

log = get_logger(__name__)

DUE_JOB = "task.due"
STATUSES = ("open", "acknowledged", "done")
OPEN = ("open", "acknowledged")
PAGE_ACK_WITHIN = timedelta(minutes=10)
TITLE_MAX = 300
MAX_MINUTES = 60 * 24 * 90
_NEW_FIELDS = {"title", "department", "person", "due_at", "due_minutes", "note"}
_CHANGE_FIELDS = {"status", "note", "due_at", "department", "person"}
_MANAGERS = ("admin", "duty_manager")


def is_overdue(task: Task, now: datetime) -> bool:
    """Not done and past its due time (overdue is derived, never stored as a state)."""
    return task.status != "done" and task.due_at is not None and task.due_at <= now


def _schedule(task: Task, *, session: Session) -> None:
    if task.due_at is not None:
        jobs.enqueue(
            session,
            DUE_JOB,
            {"task_id": task.id},
            key=f"task-due:{task.id}:{task.due_at.isoformat()}",
            run_at=task.due_at,
            incident_id=task.incident_id,
        )


def _unschedule(task: Task, *, session: Session, now: datetime) -> None:
    if task.due_at is not None:
        jobs.cancel_keys(session, [f"task-due:{task.id}:{task.due_at.isoformat()}"], now=now)


def _record(task: Task) -> dict[str, Any]:
    return {
        "task": task.id,
        "title": task.title,
        "department": task.department_id,
        "person": task.person_id,
        "due_at": task.due_at.isoformat() if task.due_at else None,
        "follow_up": task.follow_up,
    }


def _new(
    incident: Incident,
    *,
    origin: str,
    stage_key: str | None,
    title: dict[str, str],
    department: str | None,
    person: str | None,
    due_at: datetime | None,
    note: str | None,
    session: Session,
    now: datetime,
    actor: str | None,
) -> Task:
    task = Task(
        id=new_id("tsk"),
        incident_id=incident.id,
        origin=origin,
        stage_key=stage_key,
        title=title,
        department_id=department,
        person_id=person,
        due_at=due_at,
        status="open",
        follow_up=incident.status in ("resolved", "closed"),
        note=note,
        created_at=now,
        created_by=actor,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    _schedule(task, session=session)
    return task


def from_action(
    incident: Incident,
    playbook: Playbook,
    action: Action,
    *,
    origin: str,
    stage_key: str,
    record: dict[str, Any],
    session: Session,
    now: datetime,
) -> Task | None:
    """The task a playbook ``task`` action asks for (once per ``origin``), with its event."""
    seen = session.scalar(
        select(Task.id).where(Task.incident_id == incident.id, Task.origin == origin)
    )
    if seen is not None:
        return None
    params = action.params
    due: timedelta | None = params.get("due")
    task = _new(
        incident,
        origin=origin,
        stage_key=stage_key,
        title=dict(params.get("title") or {}),
        department=params.get("department"),
        person=params.get("person"),
        due_at=now + due if due is not None else None,
        note=None,
        session=session,
        now=now,
        actor=None,
    )
    timeline.append(
        incident,
        CommandEvent.TASK_OPENED,
        {**record, **_record(task)},
        session=session,
        at=now,
        dedup_key=f"action:{origin}",
    )
    log.info("task_opened", incident_id=incident.id, task_id=task.id, stage=stage_key)
    return task


def _title(value: object, errors: list[FieldError]) -> dict[str, str]:
    if isinstance(value, str):
        value = {"zh": value, "en": value}
    if not isinstance(value, Mapping) or set(value) - {"zh", "en"}:
        errors.append(FieldError("title", "a text, or {zh, en}"))
        return {}
    texts = {k: v.strip() for k, v in value.items() if isinstance(v, str) and v.strip()}
    if not texts:
        errors.append(FieldError("title", "is required"))
    elif any(len(v) > TITLE_MAX for v in texts.values()):
        errors.append(FieldError("title", f"at most {TITLE_MAX} characters"))
    zh = texts.get("zh") or texts.get("en", "")
    return {"zh": zh, "en": texts.get("en") or zh}


def _moment(value: object, field: str, errors: list[FieldError]) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        errors.append(FieldError(field, "an ISO 8601 time with an offset"))
        return None
    return moment


def _owner(
    body: Mapping[str, Any], errors: list[FieldError], *, session: Session, required: bool
) -> tuple[str | None, str | None]:
    department, person = body.get("department"), body.get("person")
    if (department is None) == (person is None):
        if required or (department is not None and person is not None):
            errors.append(FieldError("department", "give a department or a person (one)"))
        return None, None
    if department is not None and (
        not isinstance(department, str) or session.get(Department, department) is None
    ):
        errors.append(FieldError("department", "a roster department id"))
    if person is not None:
        found = session.get(Person, person) if isinstance(person, str) else None
        if found is None or not found.active:
            errors.append(FieldError("person", "an active roster person id"))
    return department, person


def _note(body: Mapping[str, Any], errors: list[FieldError]) -> str | None:
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        errors.append(FieldError("note", "text of at most 2000 characters"))
        return None
    return note.strip() or None if isinstance(note, str) else None


def open_task(
    incident: Incident,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
) -> Task:
    """A task given by hand: ``{title, department | person, due_at | due_minutes, note}``."""
    errors = [FieldError(n, "is not a field of a task") for n in sorted(set(body) - _NEW_FIELDS)]
    title = _title(body.get("title"), errors)
    department, person = _owner(body, errors, session=session, required=True)
    due_at = _moment(body.get("due_at"), "due_at", errors)
    minutes = body.get("due_minutes")
    if minutes is not None:
        if type(minutes) is not int or not 1 <= minutes <= MAX_MINUTES:
            errors.append(
                FieldError("due_minutes", f"a whole number of minutes, 1 to {MAX_MINUTES}")
            )
        elif due_at is not None:
            errors.append(FieldError("due_minutes", "give due_at or due_minutes, not both"))
        else:
            due_at = now + timedelta(minutes=minutes)
    if due_at is not None and due_at <= now:
        errors.append(FieldError("due_at", "must be in the future"))
    note = _note(body, errors)
    if errors:
        raise ValidationFailed("the task is not valid", errors)
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    task_id = new_id("api")
    task = _new(
        incident,
        origin=f"api:{task_id}",
        stage_key=None,
        title=title,
        department=department,
        person=person,
        due_at=due_at,
        note=note,
        session=session,
        now=now,
        actor=actor,
    )
    timeline.append(
        incident,
        CommandEvent.TASK_OPENED,
        {
            "action": "task",
            "params": {"title": title, "department": department, "person": person},
            **_record(task),
        },
        session=session,
        at=now,
        actor=actor,
    )
    log.info("task_opened", incident_id=incident.id, task_id=task.id, stage=None)
    return task


def may_change(task: Task, *, role: str, person_id: str | None, session: Session) -> bool:
    """A duty manager may change any task; staff only their own or their department's."""
    if role in _MANAGERS:
        return True
    if role != "staff" or person_id is None:
        return False
    if task.person_id == person_id:
        return True
    person = session.get(Person, person_id)
    return (
        task.department_id is not None
        and person is not None
        and person.department_id == task.department_id
    )


def change(
    task: Task,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
    role: str,
    person_id: str | None,
) -> Task:
    """Acknowledge, update (note; a duty manager also due time and owner) or finish a task."""
    if not may_change(task, role=role, person_id=person_id, session=session):
        raise Forbidden("only the task's owner or a duty manager may change it")
    errors = [FieldError(n, "cannot be changed") for n in sorted(set(body) - _CHANGE_FIELDS)]
    managing = role in _MANAGERS
    for name in ("due_at", "department", "person"):
        if name in body and not managing:
            errors.append(FieldError(name, "only a duty manager may change it"))
    status = body.get("status")
    if status is not None and status not in ("acknowledged", "done"):
        errors.append(FieldError("status", "acknowledged or done"))
    note = _note(body, errors)
    due_at = _moment(body.get("due_at"), "due_at", errors) if "due_at" in body else None
    if due_at is not None and due_at <= now:
        errors.append(FieldError("due_at", "must be in the future"))
    owner: tuple[str | None, str | None] = (None, None)
    if managing and ("department" in body or "person" in body):
        owner = _owner(body, errors, session=session, required=True)
    if errors:
        raise ValidationFailed("the change is not valid", errors)
    incident = session.get(Incident, task.incident_id)
    assert incident is not None
    if task.status == "done":
        if status == "done" and len(body) == 1:
            return task  # a repeat
        raise Conflict("the task is done")
    changes: dict[str, Any] = {}
    if note is not None and note != task.note:
        task.note = note
        changes["note"] = note
    if "due_at" in body and due_at != task.due_at:
        _unschedule(task, session=session, now=now)
        changes["due_at"] = due_at.isoformat() if due_at else None
        task.due_at = due_at
        task.overdue_at = None
        _schedule(task, session=session)
    if owner != (None, None) and owner != (task.department_id, task.person_id):
        task.department_id, task.person_id = owner
        changes["department"], changes["person"] = owner
    if changes:
        timeline.append(
            incident,
            CommandEvent.TASK_UPDATED,
            {"task": task.id, **changes},
            session=session,
            at=now,
            actor=actor,
        )
    if status == "acknowledged" and task.status == "open":
        task.status = "acknowledged"
        task.acknowledged_at, task.acknowledged_by = now, actor
        timeline.append(
            incident,
            CommandEvent.TASK_ACKNOWLEDGED,
            {"task": task.id},
            session=session,
            at=now,
            actor=actor,
        )
    if status == "done":
        task.status = "done"
        task.done_at, task.done_by = now, actor
        if task.acknowledged_at is None:
            task.acknowledged_at, task.acknowledged_by = now, actor
        _unschedule(task, session=session, now=now)
        late = task.due_at is not None and now > task.due_at
        timeline.append(
            incident,
            CommandEvent.TASK_DONE,
            {"task": task.id, "late": late},
            session=session,
            at=now,
            actor=actor,
        )
        log.info("task_done", incident_id=incident.id, task_id=task.id, late=late)
    task.updated_at = now
    return task


def on_due(task_id: str, *, session: Session, now: datetime, policy: paging.PagingPolicy) -> bool:
    """A task not done at its due time pages its owner, once per due time; True if it did."""
    task = session.get(Task, task_id)
    if task is None or task.status == "done" or task.due_at is None or task.due_at > now:
        return False
    if task.overdue_at is not None and task.overdue_at >= task.due_at:
        return False
    incident = session.get(Incident, task.incident_id)
    assert incident is not None
    task.overdue_at = now
    due = task.due_at.astimezone(policy.zone).strftime("%H:%M")
    if task.person_id is not None:
        kind, target = "person", task.person_id
        chain: list[Any] = [f"person:{task.person_id}"]
    else:
        kind, target = "department", str(task.department_id)
        chain = paging.chain_for("department", target, session=session)
    page = paging.open_page(
        incident,
        None,
        kind=kind,
        target=target,
        chain=chain,
        template="",
        ack_within=PAGE_ACK_WITHIN,
        origin=f"task:{task.id}:{task.due_at.isoformat()}",
        stage_key=None,
        session=session,
        now=now,
        policy=policy,
        escalates=kind == "department",
        text={
            "zh": f"任务逾期：{task.title.get('zh', '')}（{incident.title}），应于 {due} 前完成"
            f"（{task.id}）。请尽快完成并更新。",
            "en": f"Task overdue: {task.title.get('en') or task.title.get('zh', '')} "
            f"({incident.title}) was due by {due} ({task.id}). Please finish it and update it.",
        },
    )
    task.page_id = page.id if page is not None else task.page_id
    timeline.append(
        incident,
        CommandEvent.TASK_OVERDUE,
        {"task": task.id, "due_at": task.due_at.isoformat(), "page": task.page_id},
        session=session,
        at=now,
        dedup_key=f"task-overdue:{task.id}:{task.due_at.isoformat()}",
    )
    log.info("task_overdue", incident_id=incident.id, task_id=task.id)
    return True


def get_task(task_id: str, *, session: Session) -> Task:
    found = session.get(Task, task_id)
    if found is None:
        raise NotFound(f"no task {task_id!r}")
    return found


def tasks_of(incident_id: str, *, session: Session) -> list[Task]:
    """An incident's tasks in the order they were made."""
    return list(
        session.scalars(
            select(Task).where(Task.incident_id == incident_id).order_by(Task.created_at, Task.id)
        )
    )


def open_tasks(
    *, session: Session, incident_ids: Sequence[str] | None = None, limit: int = 500
) -> list[Task]:
    """Tasks not done, soonest due first (those without a due time last)."""
    query = select(Task).where(Task.status.in_(OPEN))
    if incident_ids is not None:
        query = query.where(Task.incident_id.in_(list(incident_ids)))
    found = session.scalars(query.order_by(Task.created_at, Task.id).limit(limit))
    return sorted(found, key=lambda t: (t.due_at is None, t.due_at or t.created_at))


def overdue_tasks(*, session: Session, now: datetime, limit: int = 200) -> list[Task]:
    """Tasks past their due time and not done, most overdue first."""
    return list(
        session.scalars(
            select(Task)
            .where(Task.status.in_(OPEN), Task.due_at.is_not(None), Task.due_at <= now)
            .order_by(Task.due_at, Task.id)
            .limit(limit)
        )
    )
