"""The shapes several operations share, named in ``COMPONENTS`` and referred to with ``ref``."""

from __future__ import annotations

from incident.web.schemas.base import (
    BILINGUAL,
    BOOL,
    CURSOR,
    INT,
    LEVEL,
    MAYBE_INT,
    MAYBE_NUM,
    MAYBE_STR,
    MAYBE_WHEN,
    MODE,
    NUM,
    OBJECT,
    STR,
    STRINGS,
    WHEN,
    Schema,
    array,
    enum,
    nullable,
    obj,
    ref,
)

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
