"""The console's login session: who is signed in, the CSRF token every form carries, and
messages kept for the next page. The session lives in a signed cookie (SessionMiddleware)."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session
from starlette.requests import Request

from incident.models import User
from incident.security import Principal, principal_of
from incident.web.api import read
from incident.web.problems import BadRequest
from incident.web.requests import read_body

USER_KEY = "user"
CSRF_KEY = "csrf"
FLASH_KEY = "flash"
CSRF_FIELD = "csrf"
FORM_FIELDS_MAX = 400
FORM_TYPE = "application/x-www-form-urlencoded"


class LoginRequired(Exception):
    """Nobody is signed in (or their user was deactivated)."""


class FormExpired(Exception):
    """A form came without this session's CSRF token (an old tab, or another site)."""


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


async def read_form(request: Request) -> dict[str, str]:
    """The posted form (bounded in size), once its CSRF token is checked; the last value
    of a repeated field wins."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        raise BadRequest(f"send the form as {FORM_TYPE}", status=415)
    raw = await read_body(request)
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, max_num_fields=FORM_FIELDS_MAX
        )
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read") from None
    form = dict(pairs)
    given = form.pop(CSRF_FIELD, "")
    expected = request.session.get(CSRF_KEY)
    if not isinstance(expected, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise FormExpired()
    return form


async def signed_in(request: Request) -> Principal | None:
    """The signed-in user, or None; a deactivated user is signed out."""
    cached = request.scope.get("incident.console_user")
    if isinstance(cached, Principal):
        return cached
    user_id = request.session.get(USER_KEY)
    if not isinstance(user_id, str):
        return None

    def run(session: Session) -> Principal | None:
        user = session.get(User, user_id)
        return principal_of(user) if user is not None and user.active else None

    found = await read(request, run)
    if found is None:
        request.session.clear()
        return None
    request.scope["incident.console_user"] = found
    return found


async def require_user(request: Request) -> Principal:
    found = await signed_in(request)
    if found is None:
        raise LoginRequired()
    return found


def sign_in(request: Request, user: Principal) -> None:
    """Start a fresh session for ``user`` (a new CSRF token: no session fixation)."""
    request.session.clear()
    request.session[USER_KEY] = user.user_id
    request.session[CSRF_KEY] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    request.session.clear()


def flash(request: Request, zh: str, en: str, kind: str = "info") -> None:
    """A message for the next page shown (kind: info, ok, error)."""
    kept = request.session.get(FLASH_KEY)
    messages: list[Any] = kept if isinstance(kept, list) else []
    request.session[FLASH_KEY] = [*messages[-4:], [kind, zh, en]]


def pop_flashes(request: Request) -> list[tuple[str, str, str]]:
    kept = request.session.pop(FLASH_KEY, None)
    if not isinstance(kept, list):
        return []
    return [(str(k), str(zh), str(en)) for k, zh, en in kept if isinstance(k, str)]
