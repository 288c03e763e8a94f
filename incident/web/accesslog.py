"""The access log of ``incident serve``: one line per request naming the route template
(``/ack/{token}``), never the path itself, so signed links and inbound secrets in paths and
query strings stay out of the log (uvicorn's own access log, which prints them, is off)."""

from __future__ import annotations

import time

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from incident.logs import get_logger

log = get_logger("incident.access")
UNMATCHED = "(no route)"


def route_of(scope: Scope) -> str:
    """The template of the route that took the request (``/ack/{token}``), or ``(no route)``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    return f"{path}/{{path}}" if isinstance(route, Mount) else path or "/"


class AccessLog:
    """Logs method, route template, status and duration of every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "http_request",
                method=scope.get("method"),
                route=route_of(scope),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                http_version=scope.get("http_version"),
            )
