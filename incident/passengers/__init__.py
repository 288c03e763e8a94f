"""Stranded passengers: groups and their care, manifests, broadcasts, inquiries, privacy.

Functions here take a session and the current time, add and flush, and never commit or
send; personal data is sealed with :class:`~incident.passengers.privacy.Vault`.
"""

from incident.passengers import broadcasts, groups, inquiries, manifests, retention, summary
from incident.passengers.broadcasts import PREPARE_JOB, sending_address, sending_target
from incident.passengers.events import PassengerEvent
from incident.passengers.inquiries import CALLBACK_JOB
from incident.passengers.manifests import DISCARD_JOB
from incident.passengers.privacy import Vault, mask_name, mask_phone, normalise_phone
from incident.passengers.retention import PURGE_JOB, schedule_purge

__all__ = [
    "CALLBACK_JOB",
    "DISCARD_JOB",
    "PREPARE_JOB",
    "PURGE_JOB",
    "PassengerEvent",
    "Vault",
    "broadcasts",
    "groups",
    "inquiries",
    "manifests",
    "mask_name",
    "mask_phone",
    "normalise_phone",
    "retention",
    "schedule_purge",
    "sending_address",
    "sending_target",
    "summary",
]
