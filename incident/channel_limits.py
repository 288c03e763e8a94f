"""Rate limits of the gateways messages go through (#15): an SMS gateway that takes 50
messages a second, chat robots that take 20 a minute.

A rule names a URL scheme (``dingtalk``) or a host (``sms.example.com``) and a rate
(``50/s``, ``20/min``, ``1000/h``). Sends to a matching address wait their turn: no more than
the rate starts in any sliding window of its length (a sliding log, not a token bucket, so
no second ever sees more than the rate), evenly spaced a little wider than the rate (no
bursts that jitter could bunch at the gateway). Several workers share a gateway's rate: each takes
its share (``set_share``). A gateway that answers 429 pauses everyone's sends to it for its
``Retry-After``.

Waiting sends are served by lane (a page before a broadcast), then in order of arrival;
broadcasts are paced at the gateway's rate when they are queued (incident.passengers
.broadcasts), so two incidents' broadcasts take turns instead of one waiting for the other.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from incident.errors import ConfigError

UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
MARGIN_SECONDS = 0.01  # starts are spaced a little more than the window: arrival jitter
NAP_SECONDS = 0.05
SPACING = 1.05  # starts are spaced 5 % wider than the rate: 50/s goes out at about 47.6/s


@dataclass(frozen=True)
class Rate:
    count: int
    window: float  # seconds

    @classmethod
    def parse(cls, text: str, *, setting: str) -> Rate:
        """``50/s``, ``20/min``, ``1000/h``."""
        number, _, unit = text.strip().partition("/")
        try:
            count = int(number)
        except ValueError:
            count = 0
        if count < 1 or unit.strip() not in UNITS:
            raise ConfigError(f"{setting}: expected a rate like 50/s or 20/min, got {text!r}")
        return cls(count, UNITS[unit.strip()])


def parse_rules(text: str, *, setting: str) -> dict[str, Rate]:
    """``scheme-or-host=rate`` pairs, comma-separated."""
    rules = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, rate = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{setting}: expected name=rate pairs, got {part!r}")
        rules[key.strip().lower()] = Rate.parse(rate, setting=setting)
    return rules


def host_of(address: str) -> str:
    """The host an apprise URL talks to ('' when it has none)."""
    try:
        return (urlsplit(address).hostname or "").lower()
    except ValueError:
        return ""


class _Window:
    """At most ``count`` starts in any ``window`` seconds (a sliding log). Waiting sends go
    by lane, then by arrival: a page never queues behind a broadcast at the gateway."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.count = rate.count
        self.starts: deque[float] = deque()
        self.paused_until = 0.0
        self.waiting: list[tuple[int, int]] = []  # (lane, arrival): a heap
        self.turns: dict[tuple[int, int], asyncio.Future[None]] = {}
        self.arrivals = itertools.count()

    def _delay(self, now: float) -> float:
        if now < self.paused_until:
            return self.paused_until - now
        while len(self.starts) > self.count:
            self.starts.popleft()
        if not self.starts:
            return 0.0
        # Evenly spaced, a little slower than the rate: a burst sent at once could reach the
        # gateway bunched with the next second's messages (network and scheduling jitter).
        spaced = self.starts[-1] + self.rate.window / self.count * SPACING - now
        if len(self.starts) < self.count:
            return spaced
        full = self.starts[-self.count] + self.rate.window + MARGIN_SECONDS - now
        return max(spaced, full)

    def _wake_first(self) -> None:
        if self.waiting:
            turn = self.turns.pop(self.waiting[0], None)
            if turn is not None and not turn.done():
                turn.set_result(None)

    async def take(self, lane: int) -> None:
        ticket = (lane, next(self.arrivals))
        heapq.heappush(self.waiting, ticket)
        try:
            while True:
                if self.waiting[0] != ticket:  # someone goes first: wait to be woken
                    turn = asyncio.get_running_loop().create_future()
                    self.turns[ticket] = turn
                    await turn
                    continue
                now = time.monotonic()
                delay = self._delay(now)
                if delay <= 0:
                    heapq.heappop(self.waiting)
                    self.starts.append(now)
                    self._wake_first()
                    return
                # Short naps: a more urgent send arriving meanwhile goes first.
                await asyncio.sleep(min(delay, NAP_SECONDS))
        except BaseException:
            self.turns.pop(ticket, None)
            if ticket in self.waiting:
                self.waiting.remove(ticket)
                heapq.heapify(self.waiting)
                self._wake_first()
            raise


class ChannelLimits:
    """The rate rules, and a window per rule and host, made on the sender's loop."""

    def __init__(self, rules: dict[str, Rate] | None = None) -> None:
        self.rules = dict(rules or {})
        self._windows: dict[tuple[str, str], _Window] = {}
        self._share = 1

    def __bool__(self) -> bool:
        return bool(self.rules)

    def set_share(self, workers: int) -> None:
        """This worker is one of ``workers`` sharing every gateway."""
        self._share = max(1, workers)
        for window in list(self._windows.values()):
            window.count = max(1, window.rate.count // self._share)

    def _window(self, address: str) -> _Window | None:
        scheme = address.split("://", 1)[0].lower()
        host = host_of(address)
        rule = host if host in self.rules else scheme if scheme in self.rules else None
        if rule is None:
            return None
        found = self._windows.get((rule, host))
        if found is None:
            found = _Window(self.rules[rule])
            found.count = max(1, found.rate.count // self._share)
            self._windows[(rule, host)] = found
        return found

    async def take(self, address: str, lane: int = 0) -> None:
        """Wait until a send to ``address`` may start (lower lanes first)."""
        window = self._window(address)
        if window is not None:
            await window.take(lane)

    def pause(self, address: str, seconds: float) -> None:
        """The gateway said 429 with Retry-After: nobody sends to it before then."""
        window = self._window(address)
        if window is not None:
            window.paused_until = max(window.paused_until, time.monotonic() + seconds)
