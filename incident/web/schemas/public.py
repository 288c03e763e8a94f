"""The public notices: pages, Atom and CAP feeds, GTFS-realtime alerts."""

from __future__ import annotations

from incident.web.schemas.base import (
    HTML,
    OBJECT,
    STR,
    Schema,
    array,
    body_of,
    enum,
    ids,
    obj,
    op,
    param,
    problems,
)

_GTFS_JSON = obj(  # protobuf's canonical JSON of a FeedMessage: an empty list is left out
    {
        "header": {
            "type": "object",
            "required": ["gtfsRealtimeVersion", "timestamp"],
            "properties": {"gtfsRealtimeVersion": STR, "timestamp": STR},
        },
        "entity": array(OBJECT),
    },
    optional=("entity",),
)

# The media types a 2xx may carry, and why.
NON_JSON: dict[str, tuple[str, ...]] = {
    "GET /notices": (HTML,),  # the public page
    "GET /notices/{notice_id}": (HTML,),
    "GET /notices.atom": ("application/atom+xml",),
    "GET /notices.cap": ("application/atom+xml",),  # Atom index of CAP messages
    "GET /notices/{notice_id}.cap": ("application/cap+xml",),
    "GET /gtfs-rt/alerts.pb": ("application/x-protobuf", "application/json"),  # ?format=json
}

OPERATIONS: dict[str, Schema] = {
    "GET /notices": op(public=True, responses={**body_of(HTML), **problems(429)}),
    "GET /notices.atom": op(
        public=True, responses={**body_of("application/atom+xml"), **problems(429)}
    ),
    "GET /notices.cap": op(
        public=True, responses={**body_of("application/atom+xml"), **problems(429)}
    ),
    "GET /notices/{notice_id}.cap": op(
        public=True,
        parameters=ids("notice_id"),
        responses={**body_of("application/cap+xml"), **problems(404, 429)},
    ),
    "GET /notices/{notice_id}": op(
        public=True,
        parameters=ids("notice_id"),
        responses={**body_of(HTML), **problems(404, 429)},
    ),
    "GET /gtfs-rt/alerts.pb": op(
        public=True,
        parameters=[param("format", "query", enum("pb", "json"))],
        responses={
            **body_of("application/x-protobuf", "application/json", schema=_GTFS_JSON),
            **problems(400, 429),
        },
    ),
}
