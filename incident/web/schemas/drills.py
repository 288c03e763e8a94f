"""Drills: schedules, runs, metrics, evaluations, reports and corrective actions."""

from __future__ import annotations

from incident.web.schemas.base import (
    BODY,
    HTML,
    LEVEL,
    MAYBE_STR,
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
    obj,
    ok,
    op,
    page_of,
    param,
    problems,
    ref,
)
from incident.web.schemas.incidents import DECLARATION_EXAMPLE

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
_UPCOMING = obj({"schedule": STR, "playbook": STR, "title": STR, "at": WHEN})

# The media types a 2xx may carry, and why.
NON_JSON: dict[str, tuple[str, ...]] = {
    "GET /api/drills/report": ("application/json", "image/svg+xml"),  # ?format=svg: a chart
    "GET /api/drills/{incident_id}/report": (HTML, "text/markdown"),  # after-action report
}

OPERATIONS: dict[str, Schema] = {
    "GET /api/drill-schedules": op(
        responses={
            **ok(page_of(ref("DrillSchedule"), upcoming=array(_UPCOMING))),
            **problems(*READ),
        },
    ),
    "POST /api/drill-schedules": op(
        body=json_body(
            {
                **_DRILL,
                "required": ["playbook", "severity", "cron"],
                "properties": {**_DRILL["properties"], "cron": STR},
            },
            example={
                **DECLARATION_EXAMPLE,
                "cron": "0 10 * * 1",
            },
        ),
        responses={**ok(ref("DrillSchedule"), 201), **problems(*WRITE, *BODY)},
    ),
    "GET /api/drills": op(
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
    "POST /api/drills": op(
        body=json_body(_DRILL, example=DECLARATION_EXAMPLE),
        responses={**ok(ref("Drill"), 201, location=True), **problems(*WRITE, *BODY)},
    ),
    "GET /api/drills/report": op(
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
    "GET /api/drills/{incident_id}/metrics": op(
        parameters=ids("incident_id"),
        responses={**ok(ref("Metrics")), **problems(*READ, 404)},
    ),
    "POST /api/drills/{incident_id}/evaluations": op(
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
    "GET /api/drills/{incident_id}/report": op(
        parameters=[*ids("incident_id"), param("format", "query", enum("html", "md"))],
        responses={**body_of(HTML, "text/markdown"), **problems(*READ, 404)},
    ),
    "GET /api/corrective-actions": op(
        parameters=[param("overdue", "query", enum("true", "false"))],
        responses={**ok(page_of(ref("CorrectiveAction"))), **problems(*READ)},
    ),
    "PATCH /api/corrective-actions/{action_id}": op(
        parameters=ids("action_id"),
        body=json_body(obj({"status": enum("open", "in_progress", "done")})),
        responses={**ok(ref("CorrectiveAction")), **problems(*WRITE, *BODY, 404, 409)},
    ),
}
