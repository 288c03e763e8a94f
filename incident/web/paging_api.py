"""Pages over HTTP: the board of an incident's pages, acknowledgement by API, by signed
link (GET shows a confirm page, only POST acknowledges) and by reply, and the demo inbox."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from incident import paging, response
from incident.errors import AuthError, Gone, NotFound
from incident.models import ContactMethod, Delivery, InboxMessage, Page, PageRecipient
from incident.privacy import mask_optional
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.auth import principal
from incident.web.problems import BadRequest
from incident.web.requests import read_action_body, read_body
from incident.web.state import state_of
from incident.web.views import iso

_pages = Environment(
    loader=PackageLoader("incident.web", "templates"), autoescape=select_autoescape(default=True)
)
_URL = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: str) -> Markup:
    """Escape a message and make its links clickable (the demo inbox)."""
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(escape(text[last : match.start()]))
        url = escape(match.group(0))
        out.append(Markup(f'<a href="{url}">{url}</a>'))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


_pages.filters["linkify"] = linkify
ACK_WORDS = {"1", "ack", "ok", "yes", "y", "收到", "确认"}
DECLINE_WORDS = {"2", "no", "n", "decline", "不能", "无法"}


def page_json(page: Page, deliveries: list[Delivery]) -> dict[str, Any]:
    by_recipient: dict[int, list[Delivery]] = {}
    for d in deliveries:
        if d.recipient_id is not None:
            by_recipient.setdefault(d.recipient_id, []).append(d)
    return {
        "id": page.id,
        "stage": page.stage_key,
        "target": {"kind": page.target_kind, "id": page.target_id},
        "status": page.status,
        "level": page.level,
        "chain": page.chain,
        "ack_within_s": page.ack_within_s,
        "ack_deadline": iso(page.ack_deadline),
        "created_at": iso(page.created_at),
        "acked_at": iso(page.acked_at),
        "acked_by": page.acked_by,
        "acked_via": page.acked_via,
        "unanswered_at": iso(page.exhausted_at),
        "recipients": [
            {
                "person": r.person_id,
                "level": r.level,
                "status": r.status,
                "responded_at": iso(r.responded_at),
                "deliveries": [
                    {
                        "id": d.id,
                        "channel": d.channel,
                        "contact": d.contact_position,
                        "status": d.status,
                        "attempts": d.attempts,
                        "last_error": mask_optional(d.last_error),
                        "idempotency_key": d.idempotency_key,
                        "finished_at": iso(d.finished_at),
                    }
                    for d in by_recipient.get(r.id, [])
                ],
            }
            for r in page.recipients
        ],
    }


def pages_board(incident_id: str, *, session: Session) -> list[dict[str, Any]]:
    pages = paging.pages_of(incident_id, session=session)
    deliveries = list(
        session.scalars(
            select(Delivery)
            .where(Delivery.incident_id == incident_id, Delivery.purpose == "page")
            .order_by(Delivery.id)
        )
    )
    return [page_json(p, deliveries) for p in pages]


async def list_pages(request: Request) -> Response:
    """Pages of an incident with recipients, deliveries, attempts and status."""
    principal(request)
    incident_id = request.path_params["incident_id"]

    def run(session: Session) -> dict[str, Any]:
        response.get_incident(incident_id, session=session)
        return {"items": pages_board(incident_id, session=session), "next_cursor": None}

    return JSONResponse(await read(request, run))


async def ack_page(request: Request) -> Response:
    """Acknowledge a page: the paged person themselves, or a duty manager."""
    who = principal(request)
    who.require("staff", *RUNS_INCIDENTS)
    await read_action_body(request)
    page_id = request.path_params["page_id"]

    def run(session: Session, now: datetime) -> dict[str, Any]:
        page = paging.get_page(page_id, session=session)
        paging.acknowledge_as(
            page,
            role=who.role,
            person_id=who.person_id,
            actor=who.name,
            via="api",
            session=session,
            now=now,
        )
        return {
            "id": page.id,
            "status": page.status,
            "acked_at": iso(page.acked_at),
            "acked_by": page.acked_by,
        }

    return JSONResponse(await write(request, run))


def _html(template: str, http_status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(_pages.get_template(template).render(**values), status_code=http_status)


async def ack_link_page(request: Request) -> Response:
    """The page an acknowledgement link opens: shows the page and a confirm button."""
    state = state_of(request)
    token = request.path_params["token"]

    def run(session: Session) -> dict[str, Any]:
        now = state.clock.now()
        recipient = paging.recipient_for_link(
            token, session=session, now=now, links=state.ctx.policy.links
        )
        incident = response.get_incident(recipient.page.incident_id, session=session)
        return {
            "title": incident.title,
            "severity": incident.severity,
            "drill": incident.mode == "drill",
            "status": recipient.page.status,
            "person": recipient.person_id,
        }

    try:
        info = await read(request, run)
    except (NotFound, Gone) as exc:
        return _html("ack.html", 410 if isinstance(exc, Gone) else 404, error=str(exc))
    return _html("ack.html", token=token, **info)


async def ack_link_confirm(request: Request) -> Response:
    """Acknowledge through a signed link (single use; 410 when used or expired)."""
    state = state_of(request)
    token = request.path_params["token"]
    await read_body(request)  # the confirm form posts nothing; bounded like every body

    def run(session: Session, now: datetime) -> Page:
        return paging.acknowledge_by_link(
            token, session=session, now=now, links=state.ctx.policy.links
        )

    try:
        page = await write(request, run)
    except (NotFound, Gone) as exc:
        if "json" in request.headers.get("accept", ""):
            raise
        return _html("ack.html", 410 if isinstance(exc, Gone) else 404, error=str(exc))
    if "json" in request.headers.get("accept", ""):
        return JSONResponse({"id": page.id, "status": page.status})
    return _html("ack.html", done=True, status=page.status)


def _check_inbound_secret(secret: str, request: Request, body: bytes) -> None:
    if not secret:
        raise NotFound("replies are not enabled (set INCIDENT_INBOUND_SECRET)")
    given = request.headers.get("x-incident-secret", "")
    signature = request.headers.get("x-incident-signature", "")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # bytes, not str: compare_digest refuses non-ASCII strings (a 500 otherwise)
    if given and hmac.compare_digest(given.encode(), secret.encode()):
        return
    if signature and hmac.compare_digest(
        signature.removeprefix("sha256=").encode(), expected.encode()
    ):
        return
    raise AuthError("the reply is not signed with the inbound secret")


def _parse_reply(request: Request, body: bytes) -> tuple[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    try:
        if ctype == "application/json":
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError
            sender, text = data.get("from"), data.get("text")
        else:
            form = parse_qs(body.decode())
            sender, text = (form.get("from") or [""])[0], (form.get("text") or [""])[0]
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("send {from, text} as JSON or a form") from None
    if not isinstance(sender, str) or not isinstance(text, str) or not sender or not text:
        raise BadRequest("send {from, text} as JSON or a form", status=422)
    return sender, text.strip()


async def inbound_reply(request: Request) -> Response:
    """A reply from a channel that carries them: "1"/"ACK" acknowledges, "2"/"NO" declines
    (escalates at once). ``from`` is the replying contact's address as in the roster."""
    state = state_of(request)
    body = await read_body(request)
    _check_inbound_secret(str(state.settings.inbound_secret), request, body)
    sender, text = _parse_reply(request, body)
    channel = request.path_params["channel"]
    word = text.split()[0].lower() if text.split() else ""
    if word not in ACK_WORDS | DECLINE_WORDS:
        raise BadRequest("reply 1 (ACK) to acknowledge or 2 (NO) to decline", status=422)

    def run(session: Session, now: datetime) -> dict[str, Any]:
        person_ids = set(
            session.scalars(
                select(ContactMethod.person_id).where(
                    ContactMethod.url.in_([sender, f"{channel}://{sender}"])
                )
            )
        )
        if not person_ids:
            raise NotFound("no roster contact has this address")
        recipient = session.scalar(
            select(PageRecipient)
            .join(Page)
            .where(
                PageRecipient.person_id.in_(person_ids),
                PageRecipient.status.in_(("pending", "sent")),
                Page.status.in_(("pending", "sent", "escalated")),
            )
            .order_by(PageRecipient.created_at.desc(), PageRecipient.id.desc())
        )
        if recipient is None:
            raise NotFound("no open page for this contact")
        page = recipient.page
        if word in ACK_WORDS:
            paging.acknowledge(
                page,
                person_id=recipient.person_id,
                via="reply",
                actor=recipient.person_id,
                session=session,
                now=now,
            )
        else:
            incident = response.get_incident(page.incident_id, session=session)
            paging.decline(
                page,
                person_id=recipient.person_id,
                via="reply",
                session=session,
                now=now,
                policy=state.ctx.policy,
                playbook=response.playbook_of(incident, state.catalog),
            )
        return {"page": page.id, "status": page.status}

    return JSONResponse(await write(request, run))


