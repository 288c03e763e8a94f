"""Playbooks, the caller, and incidents: declaration, changes, stages, timeline."""

from __future__ import annotations

from incident.web.schemas.base import (
    BODY,
    LEVEL,
    LIMIT,
    MODE,
    NO_FIELDS,
    PAGE_CURSOR,
    READ,
    STR,
    WRITE,
    Schema,
    enum,
    ids,
    json_body,
    ok,
    op,
    page_of,
    param,
    problems,
    ref,
)

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
DECLARATION_EXAMPLE = {
    "playbook": "mass-delay",
    "severity": "III",
    "title": "Line G signal fault",
    "facts": {"line": "G", "expected_delay_min": 90, "trains_affected": 40},
}


OPERATIONS: dict[str, Schema] = {
    "GET /api/me": op(responses={**ok(ref("Me")), **problems(*READ)}),
    "GET /api/playbooks": op(responses={**ok(page_of(ref("Playbook"))), **problems(*READ)}),
    "GET /api/playbooks/{playbook_id}": op(
        parameters=ids("playbook_id"),
        responses={**ok(ref("Playbook")), **problems(*READ, 404)},
    ),
    "POST /api/incidents": op(
        parameters=[param("Idempotency-Key", "header", STR, "repeat-safe creation")],
        body=json_body(_DECLARATION, example=DECLARATION_EXAMPLE),
        responses={**ok(ref("Incident"), 201, location=True), **problems(*WRITE, *BODY)},
    ),
    "GET /api/incidents": op(
        parameters=[
            param("status", "query", enum("active", "contained", "resolved", "closed")),
            param("mode", "query", MODE),
            LIMIT,
            PAGE_CURSOR,
        ],
        responses={**ok(page_of(ref("IncidentSummary"))), **problems(*READ, 400)},
    ),
    "GET /api/incidents/{incident_id}": op(
        parameters=ids("incident_id"),
        responses={**ok(ref("Incident")), **problems(*READ, 404)},
    ),
    "PATCH /api/incidents/{incident_id}": op(
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
    "POST /api/incidents/{incident_id}/stages/{stage}/fire": op(
        parameters=ids("incident_id", "stage"),
        body=NO_FIELDS,
        responses={**ok(ref("Incident"), 202), **problems(*WRITE, *BODY, 404, 409)},
    ),
    "GET /api/incidents/{incident_id}/timeline": op(
        parameters=[*ids("incident_id"), LIMIT, PAGE_CURSOR],
        responses={**ok(page_of(ref("TimelineEvent"))), **problems(*READ, 400, 404)},
    ),
}
