"""What the web app shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from incident.catalog import Catalog
from incident.clock import Clock
from incident.db import Database
from incident.handlers import Context
from incident.settings import Settings


@dataclass
class AppState:
    settings: Settings
    db: Database
    clock: Clock
    catalog: Catalog
    ctx: Context
    # time.monotonic() when this process started its embedded worker (None: no such worker);
    # /readyz counts it as alive for a short grace before its first heartbeat is in
    embedded_worker_started: float | None = None


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.incident
    return state
