"""One drill: what was measured, its evaluations (HSEEP ratings, findings) and corrective
actions, and the evaluator's form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import drills
from incident.drills.evaluations import actions_of
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.models import CorrectiveAction, Evaluation, Incident
from incident.playbook import Playbook
from incident.response import playbook_of
from incident.security import Principal
from incident.web.api import read, write
from incident.web.console.drills import ActionRow, action_rows, drill_of
from incident.web.console.errors import console_page
from incident.web.console.forms import local_time
from incident.web.console.labels import Pair
from incident.web.console.names import Names
from incident.web.console.pages import field_errors, render, see_other
from incident.web.console.session import flash, read_form
from incident.web.state import AppState, state_of

RUNS_DRILLS = ("evaluator", "duty_manager")
RATING_ROWS = 4
FINDING_ROWS = 2
ACTION_ROWS = 2
DUE_MESSAGE = "a date and time, like 2026-11-22 10:30"
_INDEXED = re.compile(r"^(ratings|improvements|corrective_actions)\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class DrillView:
    incident: Incident
    playbook: Playbook
    metrics: drills.Metrics
    evaluations: list[Evaluation]
    actions: list[ActionRow]
    names: Names
    people: list[tuple[str, str]]
    drills_of_playbook: int

    def stage_title(self, key: str) -> Pair:
        try:
            title = self.playbook.stage(key).title or {}
        except KeyError:
            title = {}
        return (title.get("zh") or key, title.get("en") or title.get("zh") or key)


def drill_view(incident_id: str, *, session: Session, now: datetime, state: AppState) -> DrillView:
    incident = drill_of(incident_id, session=session)
    names = Names.load(session)
    return DrillView(
        incident=incident,
        playbook=playbook_of(incident, state.catalog),
        metrics=drills.measure(incident.id, session=session, catalog=state.catalog),
        evaluations=drills.evaluations_of(incident.id, session=session),
        actions=action_rows(actions_of(incident.id, session=session), names, now),
        names=names,
        people=sorted(names.people.items(), key=lambda p: p[0]),
        drills_of_playbook=int(
            session.scalar(
                select(func.count())
                .select_from(Incident)
                .where(Incident.playbook_id == incident.playbook_id, Incident.mode == "drill")
            )
            or 0
        ),
    )


def critical_tasks(playbook: Playbook) -> list[str]:
    """Suggested critical tasks: the stages with a target time, then the others."""
    titled = [
        (s.target is None, (s.title or {}).get("zh") or s.id)
        for s in playbook.stages
        if s.when.kind != "resolved"
    ]
    return [title for _, title in sorted(titled, key=lambda t: t[0])][:RATING_ROWS]


def evaluation_body(
    form: Mapping[str, str], zone: Any
) -> tuple[dict[str, Any], dict[str, dict[int, int]]]:
    """The evaluation the form gives (blank rows left out), and where each kept row came
    from (to put the engine's errors back on the right row)."""
    rows: dict[str, dict[int, int]] = {"ratings": {}, "improvements": {}, "corrective_actions": {}}
    ratings: list[dict[str, Any]] = []
    for n in range(RATING_ROWS):
        task, rating = form.get(f"ratings.{n}.task", ""), form.get(f"ratings.{n}.rating", "")
        if rating:
            rows["ratings"][len(ratings)] = n
            ratings.append(
                {"task": task, "rating": rating, "notes": form.get(f"ratings.{n}.notes")}
            )
    improvements: list[dict[str, Any]] = []
    for n in range(FINDING_ROWS):
        finding = form.get(f"improvements.{n}.finding", "")
        cause = form.get(f"improvements.{n}.root_cause", "")
        if finding.strip() or cause.strip():
            rows["improvements"][len(improvements)] = n
            improvements.append({"finding": finding, "root_cause": cause})
    actions: list[dict[str, Any]] = []
    for n in range(ACTION_ROWS):
        title = form.get(f"corrective_actions.{n}.title", "")
        owner = form.get(f"corrective_actions.{n}.owner", "")
        due_raw = form.get(f"corrective_actions.{n}.due_at", "")
        if not (title.strip() or owner or due_raw.strip()):
            continue
        # An unreadable time goes through as typed: the engine reports it with the rest.
        due = local_time(due_raw, zone) or due_raw.strip() or None
        rows["corrective_actions"][len(actions)] = n
        actions.append({"title": title, "owner": owner or None, "due_at": due})
    strengths = [line.strip() for line in form.get("strengths", "").splitlines() if line.strip()]
    body = {
        "ratings": ratings,
        "strengths": strengths,
        "improvements": improvements,
        "corrective_actions": actions,
        "notes": form.get("notes") or None,
    }
    return body, rows


def back_on_rows(errors: list[FieldError], rows: dict[str, dict[int, int]]) -> list[FieldError]:
    """The engine numbers the rows it was given; the form numbers all of its rows."""
    placed = []
    for error in errors:
        found = _INDEXED.match(error.field)
        if found:
            group, index, rest = found.group(1), int(found.group(2)), found.group(3)
            index = rows.get(group, {}).get(index, index)
            text = DUE_MESSAGE if rest == "due_at" else error.message
            error = FieldError(f"{group}.{index}.{rest}", text)
        elif error.field == "ratings":
            error = FieldError("ratings.0.rating", error.message)
        placed.append(error)
    return placed


def _page(
    request: Request,
    user: Principal,
    view: DrillView,
    *,
    values: Mapping[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    shown = {f"ratings.{n}.task": task for n, task in enumerate(critical_tasks(view.playbook))}
    shown.update(values or {})
    return render(
        request,
        "console/drill.html",
        user=user,
        status=status,
        view=view,
        ratings=drills.RATINGS,
        rating_rows=range(RATING_ROWS),
        finding_rows=range(FINDING_ROWS),
        action_rows=range(ACTION_ROWS),
        may_evaluate=user.may("evaluator"),
        may_track=user.may(*RUNS_DRILLS, "staff"),
        values=shown,
        errors=errors or {},
    )


async def _view(request: Request) -> DrillView:
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    return await read(
        request, lambda s: drill_view(incident_id, session=s, now=state.clock.now(), state=state)
    )


@console_page
async def show(request: Request, user: Principal) -> Response:
    """A drill: metrics, evaluations, corrective actions."""
    return _page(request, user, await _view(request))


@console_page
async def evaluate(request: Request, user: Principal) -> Response:
    """Record an evaluation with its corrective actions; errors next to their fields."""
    user.require("evaluator")
    form = await read_form(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    body, rows = evaluation_body(form, state.settings.zone)

    def run(session: Session, now: datetime) -> None:
        drill_of(incident_id, session=session)
        drills.evaluate(incident_id, body, session=session, now=now, evaluator=user.name)

    problems: list[FieldError] = []
    try:
        await write(request, run)
    except ValidationFailed as exc:
        problems = back_on_rows(exc.errors, rows)
    if problems:
        view = await _view(request)
        return _page(request, user, view, values=form, errors=field_errors(problems), status=422)
    flash(request, "评估已记录。", "The evaluation is recorded.", "ok")
    return see_other(f"/drills/{incident_id}")


@console_page
async def track_action(request: Request, user: Principal) -> Response:
    """Move a corrective action on: in progress, done."""
    user.require(*RUNS_DRILLS, "staff")
    form = await read_form(request)
    incident_id = request.path_params["incident_id"]
    action_id = request.path_params["action_id"]

    def run(session: Session, now: datetime) -> None:
        action = session.get(CorrectiveAction, action_id)
        if action is None or action.incident_id != incident_id:
            raise NotFound(f"no corrective action {action_id!r} in this drill")
        drills.close_action(
            action_id, form.get("status"), session=session, now=now, actor=user.name
        )

    try:
        await write(request, run)
    except (Conflict, ValidationFailed) as exc:
        flash(request, f"未更改：{exc}", f"Not changed: {exc}", "error")
    else:
        flash(request, "整改措施已更新。", "The corrective action is updated.", "ok")
    return see_other(f"/drills/{incident_id}#actions")


routes = [
    Route("/drills/{incident_id}", show, methods=["GET"], include_in_schema=False),
    Route("/drills/{incident_id}/evaluations", evaluate, methods=["POST"], include_in_schema=False),
    Route(
        "/drills/{incident_id}/actions/{action_id}",
        track_action,
        methods=["POST"],
        include_in_schema=False,
    ),
]
