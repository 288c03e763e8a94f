"""Growing delays after failed logins, per user name and per client address.

Each failure makes the next attempt for that name or address wait longer (0, 1, 2, 4, 8, then
10 seconds); a success clears the name's count. Nobody is ever locked out: an attacker is
slowed down, and the real duty manager still gets in. Kept in memory, per process, bounded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

CAP_SECONDS = 10.0
FORGET_AFTER_SECONDS = 15 * 60.0
MAX_KEYS = 10_000


def delay_after(failures: int) -> float:
    """Seconds to wait before answering an attempt that follows ``failures`` failures."""
    if failures <= 0:
        return 0.0
    return min(CAP_SECONDS, float(2 ** (failures - 1)))


class LoginThrottle:
    def __init__(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._monotonic = monotonic
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(name: str, address: str) -> list[str]:
        return [f"user:{name.strip().lower()}", f"addr:{address}"]

    def failures(self, key: str) -> int:
        with self._lock:
            found = self._failures.get(key)
            if found is None:
                return 0
            count, last = found
            if self._monotonic() - last > FORGET_AFTER_SECONDS:
                del self._failures[key]
                return 0
            return count

    def delay(self, keys: list[str]) -> float:
        return max((delay_after(self.failures(k)) for k in keys), default=0.0)

    async def wait(self, keys: list[str]) -> float:
        """Wait as long as the worst of ``keys`` asks; return the seconds waited."""
        seconds = self.delay(keys)
        if seconds > 0:
            await self._sleep(seconds)
        return seconds

    def failed(self, keys: list[str]) -> None:
        now = self._monotonic()
        with self._lock:
            for key in keys:
                count = self._failures.pop(key, (0, now))[0]
                self._failures[key] = (count + 1, now)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
