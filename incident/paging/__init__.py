"""Pages: who is paged, acknowledgement, and escalation along the roster's chains.

A page targets a department (its people on duty, then its escalation chain), a role or a
person. Each level of the chain pages its people through their first contact method; a
delivery that fails for good moves on to the person's next method; when every recipient of a
level is unreachable, or nobody acknowledges within ``ack_within``, the next level is paged.
At the end of the chain the duty director is alerted that nobody answered.
Functions here add and flush; they never commit and never send.
"""

from incident.paging.acks import (
    acknowledge,
    acknowledge_as,
    acknowledge_by_link,
    decline,
    get_page,
    pages_of,
    recipient_for_link,
)
from incident.paging.contacts import finish_direct_tests, test_contacts
from incident.paging.escalation import (
    escalate,
    mark_delivered,
    on_deadline,
    on_delivery_outcome,
)
from incident.paging.flood import send_bundle
from incident.paging.messages import DRILL_MARK, message_for
from incident.paging.pages import alert_duty, open_page, page_for_action
from incident.paging.policy import BUNDLE_JOB, DEADLINE_JOB, DUTY_LEVEL, PagingPolicy, chain_for

__all__ = [
    "BUNDLE_JOB",
    "DEADLINE_JOB",
    "DRILL_MARK",
    "DUTY_LEVEL",
    "PagingPolicy",
    "acknowledge",
    "acknowledge_as",
    "acknowledge_by_link",
    "alert_duty",
    "chain_for",
    "decline",
    "escalate",
    "finish_direct_tests",
    "get_page",
    "mark_delivered",
    "message_for",
    "on_deadline",
    "on_delivery_outcome",
    "open_page",
    "page_for_action",
    "pages_of",
    "recipient_for_link",
    "send_bundle",
    "test_contacts",
]
