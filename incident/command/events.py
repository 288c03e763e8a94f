"""The timeline events of incident command (``"role:..."``, ``"task:..."``, ...), fixed names.

None carries a phone number: people appear by roster id.
"""

from __future__ import annotations

from enum import StrEnum


class CommandEvent(StrEnum):
    ROLES_FILLED = "role:filled"
    ROLE_ASSIGNED = "role:assigned"
    TASK_OPENED = "task:requested"  # the playbook action's event; also for tasks made by hand
    TASK_ACKNOWLEDGED = "task:acknowledged"
    TASK_UPDATED = "task:updated"
    TASK_OVERDUE = "task:overdue"
    TASK_DONE = "task:done"
    REPORT_REQUESTED = "authority_report:requested"  # the playbook action's event
    REPORT_DRAFTED = "authority_report:drafted"
    REPORT_CHANGED = "authority_report:changed"
    REPORT_SUBMITTED = "authority_report:submitted"
    REPORT_OVERDUE = "authority_report:overdue"
    REACHED_BY_HAND = "contact:reached_by_hand"
    HANDOVER = "handover:acknowledged"
