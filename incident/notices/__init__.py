"""Official notices: drafting, approval and publication.

The public surfaces are built by ``feeds`` (Atom), ``cap`` (CAP 1.2) and ``gtfs``
(GTFS-Realtime Service Alerts), served through ``cache``.
"""

from incident.notices.actions import draft_from_action
from incident.notices.approval import (
    PublicationPolicy,
    cap_sender,
    check_due,
    generation,
    get_notice,
    publish,
)
from incident.notices.drafting import (
    CHECK_DUE_JOB,
    Draft,
    Fields,
    check_fields,
    draft_notice,
    draft_version,
)
from incident.notices.events import NoticeEvent

__all__ = [
    "CHECK_DUE_JOB",
    "Draft",
    "Fields",
    "NoticeEvent",
    "PublicationPolicy",
    "cap_sender",
    "check_due",
    "check_fields",
    "draft_from_action",
    "draft_notice",
    "draft_version",
    "generation",
    "get_notice",
    "publish",
]
