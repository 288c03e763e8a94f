"""Real peers on loopback for channel tests: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
    status: int = 0  # what the receiver answered (0 until it has)


@dataclass
class HttpReceiver:
    """Answers by path: ``/ok`` 200, ``/bad`` 400, ``/flaky`` 503 the first ``flaky`` times
    per idempotency key then 200, ``/hang`` waits ``hang_seconds``, ``/slow`` waits 100 ms.
    Fault modes (tests/faults): ``/busy`` 429 with ``Retry-After: retry_after`` the first
    ``flaky`` times per key then 200, ``/stall`` waits ``hang_seconds`` the first ``flaky``
    times per key then 200, ``/down`` 503 always, ``/missing`` 404. ``port`` may be chosen
    (a receiver started late on a port that refused connections until then)."""

    flaky: int = 2
    hang_seconds: float = 3.0
    retry_after: int = 1
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

    def accepted(self) -> Counter[str]:
        """Requests answered 2xx, per idempotency key."""
        with self._lock:
            return Counter(
                r.headers.get("idempotency-key", "") for r in self.received if 200 <= r.status < 300
            )

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
                request = Received(
                    path, headers, body, time.monotonic(), self.path.partition("?")[2]
                )
                with receiver._lock:
                    receiver.received.append(request)
                    key = headers.get("idempotency-key", "")
                    receiver._seen[key] = receiver._seen.get(key, 0) + 1
                    seen = receiver._seen[key]
                status = 200
                headers: dict[str, str] = {}
                if path.startswith("/bad"):
                    status = 400
                elif path.startswith("/flaky") and seen <= receiver.flaky:
                    status = 503
                elif path.startswith("/hang"):
                    time.sleep(receiver.hang_seconds)
                elif path.startswith("/slow"):
                    time.sleep(0.1)
                elif path.startswith("/busy") and seen <= receiver.flaky:
                    status, headers = 429, {"Retry-After": str(receiver.retry_after)}
                elif path.startswith("/stall") and seen <= receiver.flaky:
                    time.sleep(receiver.hang_seconds)
                elif path.startswith("/down"):
                    status = 503
                elif path.startswith("/missing"):
                    status = 404
                request.status = status
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops bursts of connections (SYN retried at 1 s)


@contextmanager
def http_receiver(**options: Any) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(**options)
    server = _Server(("127.0.0.1", receiver.port), receiver.handler())
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


class TcpProxy:
    """A loopback TCP proxy in front of a server (PostgreSQL): ``cut()`` closes the listener
    and every connection through it (the server is unreachable: refused), ``restore()``
    listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
            listener.close()
        with self._lock:
            doomed, self._open = self._open, set()
        for conn in doomed:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(source)
            source.close()


@contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy((host, port))
    proxy.restore()
    try:
        yield proxy
    finally:
        proxy.cut()