async def demo_inbox(request: Request) -> Response:
    """The demo phone: messages sent to ``inbox://`` contacts, newest first."""
    state = state_of(request)
    if not state.settings.demo_inbox:
        raise NotFound("the demo inbox is off")
    person = request.query_params.get("person")

    def run(session: Session) -> list[InboxMessage]:
        query = select(InboxMessage).order_by(InboxMessage.id.desc()).limit(200)
        if person:
            query = query.where(InboxMessage.address.like(f"inbox://{person}%"))
        return list(session.scalars(query))

    messages = await read(request, run)
    if "json" in request.headers.get("accept", ""):
        return JSONResponse(
            {
                "items": [
                    {
                        "id": m.id,
                        "to": m.address,
                        "subject": m.subject,
                        "body": m.body,
                        "received_at": iso(m.received_at),
                    }
                    for m in messages
                ],
                "next_cursor": None,
            }
        )
    return _html(
        "inbox.html", messages=messages, person=person, zone=state_of(request).settings.zone
    )


routes = [
    Route("/api/incidents/{incident_id}/pages", list_pages, methods=["GET"]),
    Route("/api/pages/{page_id}/ack", ack_page, methods=["POST"]),
    Route("/ack/{token}", ack_link_page, methods=["GET"]),
    Route("/ack/{token}", ack_link_confirm, methods=["POST"]),
    Route("/inbound/{channel}", inbound_reply, methods=["POST"]),
    Route("/demo/inbox", demo_inbox, methods=["GET"]),
]
