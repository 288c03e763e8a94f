"""A loopback SMS gateway for the passenger tests: receives apprise-style JSON webhooks.

Every POST is recorded with its ``to`` number, its text and its ``Idempotency-Key``. Numbers in
``down`` are answered 503 until removed; numbers in ``flaky`` get 503 the first ``flaky_times``
times, then 200.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Sms:
    to: str
    message: str
    title: str
    key: str
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Gateway:
    port: int = 0
    received: list[Sms] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    flaky: set[str] = field(default_factory=set)
    flaky_times: int = 1
    _tries: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def template(self, path: str = "/sms") -> str:
        return f"json://127.0.0.1:{self.port}{path}?:to={{phone}}"

    def to(self, number: str) -> list[Sms]:
        with self._lock:
            return [s for s in self.received if s.to == number]

    def numbers(self) -> list[str]:
        with self._lock:
            return [s.to for s in self.received]

    def answer(self, sms: Sms) -> int:
        with self._lock:
            self.received.append(sms)
            self._tries[sms.to] = self._tries.get(sms.to, 0) + 1
            if sms.to in self.down:
                return 503
            if sms.to in self.flaky and self._tries[sms.to] <= self.flaky_times:
                return 503
            return 200


@contextmanager
def sms_gateway() -> Iterator[Gateway]:
    gateway = Gateway()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            sms = Sms(
                to=str(body.get("to", "")),
                message=str(body.get("message", "")),
                title=str(body.get("title", "")),
                key=self.headers.get("Idempotency-Key", ""),
            )
            self.send_response(gateway.answer(sms))
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    gateway.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()
