"""create_app(settings): routes, middleware, and the embedded worker's lifespan."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from incident import roster, timeline
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import Clock, SystemClock
from incident.db import Database
from incident.errors import IncidentError
from incident.handlers import Context
from incident.playbook import RosterRefs
from incident.settings import Settings
from incident.web import (
    api,
    command_api,
    console,
    drills_api,
    metrics,
    notices_api,
    paging_api,
    passengers_api,
    public,
    system,
)
from incident.web.accesslog import AccessLog
from incident.web.problems import (
    database_error_handler,
    http_error_handler,
    incident_error_handler,
    server_error_handler,
)
from incident.web.ratelimit import RateLimit
from incident.web.state import AppState
from incident.worker import Worker


class RequestContext:
    """Binds a request id to every log line of the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with structlog.contextvars.bound_contextvars(request_id=uuid.uuid4().hex[:12]):
            await self.app(scope, receive, send)


def roster_refs(db: Database) -> RosterRefs | None:
    """What playbooks may name, from the loaded roster (None before a roster is loaded)."""
    with db.reading() as session:
        departments, roles, people = roster.known_ids(session=session)
    if not departments:
        return None
    return RosterRefs(departments=departments, roles=roles, people=people)


def load_catalog(settings: Settings, db: Database) -> Catalog:
    """Load and check every playbook. A broken file does not stop the others: its last good
    version runs instead (or nothing), and it is logged and listed in ``catalog.broken``."""
    refs = roster_refs(db)
    with db.reading() as session:
        return Catalog.load([Path(settings.playbooks_dir)], refs, session=session)


def pin_catalog(catalog: Catalog, db: Database, clock: Clock) -> None:
    with db.transaction() as session:
        for playbook in catalog:
            catalog.pin(playbook, session=session, now=clock.now())


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    clock: Clock | None = None,
    catalog: Catalog | None = None,
    run_worker: bool | None = None,
    access_log: bool = False,
) -> Starlette:
    db = db or Database.from_url(settings.database_url)
    db.audit_keys = timeline.AuditKeys.from_settings(settings)
    clock = clock or SystemClock()
    catalog = catalog or load_catalog(settings, db)
    ctx = Context.build(settings, catalog)
    state = AppState(settings=settings, db=db, clock=clock, catalog=catalog, ctx=ctx)
    embedded = settings.embedded_worker if run_worker is None else run_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker = None
        pin_catalog(catalog, db, clock)
        if embedded:
            worker = Worker(db, ctx, clock, sender=Sender(ctx.send_policy()))
            state.embedded_worker_started = time.monotonic()
            worker.start()
        app.state.worker = worker
        try:
            yield
        finally:
            if worker is not None:
                state.embedded_worker_started = None
                worker.stop()

    app = Starlette(
        routes=[
            *system.routes,
            *metrics.routes,
            *api.routes,
            *paging_api.routes,
            *drills_api.routes,
            *notices_api.routes,
            *passengers_api.routes,
            *command_api.routes,
            *public.routes,
            *console.routes,
        ],
        exception_handlers={
            IncidentError: incident_error_handler,
            HTTPException: http_error_handler,
            DBAPIError: database_error_handler,  # 503 + Retry-After while it is away
            PoolTimeout: database_error_handler,
            Exception: server_error_handler,
        },
        lifespan=lifespan,
    )
    # Added first, so it runs inside the session: it counts console users by their session.
    app.add_middleware(RateLimit, settings=settings, clock=clock)
    # The console's login: a signed cookie (SameSite=Lax, HttpOnly); the API uses bearer tokens.
    app.add_middleware(
        SessionMiddleware,
        secret_key=str(settings.secret_key),
        session_cookie="incident_session",
        max_age=settings.console_session_hours * 3600,
        same_site="lax",
        https_only=settings.public_url.startswith("https://"),
    )
    if access_log:  # `incident serve`: our access log, with route templates, never paths
        app.add_middleware(AccessLog)
    app.add_middleware(RequestContext)
    app.state.incident = state
    return app
