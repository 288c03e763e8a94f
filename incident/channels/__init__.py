"""Sending one message to one address, and sorting what went wrong.

``messages`` holds what passes around (a message, its tries, its outcome, the Channel
protocol); ``registry`` says which channel sends to which URL scheme (``webhook``: the
keep-alive fast path for ``json://`` and ``form://``; ``inbox``: the demo phone;
``via_apprise``: every other scheme); ``sender`` sends many at once, retrying, fencing and
rate-limiting them.
"""

from incident.channels.messages import (
    Channel,
    Fence,
    Fenced,
    Message,
    Outcome,
    Permanent,
    SendPolicy,
    Transient,
    Try,
    classify_status,
    retry_after_seconds,
)
from incident.channels.sender import Sender

__all__ = [
    "Channel",
    "Fence",
    "Fenced",
    "Message",
    "Outcome",
    "Permanent",
    "SendPolicy",
    "Sender",
    "Transient",
    "Try",
    "classify_status",
    "retry_after_seconds",
]
