"""Every other scheme goes through apprise (mailto, DingTalk, WeCom, Feishu robots ...), in a
bounded thread pool, one Apprise object per message (the idempotency key travels in the URL),
``service_timeout=0`` (our own retry, not apprise's); apprise's result is classified."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import apprise
from apprise.result import AppriseResultStatus

from incident.channels.messages import Message, Permanent, Transient


class AppriseChannel:
    def __init__(self, *, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="incident-apprise")
        # apprise loads its plugins on first use (~0.3 s): do it now, not on the event loop
        apprise.Apprise.instantiate("json://localhost")

    async def attempt(self, message: Message) -> Exception | None:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._send, message)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _send(self, message: Message) -> Exception | None:
        address = message.resolved_address()
        sep = "&" if "?" in address else "?"
        key = message.idempotency_key
        address = f"{address}{sep}+Idempotency-Key={key}&+Message-ID=<{key}@incident>"
        # The key travels in the URL (as headers), so each message gets its own object;
        # apprise is the long tail of schemes here, not the high-volume path.
        notifier = apprise.Apprise(asset=apprise.AppriseAsset(service_timeout=0))
        if not notifier.add(address):
            raise Permanent("not a valid apprise URL")
        result = notifier.notify(body=message.body, title=message.subject)
        status = getattr(result, "status", None)
        if status == AppriseResultStatus.SUCCESS:
            return None
        if status == AppriseResultStatus.NOMATCH:
            return Permanent("apprise had nothing to notify")
        return Transient(f"apprise reported {getattr(status, 'name', status)}")
