"""Health, readiness and metrics: the unauthenticated routes operations watch."""

from __future__ import annotations

from incident.web.schemas.base import (
    INT,
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

WORKERS = array(obj({"worker": STR, "host": STR, "heartbeat_age_s": NUM}))
PLAYBOOKS = obj(
    {
        "loaded": INT,
        "broken": array(
            obj(
                {
                    "file": STR,
                    "line": INT,
                    "error": STR,
                    "problems": INT,
                    "playbook": STR,
                    "serving": STR,
                }
            )
        ),
    }
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
                        "workers": WORKERS,
                        "workers_alive": INT,
                        # playbook files that failed to load: served from their last good
                        # version, or absent (`serving` says which)
                        "playbooks": PLAYBOOKS,
                    }
                )
            ),
            "503": {
                "description": "not ready: the database is away or behind (`unavailable`), or "
                "no worker has beaten within INCIDENT_AUDITOR_WORKER_STALE_SECONDS "
                "(`not ready`, with the reason)",
                "content": {
                    "application/json": {
                        "schema": obj(
                            {
                                "status": enum("unavailable", "not ready"),
                                "database": STR,
                                "migrations": STR,
                                "workers": WORKERS,
                                "workers_alive": INT,
                                "playbooks": PLAYBOOKS,
                                "reason": STR,
                            },
                            optional=(
                                "migrations",
                                "workers",
                                "workers_alive",
                                "playbooks",
                                "reason",
                            ),
                        )
                    }
                },
            },
        },
    ),
    # loopback peers, or the bearer token INCIDENT_METRICS_TOKEN when it is set (#16)
    "GET /metrics": op(public=True, responses={**body_of("text/plain"), **problems(401, 403)}),
}
