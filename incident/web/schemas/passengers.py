"""Stranded passengers: groups, manifests, care, broadcasts, inquiries and complaints."""

from __future__ import annotations

from incident.web.schemas.base import (
    BODY,
    BOOL,
    LIMIT,
    NO_FIELDS,
    PAGE_CURSOR,
    READ,
    STR,
    STRINGS,
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

_NEEDS = enum("water", "food", "medical", "accommodation", "onward_transport", "accessibility")
_GROUP_FIELDS: dict[str, Schema] = {
    "train": {"type": "string", "maxLength": 40},
    "station": {"type": "string", "maxLength": 100},
    "location": {"type": "string", "maxLength": 200},
    "count": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
    "since": WHEN,
    "vulnerable": {
        "type": "object",
        "properties": {
            name: {"type": "integer", "minimum": 0}
            for name in ("elderly", "children", "reduced_mobility")
        },
        "additionalProperties": False,
    },
    "needs": {
        "type": ["array", "object"],
        "items": _NEEDS,
        "additionalProperties": enum("open", "met"),
    },
}
_INQUIRY: Schema = {
    "type": "object",
    "required": ["question"],
    "additionalProperties": False,
    "properties": {
        "question": {"type": "string", "minLength": 1, "maxLength": 2000},
        "answer": {"type": "string", "maxLength": 2000},
        "name": {"type": "string", "maxLength": 100},
        "phone": {"type": "string", "maxLength": 40},
        "kind": enum("inquiry", "complaint"),
        "language": enum("zh", "en"),
        "callback": BOOL,
        "callback_due": WHEN,
        "callback_minutes": {"type": "integer", "minimum": 0},
        "group": STR,
    },
}
_INQUIRY_EXAMPLE = {"question": "When will the train leave?", "phone": "13800138000"}
_CSV: Schema = {"type": "string", "description": "CSV: name, phone, seat, coach, language, ticket"}

# The media types a 2xx may carry, and why.
NON_JSON: dict[str, tuple[str, ...]] = {
    "GET /api/passenger-groups/{group_id}/passengers.csv": ("text/csv",),  # manifest export
}

OPERATIONS: dict[str, Schema] = {
    "POST /api/passenger-groups/{group_id}/passengers": op(
        parameters=[
            *ids("group_id"),
            param("encoding", "query", STR, "the CSV's encoding when not UTF-8 (e.g. gb18030)"),
        ],
        body={
            "required": True,
            "content": {
                "text/csv": {"schema": _CSV},
                "multipart/form-data": {
                    "schema": obj({"file": {"type": "string", "contentMediaType": "text/csv"}})
                },
            },
        },
        responses={
            **ok(ref("ManifestImport"), 201, location=True),
            **problems(*WRITE, 400, 404, 409, 413, 422),
        },
    ),
    "GET /api/passenger-groups/{group_id}/passengers": op(
        parameters=[*ids("group_id"), LIMIT, PAGE_CURSOR],
        responses={**ok(page_of(ref("Passenger"))), **problems(*READ, 400, 404)},
    ),
    "GET /api/passenger-groups/{group_id}/passengers.csv": op(
        parameters=ids("group_id"),
        responses={**body_of("text/csv"), **problems(*WRITE, 404)},
    ),
    "GET /api/manifest-uploads/{upload_id}": op(
        parameters=ids("upload_id"),
        responses={**ok(ref("ManifestUpload")), **problems(*READ, 404)},
    ),
    "POST /api/incidents/{incident_id}/passenger-groups": op(
        parameters=[
            *ids("incident_id"),
            param("Idempotency-Key", "header", STR, "repeat-safe creation"),
        ],
        body=json_body(
            {
                "type": "object",
                "required": ["count"],
                "additionalProperties": False,
                "properties": _GROUP_FIELDS,
            },
            example={"train": "G1234", "count": 300, "needs": ["water"]},
        ),
        responses={
            **ok(ref("PassengerGroup"), 201, location=True),
            **problems(*WRITE, *BODY, 404, 409),
        },
    ),
    "GET /api/incidents/{incident_id}/passenger-groups": op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("PassengerGroup"))), **problems(*READ, 404)},
    ),
    "GET /api/incidents/{incident_id}/passengers/summary": op(
        parameters=ids("incident_id"),
        responses={**ok(ref("PassengerSummary")), **problems(*READ, 404)},
    ),
    "GET /api/incidents/{incident_id}/broadcasts": op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("Broadcast"))), **problems(*READ, 404)},
    ),
    "POST /api/incidents/{incident_id}/inquiries": op(
        parameters=[
            *ids("incident_id"),
            param("Idempotency-Key", "header", STR, "repeat-safe creation"),
        ],
        body=json_body(_INQUIRY, example=_INQUIRY_EXAMPLE),
        responses={
            **ok(ref("Inquiry"), 201, location=True),
            **problems(*WRITE, *BODY, 404, 409),
        },
    ),
    "GET /api/incidents/{incident_id}/inquiries": op(
        parameters=[
            *ids("incident_id"),
            param("kind", "query", enum("inquiry", "complaint")),
            param("open", "query", enum("true", "false")),
            LIMIT,
            PAGE_CURSOR,
        ],
        responses={**ok(page_of(ref("Inquiry"))), **problems(*READ, 400, 404)},
    ),
    "GET /api/passenger-groups/{group_id}": op(
        parameters=ids("group_id"),
        responses={**ok(ref("PassengerGroupDetail")), **problems(*READ, 404)},
    ),
    "PATCH /api/passenger-groups/{group_id}": op(
        parameters=ids("group_id"),
        body=json_body(
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {**_GROUP_FIELDS, "status": enum("stranded", "cleared")},
            },
            example={"count": 250, "needs": {"water": "met"}},
        ),
        responses={**ok(ref("PassengerGroup")), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "POST /api/passenger-groups/{group_id}/care": op(
        parameters=[
            *ids("group_id"),
            param("Idempotency-Key", "header", STR, "repeat-safe creation"),
        ],
        body=json_body(
            {
                "type": "object",
                "required": ["need", "what"],
                "additionalProperties": False,
                "properties": {
                    "need": enum(*_NEEDS["enum"], "other"),
                    "what": {"type": "string", "minLength": 1, "maxLength": 1000},
                    "quantity": {"type": "integer", "minimum": 0},
                    "provided_at": WHEN,
                    "provided_by": {"type": "string", "maxLength": 100},
                    "met": BOOL,
                },
            },
            example={"need": "water", "what": "bottled water", "quantity": 300, "met": True},
        ),
        responses={**ok(ref("CareEntry"), 201), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "POST /api/passenger-groups/{group_id}/broadcasts": op(
        parameters=[
            *ids("group_id"),
            param("Idempotency-Key", "header", STR, "repeat-safe creation"),
        ],
        body=json_body(
            {
                "type": "object",
                "additionalProperties": False,
                "description": "a template or texts, not both",
                "properties": {
                    "template": STR,
                    "texts": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": False,
                        "properties": {
                            lang: {"type": "string", "minLength": 1, "maxLength": 500}
                            for lang in ("zh", "en")
                        },
                    },
                    "groups": STRINGS,
                    "offer": STR,
                },
            },
            example={"texts": {"zh": "列车预计一小时后开出。", "en": "The train leaves in 1 h."}},
        ),
        responses={
            **ok(ref("Broadcast"), 202, location=True),
            **problems(*WRITE, *BODY, 404, 409),
        },
    ),
    "POST /api/passenger-groups/{group_id}/inquiries": op(
        parameters=[
            *ids("group_id"),
            param("Idempotency-Key", "header", STR, "repeat-safe creation"),
        ],
        body=json_body(_INQUIRY, example=_INQUIRY_EXAMPLE),
        responses={
            **ok(ref("Inquiry"), 201, location=True),
            **problems(*WRITE, *BODY, 404, 409),
        },
    ),
    "GET /api/broadcasts/{broadcast_id}": op(
        parameters=[*ids("broadcast_id"), LIMIT, PAGE_CURSOR],
        responses={**ok(ref("BroadcastProgress")), **problems(*READ, 400, 404)},
    ),
    "POST /api/broadcasts/{broadcast_id}/resend": op(
        parameters=ids("broadcast_id"),
        body=NO_FIELDS,
        responses={**ok(ref("BroadcastResent"), 202), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "GET /api/inquiries/{inquiry_id}": op(
        parameters=ids("inquiry_id"),
        responses={**ok(ref("Inquiry")), **problems(*READ, 404)},
    ),
    "PATCH /api/inquiries/{inquiry_id}": op(
        parameters=ids("inquiry_id"),
        body=json_body(
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "callback_status": enum("done"),
                    "outcome": {"type": "string", "maxLength": 2000},
                    "answer": {"type": "string", "maxLength": 2000},
                    "kind": enum("inquiry", "complaint"),
                },
            },
            example={"callback_status": "done", "outcome": "called back, train leaving"},
        ),
        responses={**ok(ref("Inquiry")), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "GET /api/complaints": op(
        parameters=[
            param("open", "query", enum("true", "false")),
            LIMIT,
            PAGE_CURSOR,
        ],
        responses={**ok(page_of(ref("Inquiry"))), **problems(*READ, 400)},
    ),
}
