"""The fake gateway at the channel boundary (``sim://...`` addresses) and the real Sender
around it.

Every address gets a behaviour for the day (a :class:`Profile`): it answers, fails now and
then with 503, throttles with 429 and ``Retry-After``, refuses with 400, times out, is slow
or hangs. What one attempt does is decided by ``(seed, idempotency key, attempt number)``
alone, so a seed replays the same way whatever order the sends run in. Slow and hanging
attempts wait on the simulated clock: they stay parked until the simulator releases them.

The gateway records every accepted delivery by its idempotency key.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incident.channels import Message, Outcome, Permanent, Sender, SendPolicy, Transient
from incident.clock import FrozenClock

SCHEME = "sim"
BEHAVIOURS = ("ok", "503", "429", "400", "timeout", "slow", "hang")


@dataclass(frozen=True)
class Profile:
    """How an address behaves: weights of each behaviour per attempt."""

    name: str
    weights: tuple[float, ...]  # one per BEHAVIOURS
    retry_after: float = 5.0
    delay: float = 10.0  # seconds a slow or hanging attempt takes (simulated)

    def pick(self, rng: random.Random) -> str:
        return rng.choices(BEHAVIOURS, self.weights)[0]


PROFILES: dict[str, Profile] = {
    "ok": Profile("ok", (1, 0, 0, 0, 0, 0, 0)),
    "flaky": Profile("flaky", (0.5, 0.4, 0, 0, 0.1, 0, 0)),
    "throttled": Profile("throttled", (0.5, 0, 0.5, 0, 0, 0, 0)),
    "down": Profile("down", (0, 1, 0, 0, 0, 0, 0)),
    "broken": Profile("broken", (0, 0, 0, 1, 0, 0, 0)),
    "timeouts": Profile("timeouts", (0.3, 0, 0, 0, 0.7, 0, 0)),
    "slow": Profile("slow", (0.4, 0, 0, 0, 0, 0.6, 0)),
    "hangs": Profile("hangs", (0.5, 0, 0, 0, 0, 0, 0.5)),
}


@dataclass
class Accepted:
    key: str
    delivery_id: int
    address: str
    at: datetime


@dataclass
class _Parked:
    release_at: datetime
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event


@dataclass
class Gateway:
    """A seeded receiver for ``sim://`` addresses (implements the Channel protocol)."""

    clock: FrozenClock
    seed: int = 0
    profiles: dict[str, Profile] = field(default_factory=dict)
    accepted: list[Accepted] = field(default_factory=list)
    tries: Counter[str] = field(default_factory=Counter)
    parked_for: dict[int, float] = field(default_factory=dict)  # delivery id -> seconds parked
    # The sender gives up an attempt after this long (simulated): the receiver never takes
    # an answer it could not give in time.
    attempt_timeout: float = 10.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._parked: list[_Parked] = []
        # Sends under way, over every sender: the simulator waits until each has finished
        # or is parked here.
        self._quiet = threading.Condition()
        self._outstanding = 0

    # -- sends under way ---------------------------------------------------------------------
    def on_change(self) -> None:
        with self._quiet:
            self._quiet.notify_all()

    def started(self, n: int) -> None:
        with self._quiet:
            self._outstanding += n

    def finished(self, n: int = 1) -> None:
        with self._quiet:
            self._outstanding -= n
            self._quiet.notify_all()

    def outstanding(self) -> int:
        with self._quiet:
            return self._outstanding

    def wait_quiet(self, timeout: float = 10.0) -> bool:
        """Wait until every send under way has finished or is parked at the gateway."""
        with self._quiet:
            return self._quiet.wait_for(lambda: self._outstanding <= self.parked(), timeout)

    def reset(self, seed: int, profiles: dict[str, Profile], clock: FrozenClock) -> None:
        with self._lock:
            assert not self._parked, "release every parked attempt before a new scenario"
            self.seed = seed
            self.profiles = dict(profiles)
            self.clock = clock
            self.accepted = []
            self.tries = Counter()
            self.parked_for = {}

    # -- the Channel protocol --------------------------------------------------------------
    async def attempt(self, message: Message) -> Exception | None:
        key = message.idempotency_key
        with self._lock:
            self.tries[key] += 1
            number = self.tries[key]
            profile = self.profiles.get(message.address) or PROFILES["ok"]
        rng = random.Random(f"{self.seed}:{key}:{number}")
        behaviour = profile.pick(rng)
        if behaviour in ("slow", "hang"):
            scale = 1.0 if behaviour == "slow" else 6.0
            seconds = profile.delay * scale * rng.uniform(0.5, 1.5)
            waited = min(seconds, self.attempt_timeout)
            with self._lock:
                so_far = self.parked_for.get(message.delivery_id, 0.0)
                self.parked_for[message.delivery_id] = so_far + waited
            await self._park(timedelta(seconds=waited))
            if seconds > self.attempt_timeout:
                raise TimeoutError("simulated: no answer within the attempt timeout")
            behaviour = "ok" if behaviour == "slow" or rng.random() < 0.7 else "timeout"
        if behaviour == "ok":
            with self._lock:
                self.accepted.append(
                    Accepted(key, message.delivery_id, message.address, self.clock.now())
                )
            return None
        if behaviour == "503":
            return Transient("HTTP 503", status=503)
        if behaviour == "429":
            return Transient("HTTP 429", status=429, retry_after=profile.retry_after)
        if behaviour == "400":
            return Permanent("HTTP 400", status=400)
        raise TimeoutError("simulated timeout")

    # -- simulated time ----------------------------------------------------------------------
    async def _park(self, delay: timedelta) -> None:
        parked = _Parked(self.clock.now() + delay, asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._parked.append(parked)
        self.on_change()
        try:
            await parked.event.wait()
        finally:
            with self._lock:
                if parked in self._parked:
                    self._parked.remove(parked)
            self.on_change()

    def parked(self) -> int:
        with self._lock:
            return len(self._parked)

    def next_release(self) -> datetime | None:
        with self._lock:
            return min((p.release_at for p in self._parked), default=None)

    def release_due(self, now: datetime | None = None) -> int:
        """Let the parked attempts whose time has come finish (all of them with no ``now``)."""
        with self._lock:
            due = [p for p in self._parked if now is None or p.release_at <= now]
            for p in due:
                self._parked.remove(p)
        for p in due:
            p.loop.call_soon_threadsafe(p.event.set)
        if due:
            self.on_change()
        return len(due)

    def forget(self, loop: asyncio.AbstractEventLoop, abandoned: int) -> None:
        """A sender was closed: its parked attempts and its sends under way never finish."""
        with self._lock:
            self._parked = [p for p in self._parked if p.loop is not loop]
        self.finished(abandoned)

    def accepted_counts(self) -> Counter[str]:
        with self._lock:
            return Counter(a.key for a in self.accepted)


async def instant_sleep(_seconds: float) -> None:
    """The Sender's backoff and Retry-After waits take no real time."""
    await asyncio.sleep(0)


class SimSender(Sender):
    """The real Sender, with the gateway plugged in as the ``sim`` channel; each worker has
    its own (closed when the worker stops or its scenario ends). Sends under way are counted
    at the gateway."""

    def __init__(self, gateway: Gateway, policy: SendPolicy) -> None:
        super().__init__(
            policy, sleep=instant_sleep, channels={SCHEME: gateway}, now=lambda: gateway.clock.now()
        )
        gateway.attempt_timeout = policy.attempt_timeout
        self.gateway = gateway
        self._mine = 0
        self._lock = threading.Lock()
        self.closed = False

    def submit_batch(
        self,
        messages: list[Message],
        done: Callable[[Outcome], None],
        fence: Callable[[Message], bool] | None = None,
    ) -> None:
        with self._lock:
            self._mine += len(messages)
        self.gateway.started(len(messages))

        def finished(outcome: Outcome) -> None:
            try:
                done(outcome)
            finally:
                with self._lock:
                    self._mine -= 1
                self.gateway.finished()

        super().submit_batch(messages, finished, fence)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self._loop
        super().close()
        with self._lock:
            abandoned, self._mine = self._mine, 0
        self.gateway.forget(loop, abandoned)
