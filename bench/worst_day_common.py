"""Shared plumbing of the worst-day benchmarks (#15): worst_day_surge.py, worst_day_incidents.py
and gateway_rate.py.

* :class:`Gateway`: a loopback HTTP receiver in the bench process (stdlib threads, HTTP/1.1
  keep-alive, one thread per connection). It stands for the SMS gateway (and, in
  gateway_rate.py, for the pager webhook on the same host). It answers every POST with 200
  after the delay configured for its path prefix, and records for each request when it
  arrived, when it was answered, its path, its ``Idempotency-Key`` header and its JSON
  ``title``. Counting by ``Idempotency-Key`` tells whether each passenger got exactly one
  message.
* The service is the real one: ``incident serve`` (embedded worker) from bench/_server.py, on
  a SQLite file in a temp dir; the bench talks to it over HTTP only (declarations, passenger
  groups, manifest uploads, broadcasts) and reads the SQLite file (read-only queries) to see
  when pages were delivered.

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from sqlalchemy import text

HOST = "127.0.0.1"

TEXTS = {
    "zh": "受设备故障影响，G1234次列车预计晚点90分钟。您可免费退票或改签，详询12306。",
    "en": "G1234 is about 90 minutes late (equipment failure). Free refunds or changes: 12306.",
}


# -- the loopback receiver -----------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    arrived: float  # epoch seconds, when the request was read
    answered: float  # epoch seconds, when the answer was written
    path: str
    key: str | None  # the Idempotency-Key header
    title: str | None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp's pool expects
    timeout = 120  # an idle keep-alive connection's thread ends after this

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        arrived = time.time()
        gateway: Gateway = self.server.gateway  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        title = None
        try:
            found = json.loads(body)
            if isinstance(found, dict) and found.get("title") is not None:
                title = str(found["title"])
        except ValueError:
            pass
        delay = gateway.delay_for(path)
        if delay > 0:
            time.sleep(delay)
        answer = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        gateway.record(Hit(arrived, time.time(), path, self.headers.get("Idempotency-Key"), title))

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # hundreds of connections open at once (the default is 5)


class Gateway:
    """A loopback receiver; ``delays`` maps a path prefix to seconds before answering."""

    def __init__(self, delays: dict[str, float] | None = None) -> None:
        self.delays = dict(delays or {})
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self._server = _Server((HOST, 0), _Handler)
        self._server.gateway = self  # type: ignore[attr-defined]
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    def delay_for(self, path: str) -> float:
        best = ""
        for prefix in self.delays:
            if path.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.delays.get(best, 0.0)

    def record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)

    def count(self, key_prefix: str) -> tuple[int, int]:
        """(requests, distinct keys) whose Idempotency-Key starts with key_prefix."""
        with self._lock:
            keys = [h.key for h in self.hits if h.key and h.key.startswith(key_prefix)]
        return len(keys), len(set(keys))

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()


def max_in_window(times: list[float], window: float = 1.0) -> tuple[int, float | None]:
    """The most events in any sliding window of ``window`` seconds [t, t + window), and
    where that window starts."""
    t = sorted(times)
    best, at, i = 0, None, 0
    for j, tj in enumerate(t):
        while tj - t[i] >= window:
            i += 1
        if j - i + 1 > best:
            best, at = j - i + 1, t[i]
    return best, at


def max_concurrent(hits: list[Hit]) -> int:
    """The most requests the receiver held at once (arrived, not yet answered)."""
    edges = sorted([(h.arrived, 1) for h in hits] + [(h.answered, -1) for h in hits])
    now = best = 0
    for _, d in edges:
        now += d
        best = max(best, now)
    return best


def exactly_once(hits: list[Hit], key_prefix: str, expected: int) -> dict[str, Any]:
    keys = [h.key for h in hits if h.key and h.key.startswith(key_prefix)]
    distinct = len(set(keys))
    return {
        "received": len(keys),
        "distinct_keys": distinct,
        "duplicates": len(keys) - distinct,
        "expected": expected,
        "ok": len(keys) == distinct == expected,
    }


# -- the service over HTTP ---------------------------------------------------------------------
def declare(
    http: httpx.Client, playbook: str, severity: str, title: str, facts: dict[str, Any]
) -> dict[str, Any]:
    """POST /api/incidents; returns the incident id and the client's clock around it."""
    sent = time.time()
    r = http.post(
        "/api/incidents",
        json={"playbook": playbook, "severity": severity, "title": title, "facts": facts},
    )
    got = time.time()
    if r.status_code != 201:
        raise RuntimeError(f"declaration answered {r.status_code}: {r.text[:300]}")
    return {"id": r.json()["id"], "sent": sent, "answered_201": got, "title": title}


def stranding_facts(n: int) -> dict[str, Any]:
    """passenger-stranding facts whose timed conditions stay false for the whole run (no
    passenger_message of the playbook's own)."""
    stopped = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return {"station": "Langfang", "passengers_stranded": max(1, n), "stopped_since": stopped}


def delay_facts(i: int) -> dict[str, Any]:
    """mass-delay facts that page at declaration (`activate`) and message no passenger
    (expected delay under 60 min) and do not escalate (severity III, under 120 min)."""
    return {"line": "G", "trains_affected": 10 + i, "expected_delay_min": 45}


