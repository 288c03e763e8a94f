"""Notices from the console: draft (from a template or typed), preview per language,
approve and publish, then updates and the all-clear, as the notices API does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import notices, response
from incident.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from incident.models import Incident, Notice
from incident.playbook import Playbook
from incident.security import Principal
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.console.errors import console_page
from incident.web.console.pages import field_errors, render, see_other
from incident.web.console.session import flash, read_form
from incident.web.console.views import NoticeRow, notice_row
from incident.web.public import cache_of
from incident.web.state import state_of

LANGUAGES = ("zh", "en")
TEXT_PARTS = ("headline", "body")
NEXT_KINDS = ("update", "all_clear", "withdrawal")


@dataclass(frozen=True)
class NoticeView:
    incident: Incident
    playbook: Playbook
    notice: Notice
    row: NoticeRow

    @property
    def latest(self) -> Any:
        return self.notice.versions[-1] if self.notice.versions else None

    @property
    def open(self) -> bool:
        return self.notice.status in ("draft", "current") and self.incident.status != "closed"


def notice_templates(playbook: Playbook) -> list[tuple[str, str]]:
    """(template, kind) of the playbook's notice actions, in stage order."""
    found: dict[str, str] = {}
    for stage in playbook.stages:
        for action in stage.actions:
            if action.kind == "notice":
                found.setdefault(str(action.params["template"]), str(action.params.get("kind")))
    return list(found.items())


def _draft(form: Mapping[str, str]) -> notices.Draft:
    """A template, or typed text (zh required, en optional); the form offers one or the other."""
    template = form.get("template", "").strip() or None
    if template is not None:
        return notices.Draft(template=template)
    languages: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        parts = {part: form.get(f"languages.{lang}.{part}", "") for part in TEXT_PARTS}
        if lang == "zh" or any(v.strip() for v in parts.values()):
            languages[lang] = parts
    return notices.Draft(languages=languages)


def _typed(form: Mapping[str, str]) -> dict[str, str]:
    return {
        f"languages.{lang}.{part}": form.get(f"languages.{lang}.{part}", "")
        for lang in LANGUAGES
        for part in TEXT_PARTS
    }


def _latest_texts(notice: Notice) -> dict[str, str]:
    if not notice.versions:
        return {}
    texts = notice.versions[-1].texts
    return {
        f"languages.{lang}.{part}": str((texts.get(lang) or {}).get(part, ""))
        for lang in LANGUAGES
        for part in TEXT_PARTS
    }


