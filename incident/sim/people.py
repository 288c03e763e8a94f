"""The people paged: each answers a page at some level, or not, after some time; each task's
owner finishes it, or not. Decided from the seed and the page's origin and level (the task's
origin), so a run replays the same way; acted on whenever simulated time passes."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from incident import command
from incident.errors import IncidentError
from incident.models import Page, Task
from incident.sim.desk import OPEN, Desk

ANSWER_LATER = 0.4  # a page is answered at each later level, or by the duty director
FINISH_TASK = 0.85


class Responders:
    def __init__(self, desk: Desk, seed: int, answering: float) -> None:
        self.desk = desk
        self.seed = seed
        self.answering = answering  # at the first level

    def act(self) -> None:
        now = self.desk.clock.now()
        index = {i.id: i.index for i in self.desk.ledger.incidents}
        with self.desk.db.reading() as session:
            pages = session.execute(
                select(
                    Page.id,
                    Page.incident_id,
                    Page.origin,
                    Page.level,
                    Page.target_kind,
                    Page.ack_deadline,
                    Page.ack_within_s,
                )
                .where(
                    Page.incident_id.in_(list(index)),
                    Page.status.in_(OPEN),
                    Page.exhausted_at.is_(None),
                    Page.ack_deadline.is_not(None),
                )
                .order_by(Page.created_at, Page.origin)
            ).all()
            tasks = session.execute(
                select(Task.id, Task.incident_id, Task.origin, Task.created_at, Task.due_at)
                .where(Task.incident_id.in_(list(index)), Task.status != "done")
                .order_by(Task.created_at, Task.origin)
            ).all()
        for page in pages:
            rng = random.Random(f"{self.seed}:{index[page.incident_id]}:{page.origin}:{page.level}")
            first = page.level == 0 and page.target_kind != "duty"
            chance = self.answering if first else ANSWER_LATER
            if rng.random() >= chance:
                continue
            window = timedelta(seconds=page.ack_within_s)
            answer_at = page.ack_deadline - window + window * rng.uniform(0.05, 1.3)
            if now >= answer_at:
                self.desk.ack(page.id, rng.choice(["recipient", "link", "duty"]))
        for task in tasks:
            if task.due_at is None:
                continue
            rng = random.Random(f"{self.seed}:{index[task.incident_id]}:{task.origin}")
            if rng.random() >= FINISH_TASK:
                continue
            done_at = task.created_at + (task.due_at - task.created_at) * rng.uniform(0.1, 1.5)
            if now >= done_at:
                self.finish(task.id)

    def finish(self, task_id: str) -> None:
        clock = self.desk.clock
        try:
            with self.desk.db.transaction() as session:
                task = command.tasks.get_task(task_id, session=session)
                command.tasks.change(
                    task,
                    {"status": "done"},
                    session=session,
                    now=clock.now(),
                    actor="sim",
                    role="duty_manager",
                    person_id=None,
                )
        except IncidentError as exc:
            self.desk.note(f"task {task_id} not finished: {exc}")
            return
        self.desk.note(f"task {task_id} done")
