"""Signing in and out of the console, and the language switch."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident.logs import get_logger
from incident.models import User
from incident.security import Principal, check_password, end_sessions, principal_of
from incident.web.api import read, write
from incident.web.console.errors import console_page, error_page, public_page
from incident.web.console.pages import LANG_COOKIE, LANGUAGES, local_path, render, see_other
from incident.web.console.session import (
    FormExpired,
    read_form,
    sign_in,
    sign_out,
    signed_in,
)
from incident.web.console.throttle import LoginThrottle
from incident.web.problems import BadRequest

log = get_logger(__name__)
NAME_MAX = 100
PASSWORD_MAX = 1000


def throttle_of(request: Request) -> LoginThrottle:
    """The app's login throttle (made on first use)."""
    app_state = request.app.state
    found = getattr(app_state, "login_throttle", None)
    if not isinstance(found, LoginThrottle):
        found = LoginThrottle()
        app_state.login_throttle = found
    return found


@functools.cache
def _stand_in() -> User:
    """A user with a real hash, checked when the name is unknown so that both cases take
    the same time (no user enumeration by timing)."""
    from argon2 import PasswordHasher

    return User(password_hash=PasswordHasher().hash("stand-in"), active=True)


def _check(name: str, password: str, session: Session) -> tuple[Principal, int] | None:
    """The user and their session version, when the password is theirs."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        check_password(_stand_in(), password)
        return None
    return (principal_of(user), user.session_version) if check_password(user, password) else None


@public_page
async def login_page(request: Request) -> Response:
    """The login form."""
    after = local_path(request.query_params.get("next"))
    if await signed_in(request) is not None:
        return see_other(after)
    return render(request, "console/login.html", user=None, after=after)


@public_page
async def login(request: Request) -> Response:
    """Check a name and password; failures slow down the next attempts."""
    try:
        form = await read_form(request)
    except FormExpired:
        return render(request, "console/login.html", user=None, status=403, after="/", expired=True)
    except BadRequest as exc:
        return error_page(request, None, exc.status, "请求有误", "Bad request", str(exc))
    name = form.get("name", "").strip()
    password = form.get("password", "")
    after = local_path(form.get("next"))
    errors: dict[str, str] = {}
    if not name or len(name) > NAME_MAX:
        errors["name"] = "请输入用户名 · Enter your user name"
    if not password or len(password) > PASSWORD_MAX:
        errors["password"] = "请输入密码 · Enter your password"
    if errors:
        return render(
            request,
            "console/login.html",
            user=None,
            status=422,
            after=after,
            errors=errors,
            values={"name": name[:NAME_MAX]},
        )
    throttle = throttle_of(request)
    keys = throttle.keys(name, request.client.host if request.client else "unknown")
    await throttle.wait(keys)
    found = await read(request, lambda session: _check(name, password, session))
    if found is None:
        throttle.failed(keys)
        log.warning("console_login_failed", user_name=name[:NAME_MAX])
        return render(
            request,
            "console/login.html",
            user=None,
            status=401,
            after=after,
            failed=True,
            values={"name": name},
        )
    throttle.succeeded(keys)
    user, version = found
    sign_in(request, user, version)
    log.info("console_login", user_id=user.user_id, role=user.role)
    return see_other(after)


@console_page
async def logout(request: Request, user: Principal) -> Response:
    """Sign out (a form with the CSRF token: another site cannot sign you out); every
    session of the user ends, on every device, copied cookies included."""
    await read_form(request)

    def end(session: Session, now: datetime) -> None:
        end_sessions(user.user_id, session=session)

    await write(request, end)
    sign_out(request)
    log.info("console_logout", user_id=user.user_id)
    return see_other("/login")


@public_page
async def choose_language(request: Request) -> Response:
    """Remember the reader's language (zh or en) in a cookie and go back."""
    lang = request.path_params["lang"]
    response = see_other(local_path(request.query_params.get("next")))
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="lax"
        )
    return response


routes = [
    Route("/login", login_page, methods=["GET"], include_in_schema=False),
    Route("/login", login, methods=["POST"], include_in_schema=False),
    Route("/logout", logout, methods=["POST"], include_in_schema=False),
    Route("/lang/{lang}", choose_language, methods=["GET"], include_in_schema=False),
]
