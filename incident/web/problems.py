"""Errors to RFC 9457 problem+json: one table from exception to status."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from incident import errors
from incident.db import database_unavailable
from incident.logs import get_logger
from incident.web.accesslog import route_of

log = get_logger(__name__)

PROBLEM_TYPE = "https://incident.example/problems/"

# Most specific first.
STATUS: list[tuple[type[errors.IncidentError], int, str]] = [
    (errors.IdempotencyMismatch, 422, "idempotency-key-reused"),
    (errors.ValidationFailed, 422, "validation"),
    (errors.FileError, 422, "invalid-file"),
    (errors.NotFound, 404, "not-found"),
    (errors.Conflict, 409, "conflict"),
    (errors.AuthError, 401, "unauthenticated"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.Gone, 410, "gone"),
    (errors.ConfigError, 500, "configuration"),
]
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
DATABASE_RETRY_AFTER = "5"


class BadRequest(errors.IncidentError):
    """Malformed request (not JSON, not an object)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def problem(status: int, detail: str, *, slug: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + (slug or str(status)),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def from_error(exc: Exception) -> JSONResponse:
    if isinstance(exc, BadRequest):
        return problem(exc.status, str(exc), slug="bad-request")
    for kind, status, slug in STATUS:
        if isinstance(exc, kind):
            extra: dict[str, Any] = {}
            if isinstance(exc, errors.ValidationFailed):
                extra["errors"] = [{"field": e.field, "message": e.message} for e in exc.errors]
            if isinstance(exc, errors.FileError):
                extra["errors"] = [
                    {"field": f"{p.file}:{p.line}", "message": p.message} for p in exc.problems
                ]
            return problem(status, str(exc), slug=slug, **extra)
    log.exception("unhandled_error", error_type=type(exc).__name__)
    return problem(500, "the server failed; the error was logged", slug="internal")


async def incident_error_handler(request: Request, exc: Exception) -> Response:
    return from_error(exc)


def allowed_methods(request: Request) -> str:
    """The methods some route takes at this path (for ``Allow`` on a 405)."""
    methods: set[str] = set()
    for route in getattr(request.app, "routes", []):
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = problem(exc.status_code, exc.detail or _TITLES.get(exc.status_code, "Error"))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405:
        response.headers["Allow"] = allowed_methods(request) or response.headers.get("Allow", "")
    return response


async def database_error_handler(request: Request, exc: Exception) -> Response:
    """503 with ``Retry-After`` while the database is away; other database errors are 500s."""
    if not database_unavailable(exc):
        return from_error(exc)
    cause = getattr(exc, "orig", None) or exc
    log.warning(
        "database_unavailable", error_type=type(cause).__name__, route=route_of(request.scope)
    )
    response = problem(
        503, "the database is unavailable; try again shortly", slug="database-unavailable"
    )
    response.headers["Retry-After"] = DATABASE_RETRY_AFTER
    return response


async def server_error_handler(request: Request, exc: Exception) -> Response:
    return from_error(exc)
