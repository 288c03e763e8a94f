"""An in-process cache of the rendered public surfaces (page, Atom, CAP, GTFS-Realtime).

Entries are keyed by a stamp: the publication generation stored in the database (raised by
every live publication, whichever process made it) and the minute of the clock (closed
notices age out of the listings). A process re-reads the generation at most every
``check_every`` seconds, and at once after it published something itself.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

Stamp = tuple[int, int]
READ_TIMEOUT = 5.0
"""Seconds after which a generation read that never reported back is tried again."""


@dataclass(frozen=True)
class Rendered:
    """A rendered surface, ready to serve."""

    body: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Rendered:
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        return cls(body, media_type, f'"{digest}"')


def stamp_of(generation: int, now: datetime) -> Stamp:
    return generation, int(now.timestamp() // 60)


class FeedCache:
    """Rendered surfaces by key, valid while their stamp is current."""

    def __init__(self, check_every: float, max_entries: int = 1024) -> None:
        self.check_every = check_every
        self.max_entries = max_entries
        self._generation = 0
        self._checked_at = float("-inf")
        self._epoch = 0
        self._learned = False  # a generation was read since the last invalidation
        self._reading_since = float("-inf")  # one request re-reads it; others keep serving
        self._entries: dict[str, tuple[Stamp, Rendered]] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    # -- the generation ------------------------------------------------------------------
    def known_generation(self) -> tuple[int | None, int]:
        """The generation to serve, or None: then read it from the database and pass it to
        :meth:`learn` with the epoch returned here.

        When the check is merely due (not invalidated), one caller re-reads it while the
        others keep serving the generation known (at most ``check_every`` old)."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at < self.check_every:
                return self._generation, self._epoch
            if self._learned and now - self._reading_since < READ_TIMEOUT:
                return self._generation, self._epoch
            self._reading_since = now
            return None, self._epoch

    def learn(self, generation: int, epoch: int) -> None:
        """Remember a generation read from the database, unless invalidated meanwhile."""
        with self._lock:
            if epoch == self._epoch:
                self._generation = generation
                self._checked_at = time.monotonic()
                self._learned = True
                self._reading_since = float("-inf")

    def invalidate(self) -> None:
        """Something was published here: every request reads the generation until one has."""
        with self._lock:
            self._epoch += 1
            self._checked_at = float("-inf")
            self._learned = False
            self._reading_since = float("-inf")

    # -- the entries ---------------------------------------------------------------------
    def lookup(self, key: str, stamp: Stamp) -> Rendered | None:
        found = self._entries.get(key)
        if found is not None and found[0] == stamp:
            return found[1]
        return None

    def fill(self, key: str, stamp: Stamp, render: Callable[[], Rendered]) -> Rendered:
        """Render ``key`` once for this stamp, however many requests ask at the same time
        (runs in a worker thread; concurrent askers wait for the first)."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            found = self.lookup(key, stamp)
            if found is not None:
                return found
            try:
                rendered = render()
            except BaseException:  # e.g. an unknown notice: keep no lock for its key
                with self._lock:
                    if key not in self._entries:
                        self._key_locks.pop(key, None)
                raise
            with self._lock:
                if len(self._entries) >= self.max_entries and key not in self._entries:
                    self._entries.clear()
                    self._key_locks = {key: key_lock}
                self._entries[key] = (stamp, rendered)
            return rendered
