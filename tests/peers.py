"""Real peers on loopback for channel tests: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    query: str = ""


@dataclass
class HttpReceiver:
    """Answers by path: ``/ok`` 200, ``/bad`` 400, ``/flaky`` 503 the first ``flaky`` times
    per idempotency key then 200, ``/hang`` waits ``hang_seconds``, ``/slow`` waits 100 ms."""

    flaky: int = 2
    hang_seconds: float = 3.0
    received: list[Received] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str, scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def keys(self, path_prefix: str = "") -> list[str]:
        with self._lock:
            return [
                r.headers.get("idempotency-key", "")
                for r in self.received
                if r.path.startswith(path_prefix) and r.path != "/hang"
            ]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                path = self.path.split("?")[0]
                try:
                    body = json.loads(raw) if raw else {}
                except json.JSONDecodeError:
                    body = {"raw": raw.decode(errors="replace")}
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(
                        Received(path, headers, body, time.monotonic(), self.path.partition("?")[2])
                    )
                    key = headers.get("idempotency-key", "")
                    receiver._seen[key] = receiver._seen.get(key, 0) + 1
                    seen = receiver._seen[key]
                status = 200
                if path.startswith("/bad"):
                    status = 400
                elif path.startswith("/flaky") and seen <= receiver.flaky:
                    status = 503
                elif path.startswith("/hang"):
                    time.sleep(receiver.hang_seconds)
                elif path.startswith("/slow"):
                    time.sleep(0.1)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


@contextmanager
def http_receiver(**options: Any) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(**options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def smtp_receiver() -> Iterator[tuple[int, list[Message]]]:
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox.messages
    finally:
        controller.stop()
