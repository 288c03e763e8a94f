"""JSON Schemas (OpenAPI 3.1) of the HTTP API, merged into ``/openapi.json``.

Each module holds the operations of one area (``incidents``, ``paging``, ``drills``,
``notices``, ``passengers``, ``command``, ``public``, ``system``) and is merged here; the
building blocks live in ``base`` and the shared shapes in ``components``.

The convention, for every route added:

- ``OPERATIONS["METHOD /path"]`` (the path exactly as the ``Route`` is registered) holds the
  operation's fragment: ``parameters``, ``requestBody`` and ``responses``. The summary and the
  operation id come from the handler (``system.openapi_document``). A route in the schema
  without an entry fails ``tests/fuzz/test_openapi_document.py``.
- Shapes shared by several operations live in ``COMPONENTS`` and are named with ``ref``.
- Every JSON success response has an object schema with ``required`` fields: the keys the
  handler's serialiser always writes (nullable ones typed ``[T, "null"]``). An empty schema
  proves nothing.
- Errors are RFC 9457 problem+json: list each status the handler can answer with ``errors``.
- A success body that is not JSON (console pages, feeds, CAP, protobuf, CSV, metrics) is named
  in ``NON_JSON`` with its media type and why.

The fuzz tests (``tests/fuzz``) hold the handlers to these schemas.
"""

from __future__ import annotations

from typing import TypeVar

from incident.web.schemas import (
    command,
    components,
    drills,
    incidents,
    notices,
    paging,
    passengers,
    public,
    system,
)
from incident.web.schemas.base import Schema

__all__ = ["COMPONENTS", "NON_JSON", "OPERATIONS"]

V = TypeVar("V")


def _merged(*parts: dict[str, V]) -> dict[str, V]:
    """One dict of the areas' entries; a key two areas both define is a mistake."""
    out: dict[str, V] = {}
    for part in parts:
        if twice := out.keys() & part.keys():
            raise ValueError(f"defined in two areas: {sorted(twice)}")
        out.update(part)
    return out


COMPONENTS: dict[str, Schema] = _merged(components.COMPONENTS, command.COMPONENTS)

# Non-JSON success bodies: "METHOD /path" -> the media types a 2xx may carry.
NON_JSON: dict[str, tuple[str, ...]] = _merged(
    system.NON_JSON,
    paging.NON_JSON,
    drills.NON_JSON,
    notices.NON_JSON,
    passengers.NON_JSON,
    public.NON_JSON,
    command.NON_JSON,
)

OPERATIONS: dict[str, Schema] = _merged(
    system.OPERATIONS,
    incidents.OPERATIONS,
    paging.OPERATIONS,
    drills.OPERATIONS,
    notices.OPERATIONS,
    passengers.OPERATIONS,
    public.OPERATIONS,
    command.OPERATIONS,
)
