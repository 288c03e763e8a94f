"""``inbox://``: the demo phone. It always takes the message; the outcome recorder files it
for the demo inbox page (incident.handlers.file_in_inbox)."""

from __future__ import annotations

from incident.channels.messages import Message

SCHEMES = ("inbox",)


class InboxChannel:
    success_status = None  # no HTTP exchange to report

    async def attempt(self, message: Message) -> Exception | None:
        return None
