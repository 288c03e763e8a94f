"""Per-client request budgets: token buckets, 429 problem+json with ``Retry-After`` past them.

Who is counted: an API caller by (a digest of) their bearer token, a console user by their
signed session, anyone else by address. Each budget is a number of requests per minute; a
bucket holds one minute's worth and refills continuously, so a burst of a whole minute's
budget is allowed and then the steady rate.

==========  =========================================  =========================================
budget      requests                                    counted per
==========  =========================================  =========================================
``api``     everything not listed below                 token, console user, else address
``login``   ``POST /login`` (on top of ``api``)         address and user name
``ack``     ``POST /ack/{token}`` (the link's confirm)  address
``public``  public notices and feeds, ``GET /ack``,     address
            ``/openapi.json``, ``/demo/inbox``,
            ``POST /inbound/{channel}``
==========  =========================================  =========================================

``/healthz``, ``/readyz``, ``/metrics`` and ``/static/`` are never limited. An answer of 401 to
a request that carried credentials is counted against its address's ``api`` budget, and such
requests wait while that budget is spent: made-up tokens do not each get a fresh budget.

Time comes from the app's clock (tests move a frozen one). Buckets live in memory, per
process: with several instances each keeps its own, so the limit is per instance.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from incident.clock import Clock
from incident.logs import get_logger
from incident.settings import Settings
from incident.web.console.session import USER_KEY
from incident.web.problems import problem

log = get_logger(__name__)

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
PUBLIC_PREFIXES = ("/notices", "/gtfs-rt/", "/ack/")
PUBLIC_PATHS = frozenset({"/openapi.json", "/demo/inbox"})
MAX_KEYS = 50_000
Key = tuple[str, str]  # (budget, who)


@dataclass
class _Bucket:
    tokens: float
    at: float


class Budgets:
    """Token buckets by (budget, who), refilled from ``clock``; at most ``MAX_KEYS`` kept
    (the least recently used go first: a forgotten bucket is a full one)."""

    def __init__(self, clock: Clock, per_minute: dict[str, int]) -> None:
        self._clock = clock
        self._per_minute = per_minute
        self._buckets: OrderedDict[Key, _Bucket] = OrderedDict()

    def limits(self, key: Key) -> bool:
        return self._per_minute.get(key[0], 0) > 0

    def _bucket(self, key: Key, now: float) -> _Bucket:
        rate = self._per_minute[key[0]]
        found = self._buckets.get(key)
        if found is None:
            found = _Bucket(float(rate), now)
            self._buckets[key] = found
            while len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - found.at)  # a clock set back refills nothing
            found.tokens = min(float(rate), found.tokens + elapsed * rate / 60.0)
            found.at = now
        return found

    def wait(self, keys: list[Key]) -> float:
        """Seconds until each of ``keys`` holds a whole token (0 when all do now)."""
        now = self._clock.now().timestamp()
        waits = [0.0]
        for key in keys:
            if self.limits(key):
                bucket = self._bucket(key, now)
                if bucket.tokens < 1.0:
                    waits.append((1.0 - bucket.tokens) * 60.0 / self._per_minute[key[0]])
        return max(waits)

    def spend(self, keys: list[Key]) -> None:
        """Take a token from each of ``keys``; after ``wait`` said 0, or for a cost known
        only after the answer (a refused token), which may leave a bucket in debt."""
        now = self._clock.now().timestamp()
        for key in keys:
            if self.limits(key):
                bucket = self._bucket(key, now)
                bucket.tokens = max(bucket.tokens - 1.0, -float(self._per_minute[key[0]]))


class RateLimit:
    """Pure ASGI middleware; sits inside the session middleware so that it sees who is
    signed in to the console."""

    def __init__(self, app: ASGIApp, *, settings: Settings, clock: Clock) -> None:
        self.app = app
        self.enabled = settings.rate_limit_per_minute > 0
        self.max_body = settings.max_body_bytes
        self.budgets = Budgets(
            clock,
            {
                "api": settings.rate_limit_per_minute,
                "login": settings.rate_limit_login_per_minute,
                "ack": settings.rate_limit_ack_per_minute,
                "public": settings.rate_limit_public_per_minute,
            },
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not self.enabled
            or path in EXEMPT
            or path.startswith("/static/")
        ):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        client = scope.get("client")
        address = f"addr:{client[0] if client else 'unknown'}"
        caller = _caller(scope) or address
        checked: list[Key] = []  # must hold a token, not charged
        if method == "POST" and path == "/login":
            name, receive = await _login_name(receive, self.max_body)
            keys: list[Key] = [("login", f"{address}|{name}"), ("api", address)]
        elif method == "POST" and path.startswith("/ack/"):
            keys = [("ack", address)]
        elif (method in ("GET", "HEAD") and _public(path)) or (
            method == "POST" and path.startswith("/inbound/")
        ):
            keys = [("public", address)]
        else:
            keys = [("api", caller)]
            if caller != address:
                checked = [("api", address)]
        seconds = self.budgets.wait([*keys, *checked])
        if seconds == 0.0:
            self.budgets.spend(keys)
        else:
            retry = max(1, math.ceil(seconds - 1e-6))  # no extra second from rounding
            log.warning("rate_limited", budget=keys[0][0], path=path, retry_after_s=retry)
            answer = problem(
                429,
                f"too many requests; try again in {retry} s",
                slug="rate-limited",
            )
            answer.headers["Retry-After"] = str(retry)
            await answer(scope, receive, send)
            return
        if not checked:
            await self.app(scope, receive, send)
            return

        async def send_counting_refusals(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.budgets.spend(checked)
            await send(message)

        await self.app(scope, receive, send_counting_refusals)


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _caller(scope: Scope) -> str | None:
    """The bearer token's digest, or the console session's user; None for anyone else."""
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:24]
    session = scope.get("session")
    user = session.get(USER_KEY) if isinstance(session, dict) else None
    return f"user:{user}" if isinstance(user, str) else None


async def _login_name(receive: Receive, limit: int) -> tuple[str, Receive]:
    """The user name a login form carries, and a ``receive`` that replays the form to the
    handler (which applies its own size limit: past ``limit`` this stops looking)."""
    held: list[Message] = []
    body = bytearray()
    while True:
        message = await receive()
        held.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False) or len(body) > limit:
            break
    try:
        form = parse_qs(body.decode("utf-8"), max_num_fields=400)
    except (UnicodeDecodeError, ValueError):
        form = {}
    name = (form.get("name") or [""])[0].strip().lower()[:100]

    async def replay() -> Message:
        return held.pop(0) if held else await receive()

    return name, replay
