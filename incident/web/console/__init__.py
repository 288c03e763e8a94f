"""The duty manager's console: server-rendered pages behind a login."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
