"""Command (#10): roles, tasks, situation report, authority reports, call tree, handover."""

from __future__ import annotations

from incident.web.schemas.base import (
    BILINGUAL,
    BODY,
    BOOL,
    HTML,
    INT,
    LEVEL,
    LIMIT,
    MAYBE_NUM,
    MAYBE_STR,
    MAYBE_WHEN,
    MODE,
    OBJECT,
    READ,
    STR,
    STRINGS,
    WHEN,
    WRITE,
    Schema,
    array,
    body_of,
    enum,
    ids,
    json_body,
    nullable,
    obj,
    ok,
    op,
    page_of,
    param,
    problems,
    ref,
)

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


COMPONENTS: dict[str, Schema] = {
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
            "tasks": obj({"open": INT, "overdue": INT, "done": INT, "items": array(ref("Task"))}),
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

# The media types a 2xx may carry, and why.
NON_JSON: dict[str, tuple[str, ...]] = {
    "GET /api/incidents/{incident_id}/sitrep": ("application/json", _MARKDOWN, HTML),
    "GET /api/incidents/{incident_id}/sitrep.md": (_MARKDOWN,),
    "GET /api/incidents/{incident_id}/sitrep.html": (HTML,),
    "GET /api/authority-reports/{report_id}": ("application/json", _MARKDOWN),
    "GET /api/playbooks/{playbook_id}/calltree": ("application/json", _MARKDOWN, HTML),
}

OPERATIONS: dict[str, Schema] = {
    "GET /api/incidents/{incident_id}/sitrep": op(
        parameters=[*ids("incident_id"), _FORMAT],
        responses={
            **body_of("application/json", _MARKDOWN, HTML, schema=ref("SituationReport")),
            **problems(*READ, 400, 404),
        },
    ),
    "GET /api/incidents/{incident_id}/sitrep.md": op(
        parameters=ids("incident_id"),
        responses={**body_of(_MARKDOWN), **problems(*READ, 404)},
    ),
    "GET /api/incidents/{incident_id}/sitrep.html": op(
        parameters=ids("incident_id"),
        responses={**body_of(HTML), **problems(*READ, 404)},
    ),
    "GET /api/incidents/{incident_id}/roles": op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("IncidentRole"))), **problems(*READ, 404)},
    ),
    "PUT /api/incidents/{incident_id}/roles/{role}": op(
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
    "POST /api/incidents/{incident_id}/tasks": op(
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
    "GET /api/incidents/{incident_id}/tasks": op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("Task"))), **problems(*READ, 404)},
    ),
    "GET /api/tasks": op(
        parameters=[param("overdue", "query", enum("true", "false")), LIMIT],
        responses={**ok(page_of(ref("Task"))), **problems(*READ, 400)},
    ),
    "GET /api/tasks/{task_id}": op(
        parameters=ids("task_id"),
        responses={**ok(ref("Task")), **problems(*READ, 404)},
    ),
    "PATCH /api/tasks/{task_id}": op(
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
    "POST /api/incidents/{incident_id}/authority-reports": op(
        parameters=[*ids("incident_id"), _IDEMPOTENCY],
        body=json_body(_closed({"fields": _REPORT_FIELDS}), example={"fields": {}}),
        responses={
            **ok(ref("AuthorityReport"), 201, location=True),
            **problems(*WRITE, *BODY, 404, 409),
        },
    ),
    "GET /api/incidents/{incident_id}/authority-reports": op(
        parameters=ids("incident_id"),
        responses={**ok(page_of(ref("AuthorityReport"))), **problems(*READ, 404)},
    ),
    "GET /api/authority-reports/{report_id}": op(
        parameters=[
            *ids("report_id"),
            param("format", "query", enum("json", "md"), "json (default) or md"),
        ],
        responses={
            **body_of("application/json", _MARKDOWN, schema=ref("AuthorityReport")),
            **problems(*READ, 400, 404),
        },
    ),
    "PATCH /api/authority-reports/{report_id}": op(
        parameters=ids("report_id"),
        body=json_body(
            _closed({"fields": _REPORT_FIELDS}),
            example={"fields": {"casualties": "none"}},
        ),
        responses={**ok(ref("AuthorityReport")), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "POST /api/authority-reports/{report_id}/submit": op(
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
    "POST /api/incidents/{incident_id}/reached-by-hand": op(
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
    "GET /api/playbooks/{playbook_id}/calltree": op(
        parameters=[*ids("playbook_id"), _FORMAT],
        responses={
            **body_of("application/json", _MARKDOWN, HTML, schema=ref("CallTree")),
            **problems(*READ, 400, 404),
        },
    ),
    "GET /api/handover": op(responses={**ok(ref("HandoverList")), **problems(*READ)}),
    "POST /api/handovers": op(
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
    "GET /api/handovers": op(
        parameters=[LIMIT],
        responses={**ok(page_of(ref("HandoverSummary"))), **problems(*READ, 400)},
    ),
    "GET /api/handovers/{handover_id}": op(
        parameters=ids("handover_id"),
        responses={**ok(ref("Handover")), **problems(*READ, 404)},
    ),
}
