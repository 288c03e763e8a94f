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
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
    wait_random_exponential,
)

from incident.channel_limits import ChannelLimits, Rate
from incident.logs import get_logger

log = get_logger(__name__)

WEBHOOK_SCHEMES = {"json", "jsons", "form", "forms"}
MAX_RETRY_AFTER_SECONDS = 3600.0
DEMO_SCHEMES = {"inbox"}


@dataclass(frozen=True)
class Message:
    """One message to one address. With ``values``, the address is a template whose
    ``{name}`` placeholders stand for them (a broadcast's SMS gateway with ``{phone}``): the
    template is parsed once however many numbers it is sent to."""

    delivery_id: int
    # Addresses, texts and values may hold a phone number: never in a repr (asyncio prints
    # the callbacks of pending tasks, and so the message, when a loop is torn down).
    address: str = field(repr=False)
    subject: str = field(repr=False)
    body: str = field(repr=False)
    idempotency_key: str
    values: dict[str, str] | None = field(default=None, repr=False)
    tried: int = 0  # attempts made for this delivery before (earlier runs of its job)
    lane: int = 0  # incident.jobs.Lane of its send: who goes first at a rate-limited gateway

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
    """What sending did. Final unless the send was handed back: ``released`` (its worker
    may no longer send it: lease lost, worker stopping) or deferred to ``retry_at`` (the
    receiver asked to wait longer than the send may stay in flight)."""

    delivery_id: int
    tries: list[Try] = field(default_factory=list)
    retry_at: datetime | None = None
    released: bool = False
    note: str | None = None  # why there is no attempt, when there is none

    @property
    def delivered(self) -> bool:
        return bool(self.tries) and self.tries[-1].outcome == "delivered"

    @property
    def final(self) -> bool:
        return not self.released and self.retry_at is None


Fence = Callable[[Message], bool]
"""Whether a message may be sent now (its worker still holds the job's lease)."""


class Fenced(Exception):
    """The fence said no just before an attempt: nothing was sent."""


def _outcome_of(task: asyncio.Task[Outcome], message: Message) -> Outcome:
    if task.cancelled():  # the sender closed under it: whether it arrived is unknown
        return Outcome(message.delivery_id, released=True)
    error = task.exception()
    if error is not None:
        log.error("send_crashed", delivery_id=message.delivery_id, error_type=type(error).__name__)
        return Outcome(message.delivery_id, note=f"send crashed: {type(error).__name__}")
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
    rates: tuple[tuple[str, Rate], ...] = ()  # gateway rate limits by scheme or host


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

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER_SECONDS)
        return float(self._jitter(state))


class _Bound:
    """tenacity's stop: the attempts are spent, or the next wait would end past the send's
    deadline. In the second case the send is deferred to ``resume_at`` rather than held in
    flight (a long ``Retry-After`` must not outlive the job's lease: the job is released
    and rescheduled, the delivery stays one delivery)."""

    def __init__(self, attempts: int, deadline: datetime, now: Callable[[], datetime]) -> None:
        self.attempts = attempts
        self.deadline = deadline
        self.now = now
        self.resume_at: datetime | None = None

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.attempts:
            return True
        resume = self.now() + timedelta(seconds=state.upcoming_sleep)
        if resume > self.deadline:
            self.resume_at = resume
            return True
        return False


