"""The wrapper every console route goes through: sign-in required, and every error shown as
a page a duty manager can act on (never a stack trace, never a JSON problem)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from incident import errors
from incident.logs import get_logger
from incident.security import Principal
from incident.web.accesslog import route_of
from incident.web.console.pages import render, see_other
from incident.web.console.session import FormExpired, LoginRequired, signed_in
from incident.web.problems import BadRequest

log = get_logger(__name__)

Endpoint = Callable[[Request, Principal], Awaitable[Response]]
Route = Callable[[Request], Awaitable[Response]]

# exception, status, zh title, en title (most specific first)
PAGES: list[tuple[type[Exception], int, str, str]] = [
    (errors.NotFound, 404, "找不到", "Not found"),
    (errors.Forbidden, 403, "无权操作", "Not allowed"),
    (errors.Gone, 410, "已失效", "No longer available"),
    (errors.Conflict, 409, "无法执行", "Cannot do that now"),
    (errors.ValidationFailed, 422, "输入有误", "Please check the input"),
    (errors.IncidentError, 400, "请求有误", "Bad request"),
]


def error_page(
    request: Request, user: Principal | None, status: int, zh: str, en: str, detail: str
) -> HTMLResponse:
    return render(
        request,
        "console/error.html",
        user=user,
        status=status,
        title=(zh, en),
        detail=detail,
        code=status,
    )


def console_page(endpoint: Endpoint) -> Route:
    """Make a console route of ``endpoint(request, user)``: a visitor not signed in is sent
    to the login page, and errors become friendly pages."""
    return _signed_in_route(endpoint, partial=False)


def console_partial(endpoint: Endpoint) -> Route:
    """A part of a page polled by its script: like a page, but 401 when not signed in."""
    return _signed_in_route(endpoint, partial=True)


def _signed_in_route(endpoint: Endpoint, *, partial: bool) -> Route:
    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        user: Principal | None = None
        try:
            user = await signed_in(request)
            if user is None:
                raise LoginRequired()
            return await endpoint(request, user)
        except LoginRequired:
            if partial:
                return HTMLResponse("", status_code=401)
            target = "/"  # a form posted after the session ended is not replayed
            if request.method == "GET":
                query = f"?{request.url.query}" if request.url.query else ""
                target = request.url.path + query
            return see_other(f"/login?next={quote(target)}")
        except Exception as exc:
            return failure_page(request, user, exc)

    return run


def public_page(endpoint: Route) -> Route:
    """A console route anyone may open (the login page): errors become friendly pages."""

    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            return failure_page(request, None, exc)

    return run


def failure_page(request: Request, user: Principal | None, exc: Exception) -> HTMLResponse:
    """The page for an error: what went wrong, in words; unexpected errors are logged."""
    if isinstance(exc, FormExpired):
        return error_page(
            request,
            user,
            403,
            "表单已过期",
            "This form has expired",
            "请刷新页面后重试。Reload the page and try again.",
        )
    if isinstance(exc, BadRequest):
        return error_page(request, user, exc.status, "请求有误", "Bad request", str(exc))
    for kind, status, zh, en in PAGES:
        if isinstance(exc, kind):
            return error_page(request, user, status, zh, en, _detail(exc))
    log.exception("console_error", error_type=type(exc).__name__, route=route_of(request.scope))
    return error_page(
        request,
        user,
        500,
        "出错了",
        "Something went wrong",
        "错误已记录，请重试或联系管理员。The error was logged; try again or tell the "
        "administrator.",
    )


def _detail(exc: Exception) -> str:
    if isinstance(exc, errors.ValidationFailed) and exc.errors:
        return "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
    return str(exc)