async def _incident(request: Request) -> tuple[Incident, Playbook]:
    state = state_of(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> tuple[Incident, Playbook]:
        incident = response.get_incident(incident_id, session=session)
        return incident, response.playbook_of(incident, state.catalog)

    return await read(request, run)


async def _notice_view(request: Request) -> NoticeView:
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    notice_id = request.path_params["notice_id"]

    def run(session: Session) -> NoticeView:
        notice = notices.get_notice(notice_id, session=session)
        if notice.incident_id != incident_id:
            raise NotFound(f"no notice {notice_id!r} in this incident")
        incident = notice.incident
        playbook = response.playbook_of(incident, state.catalog)
        return NoticeView(incident, playbook, notice, notice_row(notice))

    return await read(request, run)


def _new_form(
    request: Request,
    user: Principal,
    incident: Incident,
    playbook: Playbook,
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "console/notice_new.html",
        user=user,
        status=status,
        incident=incident,
        templates=notice_templates(playbook),
        values=values,
        errors=errors or {},
    )


def _notice_page(
    request: Request,
    user: Principal,
    view: NoticeView,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    published = view.notice.published_number is not None
    shown = {"kind": "update" if published else "", **_latest_texts(view.notice)}
    shown.update(values or {})
    return render(
        request,
        "console/notice.html",
        user=user,
        status=status,
        view=view,
        templates=notice_templates(view.playbook),
        kinds=NEXT_KINDS if published else (),
        values=shown,
        errors=errors or {},
    )


@console_page
async def new_notice(request: Request, user: Principal) -> Response:
    """The form to draft a notice of the incident."""
    user.require(*RUNS_INCIDENTS)
    incident, playbook = await _incident(request)
    first = next((t for t, kind in notice_templates(playbook) if kind in ("initial", "None")), "")
    return _new_form(request, user, incident, playbook, values={"template": first})


@console_page
async def draft(request: Request, user: Principal) -> Response:
    """Draft a notice (its first version); errors next to their fields."""
    user.require(*RUNS_INCIDENTS)
    form = await read_form(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    wanted = _draft(form)

    def run(session: Session, now: datetime) -> str:
        incident = response.get_incident(incident_id, session=session)
        notice = notices.draft_notice(
            incident,
            response.playbook_of(incident, state.catalog),
            wanted,
            session=session,
            now=now,
            zone=state.settings.zone,
            actor=user.name,
        )
        return notice.id

    try:
        notice_id = await write(request, run)
    except ValidationFailed as exc:
        incident, playbook = await _incident(request)
        values = {"template": form.get("template", ""), **_typed(form)}
        return _new_form(
            request,
            user,
            incident,
            playbook,
            values=values,
            errors=field_errors(exc.errors),
            status=422,
        )
    flash(
        request, "公告草稿已生成，请预览后批准发布。", "Draft ready: preview, then approve.", "ok"
    )
    return see_other(f"/incidents/{incident_id}/notices/{notice_id}")


@console_page
async def show(request: Request, user: Principal) -> Response:
    """A notice: its latest version in both languages, earlier versions, what can be done."""
    return _notice_page(request, user, await _notice_view(request))


@console_page
async def publish(request: Request, user: Principal) -> Response:
    """Approve and publish the latest draft (drills: to the drill channel only)."""
    user.require(*RUNS_INCIDENTS)
    await read_form(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    notice_id = request.path_params["notice_id"]
    policy = notices.PublicationPolicy.from_settings(state.settings)

    def run(session: Session, now: datetime) -> int:
        notice = notices.get_notice(notice_id, session=session)
        if notice.incident_id != incident_id:
            raise NotFound(f"no notice {notice_id!r} in this incident")
        return notices.publish(
            notice, session=session, now=now, actor=user.name, policy=policy
        ).number

    try:
        number = await write(request, run)
    except (Conflict, Forbidden) as exc:
        flash(request, f"未发布：{exc}", f"Not published: {exc}", "error")
    else:
        cache_of(request).invalidate()
        flash(request, f"第{number}版已发布。", f"Version {number} is published.", "ok")
    return see_other(f"/incidents/{incident_id}/notices/{notice_id}")


@console_page
async def next_version(request: Request, user: Principal) -> Response:
    """Draft the next version: an update, the all-clear, a withdrawal, or a revised draft."""
    user.require(*RUNS_INCIDENTS)
    form = await read_form(request)
    state = state_of(request)
    incident_id = request.path_params["incident_id"]
    notice_id = request.path_params["notice_id"]
    kind = form.get("kind") or "update"
    wanted = _draft(form)

    def run(session: Session, now: datetime) -> None:
        notice = notices.get_notice(notice_id, session=session)
        if notice.incident_id != incident_id:
            raise NotFound(f"no notice {notice_id!r} in this incident")
        notices.draft_version(
            notice,
            response.playbook_of(notice.incident, state.catalog),
            kind,
            wanted,
            session=session,
            now=now,
            zone=state.settings.zone,
            actor=user.name,
        )

    problems: list[FieldError] = []
    try:
        await write(request, run)
    except ValidationFailed as exc:
        problems = exc.errors
    except Conflict as exc:
        flash(request, f"未起草：{exc}", f"Not drafted: {exc}", "error")
        return see_other(f"/incidents/{incident_id}/notices/{notice_id}")
    if problems:
        view = await _notice_view(request)
        values = {"template": form.get("template", ""), "kind": kind, **_typed(form)}
        return _notice_page(
            request, user, view, values=values, errors=field_errors(problems), status=422
        )
    flash(
        request,
        "新版本草稿已生成，请预览后批准发布。",
        "New draft ready: preview, then approve.",
        "ok",
    )
    return see_other(f"/incidents/{incident_id}/notices/{notice_id}")


routes = [
    Route(
        "/incidents/{incident_id}/notices/new",
        new_notice,
        methods=["GET"],
        include_in_schema=False,
    ),
    Route("/incidents/{incident_id}/notices", draft, methods=["POST"], include_in_schema=False),
    Route(
        "/incidents/{incident_id}/notices/{notice_id}",
        show,
        methods=["GET"],
        include_in_schema=False,
    ),
    Route(
        "/incidents/{incident_id}/notices/{notice_id}/publish",
        publish,
        methods=["POST"],
        include_in_schema=False,
    ),
    Route(
        "/incidents/{incident_id}/notices/{notice_id}/versions",
        next_version,
        methods=["POST"],
        include_in_schema=False,
    ),
]
