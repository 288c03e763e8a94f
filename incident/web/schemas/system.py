"""Health, readiness and metrics: the unauthenticated routes operations watch."""

from __future__ import annotations

from incident.web.schemas.base import (
    NUM,
    STR,
    Schema,
    array,
    body_of,
    enum,
    obj,
    ok,
    op,
    problems,
)

# The media types a 2xx may carry, and why.
NON_JSON: dict[str, tuple[str, ...]] = {
    "GET /metrics": ("text/plain",),  # Prometheus text format
}

OPERATIONS: dict[str, Schema] = {
    "GET /healthz": op(public=True, responses=ok(obj({"status": enum("ok")}))),
    "GET /readyz": op(
        public=True,
        responses={
            **ok(
                obj(
                    {
                        "status": enum("ok"),
                        "database": STR,
                        "migrations": STR,
                        "workers": array(obj({"worker": STR, "host": STR, "heartbeat_age_s": NUM})),
                    }
                )
            ),
            "503": {
                "description": "not ready: the database is away or behind",
                "content": {
                    "application/json": {
                        "schema": obj({"status": enum("unavailable"), "database": STR})
                    }
                },
            },
        },
    ),
    # loopback peers, or the bearer token INCIDENT_METRICS_TOKEN when it is set (#16)
    "GET /metrics": op(public=True, responses={**body_of("text/plain"), **problems(401, 403)}),
}
