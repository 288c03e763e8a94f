"""Health, readiness and the OpenAPI document."""

from __future__ import annotations

import copy
import inspect
import time
from typing import Any

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.convertors import IntegerConvertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from incident import __version__, migrate, operations
from incident.web import schemas
from incident.web.state import state_of


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the database answers, its schema is current and a worker is alive."""
    state = state_of(request)
    db = state.db
    stale = state.settings.auditor_worker_stale_seconds

    def check() -> dict[str, Any]:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = migrate.is_current(db.engine)
        workers = []
        if current:
            with db.reading() as session:
                workers = [
                    w
                    for w in operations.workers(session=session, now=state.clock.now())
                    if not w.stopped
                ]
        return {
            "database": "ok",
            "migrations": "current" if current else "behind",
            "workers": [
                {"worker": w.owner, "host": w.host, "heartbeat_age_s": w.age_s} for w in workers
            ],
            "workers_alive": sum(1 for w in workers if w.age_s <= stale),
        }

    try:
        checks = await run_in_threadpool(check)
    except Exception as exc:  # the database is away: not ready, say why
        return JSONResponse(
            {"status": "unavailable", "database": type(exc).__name__}, status_code=503
        )
    catalog = state.catalog
    checks["playbooks"] = {  # a broken file is served from its last good version, or absent
        "loaded": len(catalog.ids()),
        "broken": [broken.to_summary() for broken in catalog.broken],
    }
    if checks["migrations"] != "current":
        return JSONResponse({"status": "unavailable", **checks}, status_code=503)
    started = state.embedded_worker_started
    starting = started is not None and time.monotonic() - started < stale
    if not checks["workers_alive"] and not starting:
        reason = f"no worker has recorded a heartbeat in the last {stale:g} s"
        return JSONResponse({"status": "not ready", **checks, "reason": reason}, status_code=503)
    return JSONResponse({"status": "ok", **checks})


def openapi_document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes, with the schemas of ``web.schemas``.

    A route without an entry in ``schemas.OPERATIONS`` is listed with a bare default
    response and ``x-undocumented: true`` (a test refuses that)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if (
            not isinstance(route, Route)
            or not route.include_in_schema
            or route.path == "/openapi.json"
        ):
            continue
        doc = inspect.getdoc(route.endpoint) or ""
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation: dict[str, Any] = {
                "summary": doc.splitlines()[0] if doc else route.name,
                "operationId": f"{method.lower()}_{route.name}",
            }
            fragment = schemas.OPERATIONS.get(f"{method} {route.path}")
            if fragment is None:
                operation["x-undocumented"] = True
                operation["responses"] = {
                    "default": {
                        "description": "JSON; errors are application/problem+json (RFC 9457)"
                    }
                }
            else:
                operation.update(copy.deepcopy(fragment))
            _declare_path_parameters(operation, route)
            paths.setdefault(route.path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "incident", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": copy.deepcopy(schemas.COMPONENTS),
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _declare_path_parameters(operation: dict[str, Any], route: Route) -> None:
    """Declare each path parameter the fragment leaves out (an int convertor: an integer)."""
    declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"}
    for name, convertor in route.param_convertors.items():
        if name not in declared:
            kind = "integer" if isinstance(convertor, IntegerConvertor) else "string"
            operation.setdefault("parameters", []).append(
                {"name": name, "in": "path", "required": True, "schema": {"type": kind}}
            )


async def openapi(request: Request) -> Response:
    """This document."""
    return JSONResponse(openapi_document(list(request.app.routes)))


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
