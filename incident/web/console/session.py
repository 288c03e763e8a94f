"""The console's login session: who is signed in, the CSRF token every form carries, and
messages kept for the next page. The session lives in a signed cookie (SessionMiddleware).

The cookie also carries the user's session version and the sign-in time: a session whose
version the user has since raised (logout, a password change, deactivation end every session
of the user) or that is older than ``INCIDENT_CONSOLE_SESSION_HOURS`` since signing in is
refused, however recently the cookie was re-signed."""

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
from incident.web.state import state_of

USER_KEY = "user"
VERSION_KEY = "version"
SINCE_KEY = "since"
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
    version, since = request.session.get(VERSION_KEY), request.session.get(SINCE_KEY)
    state = state_of(request)
    now = state.clock.now().timestamp()
    lifetime = state.settings.console_session_hours * 3600
    if (
        not isinstance(version, int)
        or not isinstance(since, int | float)
        or not since - 60 <= now <= since + lifetime
    ):
        request.session.clear()
        return None

    def run(session: Session) -> Principal | None:
        user = session.get(User, user_id)
        if user is None or not user.active or user.session_version != version:
            return None
        return principal_of(user)

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


def sign_in(request: Request, user: Principal, version: int) -> None:
    """Start a fresh session for ``user`` at their session ``version`` (a new CSRF token: no
    session fixation; the sign-in time bounds the session's life)."""
    request.session.clear()
    request.session[USER_KEY] = user.user_id
    request.session[VERSION_KEY] = version
    request.session[SINCE_KEY] = int(state_of(request).clock.now().timestamp())
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
