"""The timeline events of notices (``"notice:..."``), fixed names."""

from __future__ import annotations

from enum import StrEnum


class NoticeEvent(StrEnum):
    DRAFTED = "notice:drafted"
    APPROVED = "notice:approved"
    PUBLISHED = "notice:published"
    SUPERSEDED = "notice:superseded"
    WITHDRAWN = "notice:withdrawn"
    SKIPPED = "notice:skipped"
    FIRST_OVERDUE = "notice:first_overdue"
    UPDATE_OVERDUE = "notice:update_overdue"
