"""Notices in the API: drafting, versions, publication, CAP."""

from __future__ import annotations

from incident.web.schemas.base import (
    BODY,
    NO_FIELDS,
    READ,
    STR,
    WHEN,
    WRITE,
    Schema,
    body_of,
    enum,
    ids,
    json_body,
    obj,
    ok,
    op,
    page_of,
    param,
    problems,
    ref,
)

_TEXT = obj(
    {
        "headline": {"type": "string", "maxLength": 200},
        "body": {"type": "string", "maxLength": 4000},
        "instruction": {"type": "string", "maxLength": 1000},
    },
    optional=("body", "instruction"),
)
_ITEMS: Schema = {
    "type": ["array", "string"],
    "items": STR,
    "description": "a list, or comma-separated",
}
_NOTICE_FIELDS: dict[str, Schema] = {
    "template": {"type": "string", "description": "a template of the incident's playbook"},
    "languages": {
        "type": "object",
        "required": ["zh"],
        "properties": {"zh": _TEXT, "en": _TEXT},
        "additionalProperties": False,
    },
    "lines": _ITEMS,
    "stations": _ITEMS,
    "trains": _ITEMS,
    "cause": STR,
    "effect": STR,
    "impact_start": WHEN,
    "impact_end": WHEN,
    "communication_end": WHEN,
}
_NOTICE_EXAMPLE = {"languages": {"zh": {"headline": "G线列车晚点", "body": "请您耐心等候。"}}}

# The media types a 2xx may carry, and why.
NON_JSON: dict[str, tuple[str, ...]] = {
    "GET /api/notices/{notice_id}/cap": ("application/cap+xml",),  # CAP 1.2, drills too
}

OPERATIONS: dict[str, Schema] = {
    "POST /api/incidents/{incident_id}/notices": op(
        parameters=ids("incident_id"),
        body=json_body(
            {"type": "object", "additionalProperties": False, "properties": _NOTICE_FIELDS},
            example=_NOTICE_EXAMPLE,
        ),
        responses={
            **ok(ref("Notice"), 201, location=True),
            **problems(*WRITE, *BODY, 404, 409),
        },
    ),
    "GET /api/incidents/{incident_id}/notices": op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("Notice"))), **problems(*READ, 404)},
    ),
    "GET /api/notices/{notice_id}": op(
        parameters=ids("notice_id"),
        responses={**ok(ref("Notice")), **problems(*READ, 404)},
    ),
    "POST /api/notices/{notice_id}/versions": op(
        parameters=ids("notice_id"),
        body=json_body(
            {
                "type": "object",
                "required": ["kind"],
                "additionalProperties": False,
                "properties": {
                    "kind": enum("update", "all_clear", "withdrawal"),
                    **_NOTICE_FIELDS,
                },
            },
            example={"kind": "update", **_NOTICE_EXAMPLE},
        ),
        responses={**ok(ref("Notice"), 201), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "POST /api/notices/{notice_id}/publish": op(
        parameters=[
            *ids("notice_id"),
            param("Idempotency-Key", "header", STR, "repeat-safe publication"),
        ],
        body=NO_FIELDS,
        responses={**ok(ref("Notice")), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "GET /api/notices/{notice_id}/cap": op(
        parameters=ids("notice_id"),
        responses={**body_of("application/cap+xml"), **problems(*READ, 404, 409)},
    ),
}