class _Stopping(Exception):
    """The sender is stopping: a send waiting between attempts is handed back."""


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
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.policy = policy or SendPolicy()
        self._sleep = sleep or asyncio.sleep
        self._now = now or (lambda: datetime.now(UTC))
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
        self._stopping = threading.Event()
        self._wake_sleepers: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self.limits = ChannelLimits(dict(self.policy.rates))
        # apprise loads its plugins on first use (~0.3 s): do it now, not on the event loop
        apprise.Apprise.instantiate("json://localhost")

    # -- public --------------------------------------------------------------------------
    def submit(self, message: Message) -> Future[Outcome]:
        """Start sending; the future resolves with every attempt's outcome."""
        return asyncio.run_coroutine_threadsafe(self.send(message), self._loop)

    def submit_batch(
        self,
        messages: list[Message],
        done: Callable[[Outcome], None],
        fence: Fence | None = None,
    ) -> None:
        """Start sending many with one hand-over to the sender's loop; ``done`` is called
        (on the loop's thread) with each outcome as it finishes. It must be thread-safe.
        ``fence`` is asked just before every attempt whether the message may still be sent
        (a worker frozen past its lease must not send what another worker took over)."""

        def finished(message: Message, task: asyncio.Task[Outcome]) -> None:
            self._tasks.discard(task)
            done(_outcome_of(task, message))

        def start() -> None:
            for message in messages:
                task = self._loop.create_task(self.send(message, fence))
                self._tasks.add(task)
                task.add_done_callback(functools.partial(finished, message))

        self._loop.call_soon_threadsafe(start)

    def send_now(self, message: Message, timeout: float | None = None) -> Outcome:
        return self.submit(message).result(timeout)

    def stop_sending(self) -> None:
        """Begin a stop: sends waiting for their turn or between attempts are handed back at
        once (``released``); attempts under way finish (bounded by the attempt timeout)."""
        self._stopping.set()

        def wake() -> None:
            if self._wake_sleepers is not None:
                self._wake_sleepers.set()

        if self._loop.is_running():
            self._loop.call_soon_threadsafe(wake)

    def close(self) -> None:
        """Stop the loop: sends still under way are cancelled (their ``done`` callbacks see
        them released) and awaited, so no task is left pending."""

        async def _close() -> None:
            pending = [t for t in self._tasks if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
            if self._http is not None:
                await self._http.close()

        self._stopping.set()
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- sending -------------------------------------------------------------------------
    async def send(self, message: Message, fence: Fence | None = None) -> Outcome:
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.policy.in_flight)
        outcome = Outcome(message.delivery_id)
        async with self._limit:
            try:
                # Most deliveries succeed at once: only a transient failure pays for tenacity.
                await self._attempt(message, outcome, fence)
            except Transient as error:
                await self._retry(message, outcome, error, fence)
            except Permanent:
                pass  # recorded in outcome.tries
            except (Fenced, _Stopping):
                outcome.released = True
        return outcome

    async def _retry(
        self, message: Message, outcome: Outcome, error: Transient, fence: Fence | None
    ) -> None:
        """The attempts after a transient failure: backoff with jitter, Retry-After honoured,
        bounded in attempts (counting earlier runs of the job) and in time: a wait that
        would end past ``total_seconds`` from the first attempt defers the send instead."""
        bound = _Bound(
            self.policy.attempts - message.tried,
            outcome.tries[0].started_at + timedelta(seconds=self.policy.total_seconds),
            self._now,
        )
        replay: Transient | None = error  # the first attempt, already made
        try:
            async for attempt in AsyncRetrying(
                stop=bound,
                wait=_Wait(self.policy),
                retry=retry_if_exception_type(Transient),
                sleep=self._pause,
                reraise=True,
            ):
                with attempt:
                    if replay is not None:
                        failed, replay = replay, None
                        raise failed
                    await self._attempt(message, outcome, fence)
        except Transient:
            outcome.retry_at = bound.resume_at  # None: the attempts are spent
        except Permanent:
            pass  # recorded in outcome.tries
        except (Fenced, _Stopping):
            outcome.released = True

    async def _pause(self, seconds: float) -> None:
        """Sleep between attempts; a stop ends the sleep and hands the send back."""
        if self._stopping.is_set():
            raise _Stopping
        if self._wake_sleepers is None:
            self._wake_sleepers = asyncio.Event()
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stop = asyncio.ensure_future(self._wake_sleepers.wait())
        try:
            await asyncio.wait((sleeper, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (sleeper, stop):
                if not waiting.done():
                    waiting.cancel()
        if self._stopping.is_set():
            raise _Stopping

    async def _attempt(
        self, message: Message, outcome: Outcome, fence: Fence | None = None
    ) -> None:
        if self.limits:
            await self.limits.take(
                message.address, message.lane
            )  # the gateway's rate: wait for a turn
        if self._stopping.is_set():
            raise _Stopping
        if fence is not None and not fence(message):
            raise Fenced
        started = self._now()
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
        if isinstance(error, Transient) and status == 429 and self.limits:
            self.limits.pause(message.address, error.retry_after or 1.0)
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
