"""Which channel sends to which URL scheme. A new kind of address (a provider's SMS API, a
voice call) is one module in this package implementing :class:`~incident.channels.Channel`
and one line in ``KINDS``; nothing else in the service changes."""

from __future__ import annotations

from collections.abc import Callable

from incident.channels import inbox, webhook
from incident.channels.messages import Channel, SendPolicy
from incident.channels.via_apprise import AppriseChannel

Factory = Callable[[SendPolicy], Channel]

# (the URL schemes of a kind of address, how to make its channel from the send policy)
KINDS: tuple[tuple[tuple[str, ...], Factory], ...] = (
    (
        webhook.SCHEMES,
        lambda p: webhook.WebhookChannel(in_flight=p.in_flight, attempt_timeout=p.attempt_timeout),
    ),
    (inbox.SCHEMES, lambda p: inbox.InboxChannel()),
)


def build(policy: SendPolicy) -> tuple[dict[str, Channel], Channel]:
    """The channels by scheme (one object per kind, shared by its schemes) and the one for
    every other scheme (apprise)."""
    channels: dict[str, Channel] = {}
    for schemes, factory in KINDS:
        channel = factory(policy)
        for scheme in schemes:
            channels[scheme] = channel
    return channels, AppriseChannel(threads=policy.apprise_threads)
