"""Pages and their acknowledgement: the API, signed links, inbound replies, the demo phone."""

from __future__ import annotations

from incident.web.schemas.base import (
    BODY,
    HTML,
    INT,
    NO_FIELDS,
    PROBLEM_JSON,
    READ,
    STR,
    WHEN,
    WHY,
    WRITE,
    Schema,
    body_of,
    ids,
    obj,
    ok,
    op,
    page_of,
    param,
    problems,
    ref,
)

# The media types a 2xx may carry, and why.
NON_JSON: dict[str, tuple[str, ...]] = {
    "GET /ack/{token}": (HTML,),  # the confirm page an acknowledgement link opens
    "POST /ack/{token}": (HTML, "application/json"),  # the page, or JSON when asked
    "GET /demo/inbox": (HTML, "application/json"),  # the demo phone, or JSON when asked
}

OPERATIONS: dict[str, Schema] = {
    "GET /api/incidents/{incident_id}/pages": op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("Page"))), **problems(*READ, 404)},
    ),
    "POST /api/pages/{page_id}/ack": op(
        parameters=ids("page_id"),
        body=NO_FIELDS,
        responses={**ok(ref("Ack")), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "GET /ack/{token}": op(
        public=True,
        parameters=ids("token"),
        responses={
            **body_of(HTML),
            **{
                str(status): {"description": WHY[status], "content": {HTML: {"schema": STR}}}
                for status in (404, 410)
            },
            **problems(429),
        },
    ),
    "POST /ack/{token}": op(
        public=True,
        parameters=ids("token"),
        responses={
            **body_of(HTML, "application/json", schema=obj({"id": STR, "status": STR})),
            **{
                str(status): {
                    "description": WHY[status] + " (problem+json when JSON is accepted)",
                    "content": {HTML: {"schema": STR}, PROBLEM_JSON: {"schema": ref("Problem")}},
                }
                for status in (404, 410)
            },
            **problems(413, 429),
        },
    ),
    "POST /inbound/{channel}": op(
        public=True,
        parameters=[
            *ids("channel"),
            param("X-Incident-Secret", "header", STR, "the shared inbound secret"),
            param("X-Incident-Signature", "header", STR, "sha256=<HMAC of the body>"),
        ],
        body={
            "required": True,
            "content": {
                "application/json": {
                    "schema": obj({"from": STR, "text": STR}),
                    "example": {"from": "+8613800138000", "text": "1"},
                },
                "application/x-www-form-urlencoded": {"schema": obj({"from": STR, "text": STR})},
            },
        },
        responses={
            **ok(obj({"page": STR, "status": STR})),
            **problems(400, 401, 404, 413, 422, 429),
        },
    ),
    "GET /demo/inbox": op(
        public=True,
        parameters=[param("person", "query", STR, "a roster person id")],
        responses={
            **body_of(
                HTML,
                "application/json",
                schema=page_of(
                    obj(
                        {
                            "id": INT,
                            "to": STR,
                            "subject": STR,
                            "body": STR,
                            "received_at": WHEN,
                        }
                    )
                ),
            ),
            **problems(404, 429),
        },
    ),
}
