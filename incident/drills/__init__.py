"""Drills: scheduled and ad-hoc runs of the real playbooks in drill mode, measured
automatically, evaluated (HSEEP) with corrective actions, and reported."""

from incident.drills.evaluations import (
    ACTION_DUE_JOB,
    RATINGS,
    close_action,
    evaluate,
    evaluations_of,
    on_action_due,
    overdue_actions,
)
from incident.drills.metrics import Metrics, measure
from incident.drills.reports import markdown_report, trend, trend_svg
from incident.drills.schedules import (
    START_JOB,
    add_schedule,
    next_runs,
    start_drill,
    start_scheduled,
    upcoming,
)

__all__ = [
    "ACTION_DUE_JOB",
    "RATINGS",
    "START_JOB",
    "Metrics",
    "add_schedule",
    "close_action",
    "evaluate",
    "evaluations_of",
    "markdown_report",
    "measure",
    "next_runs",
    "on_action_due",
    "overdue_actions",
    "start_drill",
    "start_scheduled",
    "trend",
    "trend_svg",
    "upcoming",
]
