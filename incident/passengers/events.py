"""The timeline events of stranded passengers (``"passengers:..."``), fixed names.

None of them carries personal data: ids, counts and times only.
"""

from __future__ import annotations

from enum import StrEnum


class PassengerEvent(StrEnum):
    GROUP_OPENED = "passengers:group_opened"
    GROUP_CHANGED = "passengers:group_changed"
    CARE_RECORDED = "passengers:care_recorded"
    MANIFEST_UPLOADED = "passengers:manifest_uploaded"
    EXPORTED = "passengers:exported"
    PURGED = "passengers:purged"
    BROADCAST_STARTED = "broadcast:started"
    BROADCAST_PREPARED = "broadcast:prepared"
    BROADCAST_UNSENT = "broadcast:unsent"
    BROADCAST_RESENT = "broadcast:resent"
    INQUIRY_RECORDED = "inquiry:recorded"
    CALLBACK_OVERDUE = "inquiry:callback_overdue"
    CALLBACK_DONE = "inquiry:callback_done"
