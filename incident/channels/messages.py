"""What the channels and the sender pass around: a message, its attempts and outcome, how an
answer is sorted (transient or permanent), and the Channel protocol a kind of address
implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import quote

from incident.channel_limits import Rate


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
        return fill(self.address, self.values, quoted=True)


def fill(text: str, values: dict[str, str] | None, *, quoted: bool = False) -> str:
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


def classify_status(status: int, retry_after: float | None) -> Exception | None:
    if 200 <= status < 300:
        return None
    if status in (408, 425, 429) or status >= 500:
        return Transient(f"HTTP {status}", status=status, retry_after=retry_after)
    return Permanent(f"HTTP {status}", status=status)


class Channel(Protocol):
    """One kind of address (by URL scheme): makes one attempt at sending a message.

    Returns None when the receiver took it, else a :class:`Transient` or :class:`Permanent`
    error saying why not; it may also raise ``TimeoutError``, ``OSError`` or
    ``aiohttp.ClientError`` (all transient)."""

    async def attempt(self, message: Message) -> Exception | None: ...
