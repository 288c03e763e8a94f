"""JSON Schemas (OpenAPI 3.1) of the HTTP API, merged into ``/openapi.json``.

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

from typing import Any

Schema = dict[str, Any]

PROBLEM_JSON = "application/problem+json"
HTML = "text/html"

# Non-JSON success bodies: "METHOD /path" -> the media types a 2xx may carry (and why).
NON_JSON: dict[str, tuple[str, ...]] = {
    "GET /metrics": ("text/plain",),  # Prometheus text format
    "GET /ack/{token}": (HTML,),  # the confirm page an acknowledgement link opens
    "POST /ack/{token}": (HTML, "application/json"),  # the page, or JSON when asked
    "GET /demo/inbox": (HTML, "application/json"),  # the demo phone, or JSON when asked
    "GET /api/drills/report": ("application/json", "image/svg+xml"),  # ?format=svg: a chart
    "GET /api/drills/{incident_id}/report": (HTML, "text/markdown"),  # after-action report
    "GET /api/notices/{notice_id}/cap": ("application/cap+xml",),  # CAP 1.2, drills too
    "GET /api/passenger-groups/{group_id}/passengers.csv": ("text/csv",),  # manifest export
    "GET /notices": (HTML,),  # the public page
    "GET /notices/{notice_id}": (HTML,),
    "GET /notices.atom": ("application/atom+xml",),
    "GET /notices.cap": ("application/atom+xml",),  # Atom index of CAP messages
    "GET /notices/{notice_id}.cap": ("application/cap+xml",),
    "GET /gtfs-rt/alerts.pb": ("application/x-protobuf", "application/json"),  # ?format=json
}


# -- building blocks ----------------------------------------------------------------------------
def ref(name: str) -> Schema:
    """A reference to ``COMPONENTS[name]``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """The schema, or null."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object of exactly these properties, all required but ``optional``: a response
    field the schema does not name fails the fuzz tests, a request field is refused."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def page_of(item: Schema, **extra: Schema) -> Schema:
    """A list as the API returns them: ``{items, next_cursor}``."""
    return obj({"items": array(item), "next_cursor": CURSOR, **extra})


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
WHEN: Schema = {"type": "string", "format": "date-time"}
MAYBE_WHEN = nullable(WHEN)
MAYBE_STR = nullable(STR)
MAYBE_INT = nullable(INT)
MAYBE_NUM = nullable(NUM)
CURSOR = MAYBE_STR
STRINGS = array(STR)
LEVEL = enum("I", "II", "III", "IV")
MODE = enum("live", "drill")
BILINGUAL: Schema = {"type": "object", "additionalProperties": STR}


def param(name: str, where: str, schema: Schema, description: str = "") -> Schema:
    out: Schema = {"name": name, "in": where, "required": where == "path", "schema": schema}
    if description:
        out["description"] = description
    return out


def ids(*names: str) -> list[Schema]:
    """Path parameters: opaque ids."""
    return [param(name, "path", {"type": "string", "minLength": 1}) for name in names]


LIMIT = param("limit", "query", {"type": "integer", "minimum": 1}, "page size")
PAGE_CURSOR = param("cursor", "query", STR, "next_cursor of the previous page")


# The body of an action that takes no fields (fire, acknowledge, publish, re-send).
NO_FIELDS: Schema = {
    "required": False,
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": False}}},
}


def json_body(schema: Schema, *, example: Any = None) -> Schema:
    content: Schema = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"required": True, "content": {"application/json": content}}


def ok(schema: Schema, status: int = 200, *, location: bool = False) -> dict[str, Schema]:
    """A JSON success response."""
    response: Schema = {
        "description": "success",
        "content": {"application/json": {"schema": schema}},
    }
    if location:
        response["headers"] = {"Location": {"schema": STR, "required": True}}
    return {str(status): response}


def body_of(*media: str, schema: Schema | None = None, status: int = 200) -> dict[str, Schema]:
    """A success response that is not (only) JSON; ``schema`` describes a JSON alternative."""
    content: Schema = {m: {"schema": STR} for m in media}
    if "application/json" in content and schema is not None:
        content["application/json"] = {"schema": schema}
    return {str(status): {"description": "success", "content": content}}


_WHY = {
    400: "the body is not a JSON object, or a query parameter is malformed",
    401: "no valid bearer token",
    403: "the caller's role may not do this",
    404: "no such object",
    409: "the object's state does not allow this",
    410: "the link was used or has expired",
    413: "the body is too large",
    415: "the body is not JSON",
    422: "a field is not valid (see errors)",
    429: "too many requests; retry later",
}


def problems(*statuses: int) -> dict[str, Schema]:
    """Problem+json responses for these statuses."""
    return {
        str(status): {
            "description": _WHY[status],
            "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
        }
        for status in statuses
    }


# Who may call: read (any role), write (a role is required; 403 otherwise), and what a body
# can go wrong with.
READ = (401, 429)
WRITE = (401, 403, 429)
BODY = (400, 413, 415, 422)


# -- shared shapes -------------------------------------------------------------------------------
_NOTICE_SUMMARY = {
    "id": STR,
    "incident_id": STR,
    "mode": MODE,
    "status": STR,
    "published_version": MAYBE_INT,
    "latest_version": MAYBE_INT,
    "draft_pending": BOOL,
    "headline": nullable({"type": "object", "additionalProperties": MAYBE_STR}),
    "next_update_due": MAYBE_WHEN,
    "created_at": WHEN,
    "first_published_at": MAYBE_WHEN,
    "last_published_at": MAYBE_WHEN,
    "closed_at": MAYBE_WHEN,
    "public_url": MAYBE_STR,
}
_GROUP = {
    "id": STR,
    "incident": STR,
    "train": MAYBE_STR,
    "station": MAYBE_STR,
    "location": STR,
    "count": INT,
    "vulnerable": {"type": "object", "additionalProperties": INT},
    "needs": {"type": "object", "additionalProperties": enum("open", "met")},
    "since": WHEN,
    "minutes_stranded": MAYBE_INT,
    "status": enum("stranded", "cleared"),
    "cleared_at": MAYBE_WHEN,
    "manifest": MAYBE_STR,
    "passengers_purged_at": MAYBE_WHEN,
    "created_at": WHEN,
    "created_by": MAYBE_STR,
    "updated_at": WHEN,
}
_BROADCAST = {
    "id": STR,
    "incident": STR,
    "groups": STRINGS,
    "mode": MODE,
    "template": MAYBE_STR,
    "offer": MAYBE_STR,
    "texts": BILINGUAL,
    "status": STR,
    "error": MAYBE_STR,
    "recipients": INT,
    "counts": {"type": "object", "additionalProperties": INT},
    "resends": INT,
    "created_at": WHEN,
    "created_by": MAYBE_STR,
    "prepared_at": MAYBE_WHEN,
}
_UPLOAD = {
    "id": STR,
    "group": STR,
    "status": STR,
    "encoding": MAYBE_STR,
    "rows_read": INT,
    "stored": INT,
    "merged": INT,
    "rejected_count": INT,
    "rejected": array(OBJECT),
    "error": MAYBE_STR,
    "started_at": WHEN,
    "finished_at": MAYBE_WHEN,
    "uploaded_by": MAYBE_STR,
}
_MEASURE = obj({"seconds": MAYBE_NUM, "target_s": MAYBE_NUM, "on_time": nullable(BOOL)})
_UPCOMING = obj({"schedule": STR, "playbook": STR, "title": STR, "at": WHEN})

COMPONENTS: dict[str, Schema] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": STR,
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": STR,
            "errors": array(obj({"field": STR, "message": STR})),
        },
    },
    "Me": obj({"id": STR, "name": STR, "role": STR, "person_id": MAYBE_STR}),
    "Playbook": obj(
        {
            "id": STR,
            "version": INT,
            "title": BILINGUAL,
            "kind": STR,
            "description": nullable(BILINGUAL),
            "digest": STR,
            "inputs": {
                "type": "object",
                "additionalProperties": obj(
                    {
                        "type": STR,
                        "required": BOOL,
                        "title": nullable(BILINGUAL),
                        "choices": nullable(array({})),
                        "min": NUM,
                        "max": NUM,
                        "default": {},
                    },
                    optional=("min", "max", "default"),
                ),
            },
            "targets": {"type": "object", "additionalProperties": STR},
            "stages": array(
                obj(
                    {
                        "id": STR,
                        "title": nullable(BILINGUAL),
                        "when": {"type": ["string", "object"]},
                        "actions": array(obj({"kind": STR, "params": OBJECT})),
                        "target": MAYBE_STR,
                    }
                )
            ),
            "roles": {
                "type": "object",
                "description": "who fills each command role at declaration",
                "additionalProperties": {"type": "object", "additionalProperties": STR},
            },
        }
    ),
    "IncidentSummary": obj(
        {
            "id": STR,
            "playbook": STR,
            "title": STR,
            "severity": LEVEL,
            "mode": MODE,
            "status": enum("active", "contained", "resolved", "closed"),
            "declared_at": WHEN,
        }
    ),
    "Stage": obj(
        {
            "id": STR,
            "title": nullable(BILINGUAL),
            "trigger": enum("declared", "after", "every", "if", "manual", "resolved"),
            "state": enum("pending", "due", "fired", "skipped"),
            "due_at": MAYBE_WHEN,
            "fired_at": MAYBE_WHEN,
            "fire_count": INT,
        }
    ),
    "Incident": obj(
        {
            "id": STR,
            "playbook": obj({"id": STR, "version": INT, "digest": STR}),
            "title": STR,
            "severity": LEVEL,
            "mode": MODE,
            "status": enum("active", "contained", "resolved", "closed"),
            "facts": OBJECT,
            "declared_at": WHEN,
            "declared_by": MAYBE_STR,
            "contained_at": MAYBE_WHEN,
            "resolved_at": MAYBE_WHEN,
            "closed_at": MAYBE_WHEN,
            "stages": array(ref("Stage")),
            "pages": obj({"total": INT, "awaiting_ack": INT, "acked": INT, "unreachable": INT}),
            "notices": array(ref("NoticeSummary")),
            "passenger_groups": array(ref("PassengerGroup")),
        }
    ),
    "TimelineEvent": obj(
        {
            "seq": INT,
            "kind": STR,
            "at": WHEN,
            "actor": MAYBE_STR,
            "data": OBJECT,
            "prev_hash": STR,
            "hash": STR,
        }
    ),
    "Page": obj(
        {
            "id": STR,
            "stage": MAYBE_STR,
            "target": obj({"kind": STR, "id": STR}),
            "status": enum("pending", "sent", "failed", "acked", "escalated", "unreachable"),
            "level": INT,
            "chain": array({}),
            "ack_within_s": INT,
            "ack_deadline": MAYBE_WHEN,
            "created_at": WHEN,
            "acked_at": MAYBE_WHEN,
            "acked_by": MAYBE_STR,
            "acked_via": MAYBE_STR,
            "unanswered_at": MAYBE_WHEN,
            "recipients": array(
                obj(
                    {
                        "person": STR,
                        "level": INT,
                        "status": STR,
                        "responded_at": MAYBE_WHEN,
                        "deliveries": array(
                            obj(
                                {
                                    "id": INT,
                                    "channel": STR,
                                    "contact": MAYBE_INT,
                                    "status": STR,
                                    "attempts": INT,
                                    "last_error": MAYBE_STR,
                                    "idempotency_key": STR,
                                    "finished_at": MAYBE_WHEN,
                                }
                            )
                        ),
                    }
                )
            ),
        }
    ),
    "Ack": obj({"id": STR, "status": STR, "acked_at": MAYBE_WHEN, "acked_by": MAYBE_STR}),
    "NoticeSummary": obj(_NOTICE_SUMMARY),
    "NoticeVersion": obj(
        {
            "number": INT,
            "kind": enum("initial", "update", "all_clear", "withdrawal"),
            "status": enum("draft", "approved", "published", "superseded", "withdrawn"),
            "template": MAYBE_STR,
            "origin": MAYBE_STR,
            "languages": {
                "type": "object",
                "additionalProperties": obj(
                    {"headline": STR, "body": STR, "instruction": STR}, optional=("instruction",)
                ),
            },
            "lines": STRINGS,
            "stations": STRINGS,
            "trains": STRINGS,
            "cause": STR,
            "effect": STR,
            "level": LEVEL,
            "impact_start": MAYBE_WHEN,
            "impact_end": MAYBE_WHEN,
            "communication_start": MAYBE_WHEN,
            "communication_end": MAYBE_WHEN,
            "drafted_at": WHEN,
            "drafted_by": MAYBE_STR,
            "approved_at": MAYBE_WHEN,
            "approved_by": MAYBE_STR,
            "published_at": MAYBE_WHEN,
            "superseded_at": MAYBE_WHEN,
        }
    ),
    "Notice": obj({**_NOTICE_SUMMARY, "versions": array(ref("NoticeVersion"))}),
    "DrillSchedule": obj(
        {
            "id": STR,
            "playbook": STR,
            "cron": STR,
            "title": STR,
            "severity": LEVEL,
            "facts": OBJECT,
            "participants": STRINGS,
            "channels": STRINGS,
            "active": BOOL,
            "next_run_at": MAYBE_WHEN,
            "last_run_at": MAYBE_WHEN,
            "created_at": WHEN,
            "created_by": MAYBE_STR,
        }
    ),
    "Drill": obj(
        {
            "id": STR,
            "mode": enum("drill"),
            "playbook": STR,
            "participants": STRINGS,
            "declared_at": WHEN,
        }
    ),
    "Metrics": {
        **obj(
            {
                "incident_id": STR,
                "playbook": STR,
                "mode": MODE,
                "declared_at": WHEN,
                "first_page_delivered": _MEASURE,
                "first_ack": _MEASURE,
                "first_notice": _MEASURE,
                "ack_by_department": {"type": "object", "additionalProperties": OBJECT},
                "ack_by_level": {"type": "object", "additionalProperties": OBJECT},
                "escalations": INT,
                "unanswered_pages": INT,
                "unreachable_people": STRINGS,
                "stages": array(OBJECT),
            }
        ),
        "description": "measured times; more per-department figures may follow",
    },
    "CorrectiveAction": obj(
        {
            "id": STR,
            "incident": STR,
            "evaluation": MAYBE_STR,
            "title": STR,
            "owner": STR,
            "due_at": WHEN,
            "status": enum("open", "in_progress", "done"),
            "overdue": BOOL,
            "playbook": MAYBE_STR,
            "done_at": MAYBE_WHEN,
        }
    ),
    "Evaluation": obj(
        {
            "id": STR,
            "incident": STR,
            "evaluator": STR,
            "ratings": array(
                obj({"task": STR, "rating": enum("P", "S", "M", "U"), "notes": MAYBE_STR})
            ),
            "strengths": STRINGS,
            "improvements": array(obj({"finding": STR, "root_cause": STR})),
            "notes": MAYBE_STR,
            "created_at": WHEN,
            "corrective_actions": array(ref("CorrectiveAction")),
        }
    ),
    "PassengerGroup": obj(_GROUP),
    "PassengerGroupDetail": obj(
        {
            **_GROUP,
            "care": array(ref("CareEntry")),
            "manifest": nullable(ref("ManifestUpload")),
        }
    ),
    "CareEntry": obj(
        {
            "id": INT,
            "need": STR,
            "what": STR,
            "quantity": MAYBE_INT,
            "provided_at": WHEN,
            "provided_by": STR,
            "recorded_at": WHEN,
            "recorded_by": MAYBE_STR,
        }
    ),
    "ManifestUpload": obj(_UPLOAD),
    "ManifestImport": obj(
        {**_UPLOAD, "columns": STRINGS, "ignored_columns": STRINGS},
    ),
    "Passenger": obj(
        {
            "id": INT,
            "line": INT,
            "name": MAYBE_STR,
            "phone": MAYBE_STR,
            "ticket": MAYBE_STR,
            "coach": MAYBE_STR,
            "seat": MAYBE_STR,
            "language": STR,
        }
    ),
    "Broadcast": obj(_BROADCAST),
    "BroadcastResent": obj({**_BROADCAST, "resent": INT}),
    "BroadcastProgress": obj(
        {
            **_BROADCAST,
            "items": array(
                obj(
                    {
                        "id": INT,
                        "group": MAYBE_STR,
                        "phone": MAYBE_STR,
                        "language": STR,
                        "status": STR,
                        "attempts": INT,
                        "sends": INT,
                        "last_error": MAYBE_STR,
                        "finished_at": MAYBE_WHEN,
                    }
                )
            ),
            "next_cursor": CURSOR,
        }
    ),
    "Inquiry": obj(
        {
            "id": STR,
            "incident": STR,
            "group": MAYBE_STR,
            "kind": enum("inquiry", "complaint"),
            "name": MAYBE_STR,
            "phone": MAYBE_STR,
            "question": MAYBE_STR,
            "answer": MAYBE_STR,
            "outcome": MAYBE_STR,
            "language": STR,
            "matched_by": MAYBE_STR,
            "callback": obj(
                {
                    "status": enum("none", "pending", "done"),
                    "due": MAYBE_WHEN,
                    "overdue": BOOL,
                    "paged_at": MAYBE_WHEN,
                    "page": MAYBE_STR,
                    "completed_at": MAYBE_WHEN,
                    "completed_by": MAYBE_STR,
                }
            ),
            "personal_data_purged": BOOL,
            "created_at": WHEN,
            "created_by": MAYBE_STR,
        }
    ),
    "PassengerSummary": obj(
        {
            "incident": STR,
            "as_of": WHEN,
            "stranded": INT,
            "stranded_since": MAYBE_WHEN,
            "longest_minutes": INT,
            "vulnerable": OBJECT,
            "groups": array(OBJECT),
            "needs": OBJECT,
            "messages": OBJECT,
            "callbacks": OBJECT,
            "inquiries": OBJECT,
        }
    ),
}


# -- request bodies ------------------------------------------------------------------------------
_DECLARATION: Schema = {
    "type": "object",
    "required": ["playbook", "severity", "title"],
    "additionalProperties": False,
    "properties": {
        "playbook": {"type": "string", "description": "a playbook id (GET /api/playbooks)"},
        "severity": LEVEL,
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "facts": {"type": "object", "description": "the playbook's inputs"},
        "mode": MODE,
    },
}
_DECLARATION_EXAMPLE = {
    "playbook": "mass-delay",
    "severity": "III",
    "title": "Line G signal fault",
    "facts": {"line": "G", "expected_delay_min": 90, "trains_affected": 40},
}
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
_DRILL: Schema = {
    "type": "object",
    "required": ["playbook", "severity"],
    "additionalProperties": False,
    "properties": {
        "playbook": STR,
        "severity": LEVEL,
        "title": STR,
        "facts": OBJECT,
        "participants": STRINGS,
        "channels": STRINGS,
    },
}
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
_CSV: Schema = {"type": "string", "description": "CSV: name, phone, seat, coach, language, ticket"}


# -- operations ----------------------------------------------------------------------------------
def _op(
    *,
    responses: dict[str, Schema],
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    public: bool = False,
) -> Schema:
    fragment: Schema = {"responses": responses}
    if parameters:
        fragment["parameters"] = parameters
    if body is not None:
        fragment["requestBody"] = body
    if public:
        fragment["security"] = []
    return fragment


OPERATIONS: dict[str, Schema] = {
    # system
    "GET /healthz": _op(public=True, responses=ok(obj({"status": enum("ok")}))),
    "GET /readyz": _op(
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
    "GET /metrics": _op(public=True, responses=body_of("text/plain")),
    # incidents
    "GET /api/me": _op(responses={**ok(ref("Me")), **problems(*READ)}),
    "GET /api/playbooks": _op(responses={**ok(page_of(ref("Playbook"))), **problems(*READ)}),
    "GET /api/playbooks/{playbook_id}": _op(
        parameters=ids("playbook_id"),
        responses={**ok(ref("Playbook")), **problems(*READ, 404)},
    ),
    "POST /api/incidents": _op(
        parameters=[param("Idempotency-Key", "header", STR, "repeat-safe creation")],
        body=json_body(_DECLARATION, example=_DECLARATION_EXAMPLE),
        responses={**ok(ref("Incident"), 201, location=True), **problems(*WRITE, *BODY)},
    ),
    "GET /api/incidents": _op(
        parameters=[
            param("status", "query", enum("active", "contained", "resolved", "closed")),
            param("mode", "query", MODE),
            LIMIT,
            PAGE_CURSOR,
        ],
        responses={**ok(page_of(ref("IncidentSummary"))), **problems(*READ, 400)},
    ),
    "GET /api/incidents/{incident_id}": _op(
        parameters=ids("incident_id"),
        responses={**ok(ref("Incident")), **problems(*READ, 404)},
    ),
    "PATCH /api/incidents/{incident_id}": _op(
        parameters=ids("incident_id"),
        body={
            "required": True,
            "content": {
                media: {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "severity": LEVEL,
                            "facts": {
                                "type": "object",
                                "description": "merged key by key; null removes a fact",
                            },
                            "status": enum("contained", "resolved", "closed"),
                        },
                    }
                }
                for media in ("application/json", "application/merge-patch+json")
            },
        },
        responses={**ok(ref("Incident")), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "POST /api/incidents/{incident_id}/stages/{stage}/fire": _op(
        parameters=ids("incident_id", "stage"),
        body=NO_FIELDS,
        responses={**ok(ref("Incident"), 202), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "GET /api/incidents/{incident_id}/timeline": _op(
        parameters=[*ids("incident_id"), LIMIT, PAGE_CURSOR],
        responses={**ok(page_of(ref("TimelineEvent"))), **problems(*READ, 400, 404)},
    ),
    # paging
    "GET /api/incidents/{incident_id}/pages": _op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("Page"))), **problems(*READ, 404)},
    ),
    "POST /api/pages/{page_id}/ack": _op(
        parameters=ids("page_id"),
        body=NO_FIELDS,
        responses={**ok(ref("Ack")), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "GET /ack/{token}": _op(
        public=True,
        parameters=ids("token"),
        responses={
            **body_of(HTML),
            **{
                str(status): {"description": _WHY[status], "content": {HTML: {"schema": STR}}}
                for status in (404, 410)
            },
            **problems(429),
        },
    ),
    "POST /ack/{token}": _op(
        public=True,
        parameters=ids("token"),
        responses={
            **body_of(HTML, "application/json", schema=obj({"id": STR, "status": STR})),
            **{
                str(status): {
                    "description": _WHY[status] + " (problem+json when JSON is accepted)",
                    "content": {HTML: {"schema": STR}, PROBLEM_JSON: {"schema": ref("Problem")}},
                }
                for status in (404, 410)
            },
            **problems(413, 429),
        },
    ),
    "POST /inbound/{channel}": _op(
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
    "GET /demo/inbox": _op(
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
    # drills
    "GET /api/drill-schedules": _op(
        responses={
            **ok(page_of(ref("DrillSchedule"), upcoming=array(_UPCOMING))),
            **problems(*READ),
        },
    ),
    "POST /api/drill-schedules": _op(
        body=json_body(
            {
                **_DRILL,
                "required": ["playbook", "severity", "cron"],
                "properties": {**_DRILL["properties"], "cron": STR},
            },
            example={
                **_DECLARATION_EXAMPLE,
                "cron": "0 10 * * 1",
            },
        ),
        responses={**ok(ref("DrillSchedule"), 201), **problems(*WRITE, *BODY)},
    ),
    "GET /api/drills": _op(
        responses={
            **ok(
                page_of(
                    obj(
                        {
                            "id": STR,
                            "playbook": STR,
                            "title": STR,
                            "status": STR,
                            "declared_at": WHEN,
                            "schedule": MAYBE_STR,
                        }
                    ),
                    upcoming=array(_UPCOMING),
                )
            ),
            **problems(*READ),
        },
    ),
    "POST /api/drills": _op(
        body=json_body(_DRILL, example=_DECLARATION_EXAMPLE),
        responses={**ok(ref("Drill"), 201, location=True), **problems(*WRITE, *BODY)},
    ),
    "GET /api/drills/report": _op(
        parameters=[
            {**param("playbook", "query", STR, "a playbook id"), "required": True},
            param("format", "query", enum("json", "svg")),
        ],
        responses={
            **body_of(
                "application/json",
                "image/svg+xml",
                schema=obj({"playbook": STR, "drills": array(OBJECT)}),
            ),
            **problems(*READ, 400, 404),
        },
    ),
    "GET /api/drills/{incident_id}/metrics": _op(
        parameters=ids("incident_id"),
        responses={**ok(ref("Metrics")), **problems(*READ, 404)},
    ),
    "POST /api/drills/{incident_id}/evaluations": _op(
        parameters=ids("incident_id"),
        body=json_body(
            {
                "type": "object",
                "required": ["ratings"],
                "additionalProperties": False,
                "properties": {
                    "ratings": {
                        "type": "array",
                        "minItems": 1,
                        "items": obj(
                            {
                                "task": {"type": "string", "minLength": 1, "maxLength": 300},
                                "rating": enum("P", "S", "M", "U"),
                                "notes": STR,
                            },
                            optional=("notes",),
                        ),
                    },
                    "strengths": STRINGS,
                    "improvements": array(obj({"finding": STR, "root_cause": STR})),
                    "corrective_actions": array(
                        obj(
                            {"title": STR, "owner": STR, "due_at": WHEN, "playbook": STR},
                            optional=("playbook",),
                        )
                    ),
                    "notes": STR,
                },
            },
            example={"ratings": [{"task": "Page the duty director", "rating": "S"}]},
        ),
        responses={**ok(ref("Evaluation"), 201), **problems(*WRITE, *BODY, 404)},
    ),
    "GET /api/drills/{incident_id}/report": _op(
        parameters=[*ids("incident_id"), param("format", "query", enum("html", "md"))],
        responses={**body_of(HTML, "text/markdown"), **problems(*READ, 404)},
    ),
    "GET /api/corrective-actions": _op(
        parameters=[param("overdue", "query", enum("true", "false"))],
        responses={**ok(page_of(ref("CorrectiveAction"))), **problems(*READ)},
    ),
    "PATCH /api/corrective-actions/{action_id}": _op(
        parameters=ids("action_id"),
        body=json_body(obj({"status": enum("open", "in_progress", "done")})),
        responses={**ok(ref("CorrectiveAction")), **problems(*WRITE, *BODY, 404, 409)},
    ),
    # notices
    "POST /api/incidents/{incident_id}/notices": _op(
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
    "GET /api/incidents/{incident_id}/notices": _op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("Notice"))), **problems(*READ, 404)},
    ),
    "GET /api/notices/{notice_id}": _op(
        parameters=ids("notice_id"),
        responses={**ok(ref("Notice")), **problems(*READ, 404)},
    ),
    "POST /api/notices/{notice_id}/versions": _op(
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
    "POST /api/notices/{notice_id}/publish": _op(
        parameters=[
            *ids("notice_id"),
            param("Idempotency-Key", "header", STR, "repeat-safe publication"),
        ],
        body=NO_FIELDS,
        responses={**ok(ref("Notice")), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "GET /api/notices/{notice_id}/cap": _op(
        parameters=ids("notice_id"),
        responses={**body_of("application/cap+xml"), **problems(*READ, 404, 409)},
    ),
    # passengers
    "POST /api/passenger-groups/{group_id}/passengers": _op(
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
    "GET /api/passenger-groups/{group_id}/passengers": _op(
        parameters=[*ids("group_id"), LIMIT, PAGE_CURSOR],
        responses={**ok(page_of(ref("Passenger"))), **problems(*READ, 400, 404)},
    ),
    "GET /api/passenger-groups/{group_id}/passengers.csv": _op(
        parameters=ids("group_id"),
        responses={**body_of("text/csv"), **problems(*WRITE, 404)},
    ),
    "GET /api/manifest-uploads/{upload_id}": _op(
        parameters=ids("upload_id"),
        responses={**ok(ref("ManifestUpload")), **problems(*READ, 404)},
    ),
    "POST /api/incidents/{incident_id}/passenger-groups": _op(
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
    "GET /api/incidents/{incident_id}/passenger-groups": _op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("PassengerGroup"))), **problems(*READ, 404)},
    ),
    "GET /api/incidents/{incident_id}/passengers/summary": _op(
        parameters=ids("incident_id"),
        responses={**ok(ref("PassengerSummary")), **problems(*READ, 404)},
    ),
    "GET /api/incidents/{incident_id}/broadcasts": _op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("Broadcast"))), **problems(*READ, 404)},
    ),
    "POST /api/incidents/{incident_id}/inquiries": _op(
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
    "GET /api/incidents/{incident_id}/inquiries": _op(
        parameters=[
            *ids("incident_id"),
            param("kind", "query", enum("inquiry", "complaint")),
            param("open", "query", enum("true", "false")),
            LIMIT,
            PAGE_CURSOR,
        ],
        responses={**ok(page_of(ref("Inquiry"))), **problems(*READ, 400, 404)},
    ),
    "GET /api/passenger-groups/{group_id}": _op(
        parameters=ids("group_id"),
        responses={**ok(ref("PassengerGroupDetail")), **problems(*READ, 404)},
    ),
    "PATCH /api/passenger-groups/{group_id}": _op(
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
    "POST /api/passenger-groups/{group_id}/care": _op(
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
    "POST /api/passenger-groups/{group_id}/broadcasts": _op(
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
    "POST /api/passenger-groups/{group_id}/inquiries": _op(
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
    "GET /api/broadcasts/{broadcast_id}": _op(
        parameters=[*ids("broadcast_id"), LIMIT, PAGE_CURSOR],
        responses={**ok(ref("BroadcastProgress")), **problems(*READ, 400, 404)},
    ),
    "POST /api/broadcasts/{broadcast_id}/resend": _op(
        parameters=ids("broadcast_id"),
        body=NO_FIELDS,
        responses={**ok(ref("BroadcastResent"), 202), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "GET /api/inquiries/{inquiry_id}": _op(
        parameters=ids("inquiry_id"),
        responses={**ok(ref("Inquiry")), **problems(*READ, 404)},
    ),
    "PATCH /api/inquiries/{inquiry_id}": _op(
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
    "GET /api/complaints": _op(
        parameters=[
            param("open", "query", enum("true", "false")),
            LIMIT,
            PAGE_CURSOR,
        ],
        responses={**ok(page_of(ref("Inquiry"))), **problems(*READ, 400)},
    ),
    # public notices
    "GET /notices": _op(public=True, responses={**body_of(HTML), **problems(429)}),
    "GET /notices.atom": _op(
        public=True, responses={**body_of("application/atom+xml"), **problems(429)}
    ),
    "GET /notices.cap": _op(
        public=True, responses={**body_of("application/atom+xml"), **problems(429)}
    ),
    "GET /notices/{notice_id}.cap": _op(
        public=True,
        parameters=ids("notice_id"),
        responses={**body_of("application/cap+xml"), **problems(404, 429)},
    ),
    "GET /notices/{notice_id}": _op(
        public=True,
        parameters=ids("notice_id"),
        responses={**body_of(HTML), **problems(404, 429)},
    ),
    "GET /gtfs-rt/alerts.pb": _op(
        public=True,
        parameters=[param("format", "query", enum("pb", "json"))],
        responses={
            **body_of("application/x-protobuf", "application/json", schema=_GTFS_JSON),
            **problems(400, 429),
        },
    ),
}


# -- command: roles, tasks, situation report, authority reports, call tree, handover (#10) -----
_COMMAND_ROLE = enum("commander", "public_information", "liaison", "operations", "planning")
_TASK_STATUS = enum("open", "acknowledged", "done")
_IDEMPOTENCY = param("Idempotency-Key", "header", STR, "repeat-safe creation")
_FORMAT = param("format", "query", enum("json", "md", "html"), "json (default), md or html")
_MARKDOWN = "text/markdown"
_TASK_OWNER = {
    "department": {"type": "string", "minLength": 1},
    "person": {"type": "string", "minLength": 1},
}
_REPORT_FIELDS: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{
            name: nullable({"type": "string", "maxLength": 4000})
            for name in (
                "time",
                "place",
                "train",
                "casualties",
                "impact",
                "preliminary_cause",
                "measures_taken",
                "help_requested",
            )
        },
        "passengers": nullable({"type": "integer", "minimum": 0, "maximum": 10_000_000}),
    },
}


def _closed(properties: dict[str, Schema], *, required: tuple[str, ...] = ()) -> Schema:
    """A request body that refuses fields it does not name."""
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


COMPONENTS.update(
    {
        "IncidentRole": obj(
            {
                "role": _COMMAND_ROLE,
                "title": BILINGUAL,
                "person": MAYBE_STR,
                "source": enum("rota", "playbook", "manual", "vacant"),
                "assigned_at": WHEN,
                "assigned_by": MAYBE_STR,
                "changes": INT,
            }
        ),
        "Task": obj(
            {
                "id": STR,
                "incident_id": STR,
                "title": BILINGUAL,
                "owner": obj({"department": MAYBE_STR, "person": MAYBE_STR}),
                "status": _TASK_STATUS,
                "overdue": BOOL,
                "due_at": MAYBE_WHEN,
                "follow_up": BOOL,
                "stage": MAYBE_STR,
                "note": MAYBE_STR,
                "created_at": WHEN,
                "created_by": MAYBE_STR,
                "acknowledged_at": MAYBE_WHEN,
                "acknowledged_by": MAYBE_STR,
                "done_at": MAYBE_WHEN,
                "done_by": MAYBE_STR,
                "overdue_paged_at": MAYBE_WHEN,
                "page": MAYBE_STR,
            }
        ),
        "AuthorityReport": obj(
            {
                "id": STR,
                "incident_id": STR,
                "number": INT,
                "kind": enum("initial", "supplementary"),
                "reason": STR,
                "status": enum("draft", "submitted"),
                "fields": OBJECT,
                "due_at": MAYBE_WHEN,
                "overdue": BOOL,
                "created_at": WHEN,
                "created_by": MAYBE_STR,
                "submitted_at": MAYBE_WHEN,
                "submitted_by": MAYBE_STR,
                "submitted_to": MAYBE_STR,
                "submitted_via": MAYBE_STR,
            }
        ),
        "SituationReport": obj(
            {
                "incident": obj(
                    {
                        "id": STR,
                        "title": STR,
                        "playbook": STR,
                        "playbook_title": BILINGUAL,
                        "kind": STR,
                        "mode": MODE,
                        "status": enum("active", "contained", "resolved", "closed"),
                        "declared_at": WHEN,
                        "declared_by": MAYBE_STR,
                        "resolved_at": MAYBE_WHEN,
                    },
                ),
                "as_of": WHEN,
                "what_happened": obj(
                    {
                        "level": LEVEL,
                        "level_zh": STR,
                        "since": MAYBE_STR,
                        "minutes_since_declared": MAYBE_NUM,
                        "facts": OBJECT,
                    }
                ),
                "affected": obj({"lines": STRINGS, "stations": STRINGS, "trains": STRINGS}),
                "roles": array(
                    obj(
                        {
                            "role": _COMMAND_ROLE,
                            "title": BILINGUAL,
                            "person": MAYBE_STR,
                            "name": MAYBE_STR,
                            "department": MAYBE_STR,
                            "source": enum("rota", "playbook", "manual", "vacant"),
                            "since": WHEN,
                        }
                    )
                ),
                "pages": obj(
                    {
                        "total": INT,
                        "sent": INT,
                        "acknowledged": INT,
                        "awaiting": INT,
                        "escalated": INT,
                        "unreachable": INT,
                        "unanswered": INT,
                        "reached_by_hand": array(
                            obj({"person": MAYBE_STR, "by": MAYBE_STR, "at": WHEN})
                        ),
                        "items": array(OBJECT),
                    }
                ),
                "notices": obj(
                    {
                        "total": INT,
                        "published": INT,
                        "drafts_awaiting": INT,
                        "next_update_due": MAYBE_WHEN,
                        "update_overdue": BOOL,
                        "items": array(OBJECT),
                    }
                ),
                "passengers": ref("PassengerSummary"),
                "tasks": obj(
                    {"open": INT, "overdue": INT, "done": INT, "items": array(ref("Task"))}
                ),
                "authority_reports": obj({"submitted": INT, "drafts": array(OBJECT)}),
                "events": array(
                    obj({"seq": INT, "kind": STR, "at": WHEN, "actor": MAYBE_STR, "data": OBJECT})
                ),
            }
        ),
        "CallTree": obj(
            {
                "playbook": STR,
                "title": BILINGUAL,
                "as_of": WHEN,
                "masked": BOOL,
                "root": nullable(OBJECT),
                "unplaced": array(OBJECT),
            }
        ),
        "ReachedByHand": obj({"person": STR, "by": STR, "at": WHEN, "pages": STRINGS}),
        "HandoverSummary": obj(
            {
                "id": STR,
                "outgoing": MAYBE_STR,
                "incoming": STR,
                "note": MAYBE_STR,
                "open_items": INT,
                "acknowledged_at": WHEN,
            }
        ),
        "Handover": obj(
            {
                "id": STR,
                "outgoing": MAYBE_STR,
                "incoming": STR,
                "note": MAYBE_STR,
                "open_items": INT,
                "acknowledged_at": WHEN,
                "snapshot": OBJECT,
            }
        ),
        "HandoverList": obj(
            {
                "as_of": WHEN,
                "incidents": array(
                    obj(
                        {
                            "id": STR,
                            "title": STR,
                            "severity": LEVEL,
                            "mode": MODE,
                            "status": STR,
                            "declared_at": WHEN,
                            "pending_acks": array(OBJECT),
                            "notices_due": array(OBJECT),
                            "callbacks_overdue": array(OBJECT),
                            "tasks_open": array(ref("Task")),
                            "reports_due": array(OBJECT),
                        }
                    )
                ),
                "counts": {"type": "object", "additionalProperties": INT},
                "last_handover": nullable(ref("HandoverSummary")),
            }
        ),
    }
)
NON_JSON.update(
    {
        "GET /api/incidents/{incident_id}/sitrep": ("application/json", _MARKDOWN, HTML),
        "GET /api/incidents/{incident_id}/sitrep.md": (_MARKDOWN,),
        "GET /api/incidents/{incident_id}/sitrep.html": (HTML,),
        "GET /api/authority-reports/{report_id}": ("application/json", _MARKDOWN),
        "GET /api/playbooks/{playbook_id}/calltree": ("application/json", _MARKDOWN, HTML),
    }
)
OPERATIONS.update(
    {
        "GET /api/incidents/{incident_id}/sitrep": _op(
            parameters=[*ids("incident_id"), _FORMAT],
            responses={
                **body_of("application/json", _MARKDOWN, HTML, schema=ref("SituationReport")),
                **problems(*READ, 400, 404),
            },
        ),
        "GET /api/incidents/{incident_id}/sitrep.md": _op(
            parameters=ids("incident_id"),
            responses={**body_of(_MARKDOWN), **problems(*READ, 404)},
        ),
        "GET /api/incidents/{incident_id}/sitrep.html": _op(
            parameters=ids("incident_id"),
            responses={**body_of(HTML), **problems(*READ, 404)},
        ),
        "GET /api/incidents/{incident_id}/roles": _op(
            parameters=ids("incident_id"),
            responses={**ok(page_of(ref("IncidentRole"))), **problems(*READ, 404)},
        ),
        "PUT /api/incidents/{incident_id}/roles/{role}": _op(
            parameters=ids("incident_id", "role"),
            body=json_body(
                _closed(
                    {"person": STR, "note": {"type": "string", "maxLength": 500}},
                    required=("person",),
                ),
                example={"person": "sun.hao", "note": "the duty director is on the line"},
            ),
            responses={**ok(ref("IncidentRole")), **problems(*WRITE, *BODY, 404, 409)},
        ),
        "POST /api/incidents/{incident_id}/tasks": _op(
            parameters=[*ids("incident_id"), _IDEMPOTENCY],
            body=json_body(
                _closed(
                    {
                        "title": {"oneOf": [STR, BILINGUAL]},
                        **_TASK_OWNER,
                        "due_at": WHEN,
                        "due_minutes": {"type": "integer", "minimum": 1, "maximum": 129600},
                        "note": {"type": "string", "maxLength": 2000},
                    },
                    required=("title",),
                ),
                example={
                    "title": {"zh": "为受影响车次开通免费退票", "en": "Open fee-free refunds"},
                    "department": "ticketing",
                    "due_minutes": 15,
                },
            ),
            responses={
                **ok(ref("Task"), 201, location=True),
                **problems(*WRITE, *BODY, 404, 409),
            },
        ),
        "GET /api/incidents/{incident_id}/tasks": _op(
            parameters=ids("incident_id"),
            responses={**ok(page_of(ref("Task"))), **problems(*READ, 404)},
        ),
        "GET /api/tasks": _op(
            parameters=[param("overdue", "query", enum("true", "false")), LIMIT],
            responses={**ok(page_of(ref("Task"))), **problems(*READ, 400)},
        ),
        "GET /api/tasks/{task_id}": _op(
            parameters=ids("task_id"),
            responses={**ok(ref("Task")), **problems(*READ, 404)},
        ),
        "PATCH /api/tasks/{task_id}": _op(
            parameters=ids("task_id"),
            body=json_body(
                _closed(
                    {
                        "status": enum("acknowledged", "done"),
                        "note": {"type": "string", "maxLength": 2000},
                        "due_at": WHEN,
                        **_TASK_OWNER,
                    }
                ),
                example={"status": "done"},
            ),
            responses={**ok(ref("Task")), **problems(*WRITE, *BODY, 404, 409)},
        ),
        "POST /api/incidents/{incident_id}/authority-reports": _op(
            parameters=[*ids("incident_id"), _IDEMPOTENCY],
            body=json_body(_closed({"fields": _REPORT_FIELDS}), example={"fields": {}}),
            responses={
                **ok(ref("AuthorityReport"), 201, location=True),
                **problems(*WRITE, *BODY, 404, 409),
            },
        ),
        "GET /api/incidents/{incident_id}/authority-reports": _op(
            parameters=ids("incident_id"),
            responses={**ok(page_of(ref("AuthorityReport"))), **problems(*READ, 404)},
        ),
        "GET /api/authority-reports/{report_id}": _op(
            parameters=[
                *ids("report_id"),
                param("format", "query", enum("json", "md"), "json (default) or md"),
            ],
            responses={
                **body_of("application/json", _MARKDOWN, schema=ref("AuthorityReport")),
                **problems(*READ, 400, 404),
            },
        ),
        "PATCH /api/authority-reports/{report_id}": _op(
            parameters=ids("report_id"),
            body=json_body(
                _closed({"fields": _REPORT_FIELDS}),
                example={"fields": {"casualties": "none"}},
            ),
            responses={**ok(ref("AuthorityReport")), **problems(*WRITE, *BODY, 404, 409)},
        ),
        "POST /api/authority-reports/{report_id}/submit": _op(
            parameters=ids("report_id"),
            body=json_body(
                _closed(
                    {
                        "to": {"type": "string", "maxLength": 200},
                        "via": enum("phone", "fax", "email", "system", "by_hand"),
                    }
                ),
                example={"to": "bureau dispatch", "via": "phone"},
            ),
            responses={**ok(ref("AuthorityReport")), **problems(*WRITE, *BODY, 404)},
        ),
        "POST /api/incidents/{incident_id}/reached-by-hand": _op(
            parameters=[*ids("incident_id"), _IDEMPOTENCY],
            body=json_body(
                _closed(
                    {
                        "person": STR,
                        "by": {"type": "string", "minLength": 1, "maxLength": 100},
                        "note": {"type": "string", "maxLength": 500},
                    },
                    required=("person", "by"),
                ),
                example={"person": "cheng.kai", "by": "tang.jun"},
            ),
            responses={**ok(ref("ReachedByHand"), 201), **problems(*WRITE, *BODY, 404)},
        ),
        "GET /api/playbooks/{playbook_id}/calltree": _op(
            parameters=[*ids("playbook_id"), _FORMAT],
            responses={
                **body_of("application/json", _MARKDOWN, HTML, schema=ref("CallTree")),
                **problems(*READ, 400, 404),
            },
        ),
        "GET /api/handover": _op(responses={**ok(ref("HandoverList")), **problems(*READ)}),
        "POST /api/handovers": _op(
            parameters=[_IDEMPOTENCY],
            body=json_body(
                _closed(
                    {
                        "outgoing": {"type": "string", "minLength": 1, "maxLength": 100},
                        "note": {"type": "string", "maxLength": 2000},
                    }
                ),
                example={"outgoing": "zhou.min", "note": "the bureau calls back at 11:00"},
            ),
            responses={**ok(ref("Handover"), 201, location=True), **problems(*WRITE, *BODY)},
        ),
        "GET /api/handovers": _op(
            parameters=[LIMIT],
            responses={**ok(page_of(ref("HandoverSummary"))), **problems(*READ, 400)},
        ),
        "GET /api/handovers/{handover_id}": _op(
            parameters=ids("handover_id"),
            responses={**ok(ref("Handover")), **problems(*READ, 404)},
        ),
    }
)
