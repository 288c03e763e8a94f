"""The sender: sends messages concurrently on its own event loop thread, bounded in flight,
each through the channel of its URL scheme (incident.channels.registry).

Failures are transient (timeouts, connection errors, 408, 429, 5xx, apprise failure) and
retried with tenacity, exponential backoff with jitter, bounded in attempts (counting earlier
runs of the job) and in time, ``Retry-After`` honoured: a wait that would end past the send's
time bound defers the delivery instead (its job is released and rescheduled). Permanent
failures (bad URL, other 4xx, nothing to notify) are not retried. Every attempt is fenced
(the worker still holds the job), waits its turn at a rate-limited gateway, and a stop hands
back the sends that wait.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from incident.channel_limits import ChannelLimits
from incident.channels import registry
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
)
from incident.logs import get_logger

log = get_logger(__name__)
MAX_RETRY_AFTER_SECONDS = 3600.0
ATTEMPT_GRACE_SECONDS = 1.0  # beyond the channel's own timeout of one attempt


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


def _outcome_of(task: asyncio.Task[Outcome], message: Message) -> Outcome:
    if task.cancelled():  # the sender closed under it: whether it arrived is unknown
        return Outcome(message.delivery_id, released=True)
    error = task.exception()
    if error is not None:
        log.error("send_crashed", delivery_id=message.delivery_id, error_type=type(error).__name__)
        return Outcome(message.delivery_id, note=f"send crashed: {type(error).__name__}")
    return task.result()


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
        built, self._fallback = registry.build(self.policy)
        self._channels: dict[str, Channel] = {**built, **(channels or {})}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="incident-sender", daemon=True
        )
        self._thread.start()
        self._limit: asyncio.Semaphore | None = None
        self._stopping = threading.Event()
        self._wake_sleepers: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self.limits = ChannelLimits(dict(self.policy.rates))

    # -- public --------------------------------------------------------------------------
    def channel(self, scheme: str) -> Channel:
        """The channel that sends to addresses of ``scheme``."""
        return self._channels.get(scheme.lower(), self._fallback)

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
            for channel in {id(c): c for c in [*self._channels.values(), self._fallback]}.values():
                closing = getattr(channel, "close", None)
                if closing is not None:
                    await closing()

        self._stopping.set()
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

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
        channel = self._channels.get(scheme, self._fallback)
        error: Exception | None
        try:
            # Every channel's attempt is bounded, whatever its own client does (a stuck
            # apprise plugin must not hold a send, and its job's lease, forever).
            async with asyncio.timeout(self.policy.attempt_timeout + ATTEMPT_GRACE_SECONDS):
                error = await channel.attempt(message)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = Transient(f"{type(exc).__name__}: {exc}"[:300])
        ms = int((time.perf_counter() - t0) * 1000)
        if error is None:
            status_code = getattr(channel, "success_status", 200)
            outcome.tries.append(Try(started, ms, "delivered", status_code))
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
