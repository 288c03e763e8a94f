"""Incident command: roles, tasks, situation reports, reports to the railway authority, the
call tree for when chat and phones are down, and shift handover.

Functions here take a session and the current time, add and flush, and never commit or send;
deadlines (tasks, required reports) are durable jobs that page through ``paging``.
"""

from incident.command import calltree, handover, reports, roles, sitrep, tasks
from incident.command.events import CommandEvent
from incident.command.reports import DUE_JOB as REPORT_DUE_JOB
from incident.command.tasks import DUE_JOB as TASK_DUE_JOB

__all__ = [
    "REPORT_DUE_JOB",
    "TASK_DUE_JOB",
    "CommandEvent",
    "calltree",
    "handover",
    "reports",
    "roles",
    "sitrep",
    "tasks",
]
