"""Sending one message to one address, and sorting what went wrong.

Webhook schemes (``json://``, ``form://`` and their secure forms) go through one keep-alive
aiohttp session with the payload apprise would send (apprise parses the URL, so its options,
headers and payload extras mean the same); every other scheme goes through apprise, with one
reused object per URL, ``service_timeout=0`` and our own bounded thread pool.
``inbox://`` is the demo channel: it always delivers (the outcome recorder files the message).

Failures are transient (timeouts, connection errors, 408, 429, 5xx, apprise failure) and
retried with tenacity, exponential backoff with jitter, bounded in attempts and total time,
``Retry-After`` honoured; or permanent (bad URL, other 4xx, nothing to notify) and not retried.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import apprise
from apprise.plugins.custom_form import NotifyForm
from apprise.plugins.custom_json import NotifyJSON
from apprise.result import AppriseResultStatus
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from incident.logs import get_logger

log = get_logger(__name__)

WEBHOOK_SCHEMES = {"json", "jsons", "form", "forms"}
DEMO_SCHEMES = {"inbox"}


@dataclass(frozen=True)
class Message:
    """One message to one address. With ``values``, the address is a template whose
    ``{name}`` placeholders stand for them (a broadcast's SMS gateway with ``{phone}``): the
    template is parsed once however many numbers it is sent to."""

    delivery_id: int
    address: str
    subject: str
    body: str
    idempotency_key: str
    values: dict[str, str] | None = None

    def resolved_address(self) -> str:
        """The address with its placeholders filled (URL-quoted)."""
        return _fill(self.address, self.values, quoted=True)


def _fill(text: str, values: dict[str, str] | None, *, quoted: bool = False) -> str:
    """``text`` with each ``{name}`` (and its URL-quoted form) replaced by its value."""
    if not values or ("{" not in text and "%7" not in text.lower()):
        return text
    for name, value in values.items():
        put = quote(value, safe="") if quoted else value
        for mark in ("{" + name + "}", f"%7B{name}%7D", f"%7b{name}%7d"):
            text = text.replace(mark, put)
    return text


@dataclass(frozen=True)
class Try:
    """One attempt as the channel saw it."""

    started_at: datetime
    duration_ms: int
    outcome: str  # delivered | transient | permanent
    status_code: int | None = None
    error: str | None = None


@dataclass
class Outcome:
    delivery_id: int
    tries: list[Try] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return bool(self.tries) and self.tries[-1].outcome == "delivered"


def _outcome_of(task: asyncio.Task[Outcome], message: Message) -> Outcome:
    if task.cancelled() or task.exception() is not None:
        log.error(
            "send_crashed",
            delivery_id=message.delivery_id,
            error=str(None if task.cancelled() else task.exception()),
        )
        return Outcome(message.delivery_id)
    return task.result()


class Transient(Exception):
    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Permanent(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SendPolicy:
    attempts: int = 4
    attempt_timeout: float = 10.0
    total_seconds: float = 25.0
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 10.0
    in_flight: int = 256
    apprise_threads: int = 32


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - now).total_seconds())


def _classify_status(status: int, retry_after: float | None) -> Exception | None:
    if 200 <= status < 300:
        return None
    if status in (408, 425, 429) or status >= 500:
        return Transient(f"HTTP {status}", status=status, retry_after=retry_after)
    return Permanent(f"HTTP {status}", status=status)


class _Wait:
    """Exponential backoff with jitter, unless the receiver said when (Retry-After)."""

    def __init__(self, policy: SendPolicy) -> None:
        self._jitter = wait_random_exponential(
            multiplier=policy.backoff_seconds, max=policy.max_backoff_seconds
        )
        self._first = min(policy.backoff_seconds, policy.max_backoff_seconds)
        self._cap = policy.max_backoff_seconds * 6

    @property
    def cap(self) -> float:
        return self._cap

    def first(self) -> float:
        """The wait before the second attempt (tenacity's formula for attempt one)."""
        return random.uniform(0, self._first)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self._cap)
        return float(self._jitter(state))


class Channel(Protocol):
    """One kind of address (by URL scheme): makes one attempt at sending a message.

    Returns None when the receiver took it, else a :class:`Transient` or :class:`Permanent`
    error saying why not; it may also raise ``TimeoutError``, ``OSError`` or
    ``aiohttp.ClientError`` (all transient)."""

    async def attempt(self, message: Message) -> Exception | None: ...


class Sender:
    """Sends messages concurrently on its own event loop thread, bounded in flight.

    ``channels`` adds or replaces channels by URL scheme (tests and the simulator plug
    loopback stand-ins in here); the built-in ones are the webhook fast path, apprise and
    the demo inbox."""

    def __init__(
        self,
        policy: SendPolicy | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        channels: Mapping[str, Channel] | None = None,
    ) -> None:
        self.policy = policy or SendPolicy()
        self._sleep = sleep or asyncio.sleep
        self._channels = dict(channels or {})
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="incident-sender", daemon=True
        )
        self._thread.start()
        self._pool = ThreadPoolExecutor(
            self.policy.apprise_threads, thread_name_prefix="incident-apprise"
        )
        self._apprise: OrderedDict[str, Any] = OrderedDict()
        self._apprise_lock = threading.Lock()
        self._http: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=self.policy.attempt_timeout)
        self._limit: asyncio.Semaphore | None = None
        # apprise loads its plugins on first use (~0.3 s): do it now, not on the event loop
        apprise.Apprise.instantiate("json://localhost")

    # -- public --------------------------------------------------------------------------
    def submit(self, message: Message) -> Future[Outcome]:
        """Start sending; the future resolves with every attempt's outcome."""
        return asyncio.run_coroutine_threadsafe(self.send(message), self._loop)

    def submit_batch(self, messages: list[Message], done: Callable[[Outcome], None]) -> None:
        """Start sending many with one hand-over to the sender's loop; ``done`` is called
        (on the loop's thread) with each outcome as it finishes. It must be thread-safe."""

        def finished(message: Message, task: asyncio.Task[Outcome]) -> None:
            done(_outcome_of(task, message))

        def start() -> None:
            for message in messages:
                task = self._loop.create_task(self.send(message))
                task.add_done_callback(functools.partial(finished, message))

        self._loop.call_soon_threadsafe(start)

    def send_now(self, message: Message, timeout: float | None = None) -> Outcome:
        return self.submit(message).result(timeout)

    def close(self) -> None:
        async def _close() -> None:
            if self._http is not None:
                await self._http.close()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- sending -------------------------------------------------------------------------
    async def send(self, message: Message) -> Outcome:
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.policy.in_flight)
        outcome = Outcome(message.delivery_id)
        async with self._limit:
            try:
                # Most deliveries succeed at once: only a transient failure pays for tenacity.
                await self._attempt(message, outcome)
            except Transient as error:
                await self._retry(message, outcome, error)
            except Permanent:
                pass  # recorded in outcome.tries
        return outcome

    async def _retry(self, message: Message, outcome: Outcome, error: Transient) -> None:
        """The attempts after a transient failure: backoff with jitter, Retry-After honoured,
        bounded in attempts and in total time (counted from the first attempt)."""
        if self.policy.attempts <= 1:
            return
        first = outcome.tries[0].started_at
        spent = (datetime.now(UTC) - first).total_seconds()
        wait = _Wait(self.policy)
        retry_after = error.retry_after
        try:
            await self._sleep(
                min(retry_after, wait.cap) if retry_after is not None else wait.first()
            )
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.policy.attempts - 1)
                | stop_after_delay(max(0.0, self.policy.total_seconds - spent)),
                wait=wait,
                retry=retry_if_exception_type(Transient),
                sleep=self._sleep,
                reraise=True,
            ):
                with attempt:
                    await self._attempt(message, outcome)
        except (Transient, Permanent):
            pass  # recorded in outcome.tries

    async def _attempt(self, message: Message, outcome: Outcome) -> None:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        scheme = message.address.split("://", 1)[0].lower()
        error: Exception | None
        try:
            channel = self._channels.get(scheme)
            if channel is not None:
                error = await channel.attempt(message)
            elif scheme in DEMO_SCHEMES:
                error = None
            elif scheme in WEBHOOK_SCHEMES:
                error = await self._webhook(message)
            else:
                error = await asyncio.get_running_loop().run_in_executor(
                    self._pool, self._via_apprise, message
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = Transient(f"{type(exc).__name__}: {exc}"[:300])
        ms = int((time.perf_counter() - t0) * 1000)
        if error is None:
            outcome.tries.append(Try(started, ms, "delivered", 200 if scheme != "inbox" else None))
            return
        status = getattr(error, "status", None)
        kind = "transient" if isinstance(error, Transient) else "permanent"
        outcome.tries.append(Try(started, ms, kind, status, str(error)[:500]))
        log.info(
            "delivery_attempt_failed",
            delivery_id=message.delivery_id,
            outcome=kind,
            status=status,
            scheme=scheme,
        )
        raise error

    def _parsed(self, address: str) -> Any:
        with self._apprise_lock:
            found = self._apprise.get(address)
            if found is None:
                # The plugin's own parser and constructor (about 70 us) rather than
                # Apprise.instantiate (about 430 us): same options, same payload.
                plugin = NotifyJSON if address.lower().startswith("json") else NotifyForm
                try:
                    parsed = plugin.parse_url(address)  # type: ignore[no-untyped-call]
                    found = plugin(**parsed) if parsed else None
                except TypeError:
                    found = None
                if found is None:
                    raise Permanent("not a valid apprise URL")
                self._apprise[address] = found
                if len(self._apprise) > 5000:
                    self._apprise.popitem(last=False)
            else:
                self._apprise.move_to_end(address)
            return found

    async def _webhook(self, message: Message) -> Exception | None:
        values = message.values
        plugin = self._parsed(message.address)
        if values and any(
            "{" in str(part or "") for part in (plugin.host, plugin.user, plugin.password)
        ):  # a placeholder where no field is filled per message: parse the filled address
            plugin, values = self._parsed(message.resolved_address()), None
        if self._http is None:
            connector = aiohttp.TCPConnector(limit=self.policy.in_flight, limit_per_host=0)
            self._http = aiohttp.ClientSession(connector=connector, trust_env=False)
        url = f"{'https' if plugin.secure else 'http'}://{plugin.host}"
        if isinstance(plugin.port, int):
            url += f":{plugin.port}"
        url += _fill(plugin.fullpath, values, quoted=True)
        headers = {
            "User-Agent": plugin.app_id,
            **{k: _fill(v, values) for k, v in plugin.headers.items()},
            "Idempotency-Key": message.idempotency_key,
        }
        params = {k: _fill(v, values) for k, v in plugin.params.items()} or None
        payload: dict[str, Any] = {
            "version": "1.0",
            "title": message.subject,
            "message": message.body,
            "type": "info",
        }
        if message.address.split("://", 1)[0].lower() in ("json", "jsons"):
            payload = {
                "version": plugin.json_version,
                "title": message.subject,
                "message": message.body,
                "attachments": [],
                "type": "info",
            }
        for key, template in plugin.payload_extras.items():
            value = _fill(template, values) if isinstance(template, str) else template
            if key in payload:
                if value:
                    payload[value] = payload.pop(key)
                else:
                    del payload[key]
            else:
                payload[key] = value
        auth = aiohttp.BasicAuth(plugin.user, plugin.password or "") if plugin.user else None
        method = str(getattr(plugin, "method", "POST")).upper()
        kwargs: dict[str, Any] = {
            "headers": headers,
            "params": params,
            "auth": auth,
            "timeout": self._timeout,
            "allow_redirects": bool(getattr(plugin, "redirects", True)),
        }
        if plugin.secure and not getattr(plugin, "verify_certificate", True):
            kwargs["ssl"] = False
        if isinstance(plugin, NotifyJSON):
            kwargs["json"] = payload
        else:
            kwargs["data"] = {k: str(v) for k, v in payload.items()}
        assert self._http is not None
        async with self._http.request(method, url, **kwargs) as response:
            await response.read()
            after = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
            return _classify_status(response.status, after)

    def _via_apprise(self, message: Message) -> Exception | None:
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
