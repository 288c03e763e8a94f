"""SQLAlchemy 2 typed tables, one module per aggregate."""

from incident.models.base import Base, UTCDateTime, new_id
from incident.models.command import AuthorityReport, Handover, IncidentRole, Task
from incident.models.drills import CorrectiveAction, DrillSchedule, Evaluation
from incident.models.inbox import InboxMessage
from incident.models.incidents import Incident, PlaybookVersion, Stage
from incident.models.jobs import Job
from incident.models.notices import Notice, NoticeFeedState, NoticeVersion
from incident.models.operations import WorkerHeartbeat
from incident.models.paging import AckToken, Delivery, DeliveryAttempt, Page, PageRecipient
from incident.models.passengers import (
    Broadcast,
    BroadcastRecipient,
    CareEntry,
    Inquiry,
    ManifestUpload,
    Passenger,
    PassengerGroup,
)
from incident.models.roster import ContactMethod, Department, Person, RotaOverride, RotaPattern
from incident.models.security import ApiToken, IdempotencyRecord, User
from incident.models.timeline import TimelineEvent

__all__ = [
    "AckToken",
    "ApiToken",
    "AuthorityReport",
    "Base",
    "Broadcast",
    "BroadcastRecipient",
    "CareEntry",
    "ContactMethod",
    "CorrectiveAction",
    "Delivery",
    "DeliveryAttempt",
    "Department",
    "DrillSchedule",
    "Evaluation",
    "Handover",
    "IdempotencyRecord",
    "InboxMessage",
    "Incident",
    "IncidentRole",
    "Inquiry",
    "Job",
    "ManifestUpload",
    "Notice",
    "NoticeFeedState",
    "NoticeVersion",
    "Page",
    "PageRecipient",
    "Passenger",
    "PassengerGroup",
    "Person",
    "PlaybookVersion",
    "RotaOverride",
    "RotaPattern",
    "Stage",
    "Task",
    "TimelineEvent",
    "UTCDateTime",
    "User",
    "WorkerHeartbeat",
    "new_id",
]