def manifest_csv(n: int, prefix: str) -> bytes:
    """n passengers, each with their own mobile number ``1<prefix><8 digits>``."""
    lines = ["姓名,手机号,座位号,车厢,语言,票号"]
    for i in range(n):
        lang = "en" if i % 5 == 0 else "zh"
        lines.append(
            f"旅客{i},1{prefix}{i:08d},{i % 100:02d}A,{i % 16 + 1:02d},{lang},T{prefix}-{i}"
        )
    return ("\n".join(lines) + "\n").encode()


def group_with_manifest(http: httpx.Client, incident_id: str, n: int, prefix: str) -> str:
    """Open a passenger group and upload a manifest of n passengers (the API's own path)."""
    r = http.post(
        f"/api/incidents/{incident_id}/passenger-groups",
        json={"train": f"G{prefix}", "station": "Langfang", "count": n},
    )
    if r.status_code != 201:
        raise RuntimeError(f"open group answered {r.status_code}: {r.text[:300]}")
    group = str(r.json()["id"])
    r = http.post(
        f"/api/passenger-groups/{group}/passengers",
        content=manifest_csv(n, prefix),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    report = r.json() if r.headers.get("content-type", "").startswith("application/") else {}
    if r.status_code != 201 or report.get("stored") != n:
        raise RuntimeError(f"manifest upload answered {r.status_code}: {r.text[:300]}")
    return group


def start_broadcast(http: httpx.Client, group_id: str) -> dict[str, Any]:
    sent = time.time()
    r = http.post(f"/api/passenger-groups/{group_id}/broadcasts", json={"texts": TEXTS})
    got = time.time()
    if r.status_code != 202:
        raise RuntimeError(f"broadcast answered {r.status_code}: {r.text[:300]}")
    return {"id": str(r.json()["id"]), "sent": sent, "answered_202": got}


# -- the database (read-only) ------------------------------------------------------------------
def parse_db_time(value: Any) -> datetime:
    """Times as the app stores them in SQLite: naive UTC text; return aware UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def epoch(value: Any) -> float:
    return parse_db_time(value).timestamp()


def first_pages_delivered(engine: Any, incident_ids: list[str]) -> dict[str, float]:
    """Epoch of the first page delivered, per incident that has one."""
    if not incident_ids:
        return {}
    marks = ",".join(f":i{n}" for n in range(len(incident_ids)))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT incident_id, min(finished_at) AS first FROM deliveries"
                " WHERE purpose = 'page' AND status = 'delivered'"
                f" AND incident_id IN ({marks}) GROUP BY incident_id"
            ),
            {f"i{n}": i for n, i in enumerate(incident_ids)},
        ).all()
    return {r.incident_id: epoch(r.first) for r in rows if r.first is not None}


def broadcast_progress(engine: Any, broadcast_id: str) -> tuple[int, int, int]:
    """(recipients, finished deliveries, delivered) of a broadcast."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) AS n,"
                " coalesce(sum(d.status IN ('delivered', 'failed')), 0) AS done,"
                " coalesce(sum(d.status = 'delivered'), 0) AS ok"
                " FROM broadcast_recipients r JOIN deliveries d ON d.id = r.delivery_id"
                " WHERE r.broadcast_id = :b"
            ),
            {"b": broadcast_id},
        ).one()
    return int(row.n), int(row.done), int(row.ok)


def broadcast_attempts(engine: Any, broadcast_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(a.id) FROM broadcast_recipients r"
                    " JOIN delivery_attempts a ON a.delivery_id = r.delivery_id"
                    " WHERE r.broadcast_id = :b"
                ),
                {"b": broadcast_id},
            ).scalar_one()
        )


def incident_pages(engine: Any, declared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per declared incident: its declared_at, its page deliveries by status, and the first
    and last delivered page after the declaration (ms)."""
    out = []
    with engine.connect() as conn:
        for d in declared:
            declared_at = epoch(
                conn.execute(
                    text("SELECT declared_at FROM incidents WHERE id = :i"), {"i": d["id"]}
                ).scalar_one()
            )
            rows = conn.execute(
                text(
                    "SELECT status, finished_at FROM deliveries"
                    " WHERE purpose = 'page' AND incident_id = :i"
                ),
                {"i": d["id"]},
            ).all()
            statuses: dict[str, int] = {}
            done = []
            for r in rows:
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == "delivered" and r.finished_at is not None:
                    done.append(epoch(r.finished_at))
            first = min(done) if done else None
            last = max(done) if done else None
            out.append(
                {
                    "incident": d["id"],
                    "title": d.get("title"),
                    "declared_at": datetime.fromtimestamp(declared_at, UTC).isoformat(),
                    "declared_at_minus_sent_ms": round((declared_at - d["sent"]) * 1000, 1),
                    "answered_201_minus_declared_at_ms": round(
                        (d["answered_201"] - declared_at) * 1000, 1
                    ),
                    "pages": len(rows),
                    "pages_by_status": statuses,
                    "first_page_ms": round((first - declared_at) * 1000, 1) if first else None,
                    "first_page_after_201_ms": round((first - d["answered_201"]) * 1000, 1)
                    if first
                    else None,
                    "last_page_ms": round((last - declared_at) * 1000, 1) if last else None,
                    "first_page_seen_committed_after_201_ms": round(
                        (d["seen"] - d["answered_201"]) * 1000, 1
                    )
                    if d.get("seen")
                    else None,
                }
            )
    return out


def load_now() -> str:
    """`uptime`'s load averages (1, 5, 15 min)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"
