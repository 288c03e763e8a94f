"""Canary phone numbers and the detector that looks for them everywhere they must not be (#9).

The tests that handle personal data use these numbers (passenger manifests, inquiries, roster
contacts, drill test numbers). The suite runs with every logger at DEBUG through the production
logging pipeline into one session log, and :class:`Collector` looks for the numbers, written in
any usual form (``13912345678``, ``+8613912345678``, ``8613912345678``, ``139 1234 5678``,
``+86 139-1234-5678``, ``%2B8613912345678``), in:

- every log line (structlog and the standard library, ours and foreign: apprise, uvicorn,
  sqlalchemy warnings), and the output pytest captured of each test;
- error bodies (``application/problem+json``), ``/metrics``, ``/readyz``, timelines, situation
  reports and summaries, and the public surfaces (``/notices``, Atom, CAP, GTFS-RT);
- the timeline and job rows each test's database ends with;
- the files a test leaves in its ``tmp_path``: SQLite files with their ``-wal`` (passenger
  numbers only: roster contacts are stored in clear by design) and the logs of processes it ran.

A finding fails the test it was made in (at teardown) and the session (``pytest_sessionfinish``
re-reads the whole session log, then names every place a number was found).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

# Passenger numbers: never in clear anywhere, the database files included.
PASSENGER_NUMBERS = (
    "13912345678",
    "13987654321",
    "13987654322",
    "13987654323",
    "13987654324",
    "13812340001",
    "13812340002",
    "13812340003",
    "13812340004",
    "13812340005",
    "13812340006",
    "13812349999",
    "13812345678",
    "13800000000",
)
FOREIGN_PASSENGER = "+61491570156"  # ACMA's range for fiction: never a real subscriber
# Staff numbers (roster contacts, drill test phones): stored in clear in the roster, so allowed
# in the database file, but never in logs, error bodies, timelines or public surfaces.
STAFF_NUMBERS = ("13700001111", "13900000001", "13900000002")

_SEPARATOR = rb"(?:[ \-]|%20)?"
# A country code (+86, 0086, %2B86, 86, +61 ...) or a trunk 0 may precede the number; any
# other digit before or after makes it a different, longer number.
_PREFIX = rb"(?<!\d)(?:(?:\+|%2B|%2b|00)?(?:86|61)(?:[ \-]|%20)?|0)?"


def _core(number: str) -> str:
    """The national significant number: what every written form of the number contains."""
    return number.removeprefix("+61").removeprefix("+86")


@dataclass(frozen=True)
class Detector:
    """Finds any of ``numbers`` however written. A fast pass looks for the bare digits in the
    text with separators removed; only a hit pays for the regular expression."""

    numbers: tuple[str, ...]

    @functools.cached_property
    def cores(self) -> tuple[bytes, ...]:
        return tuple(_core(n).encode() for n in self.numbers)

    @functools.cached_property
    def pattern(self) -> re.Pattern[bytes]:
        alternatives = [_SEPARATOR.join(re.escape(bytes([d])) for d in c) for c in self.cores]
        return re.compile(_PREFIX + rb"(?:" + rb"|".join(alternatives) + rb")(?!\d)")

    def find(self, data: bytes) -> list[str]:
        squeezed = data.replace(b"%20", b"").translate(None, b" -")
        if not any(core in squeezed for core in self.cores):
            return []
        return sorted({m.group(0).decode("utf-8", "replace") for m in self.pattern.finditer(data)})


ALL = Detector((*PASSENGER_NUMBERS, FOREIGN_PASSENGER, *STAFF_NUMBERS))
PASSENGERS_ONLY = Detector((*PASSENGER_NUMBERS, FOREIGN_PASSENGER))

# Responses that no role's permission lets carry a number.
_SURFACES = re.compile(
    r"^/(?:metrics|readyz|healthz|notices|gtfs-rt/|demo/inbox)"
    r"|/(?:timeline|sitrep|summary|report)(?:$|[./?])"
)


def find(data: bytes | str, detector: Detector = ALL) -> list[str]:
    """The canary numbers in ``data``, as written there (sorted, each once)."""
    return detector.find(data.encode("utf-8", "replace") if isinstance(data, str) else data)


@dataclass(frozen=True)
class Finding:
    test: str
    where: str
    found: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.test}: {', '.join(self.found)} in {self.where}"


@dataclass
class Collector:
    """Records where canaries were found, per test."""

    findings: list[Finding] = field(default_factory=list)
    current: str = "(session)"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, data: bytes | str, where: str, detector: Detector = ALL) -> list[str]:
        found = find(data, detector)
        if found:
            with self._lock:
                self.findings.append(Finding(self.current, where, tuple(found)))
        return found

    def of(self, test: str) -> list[Finding]:
        with self._lock:
            return [f for f in self.findings if f.test == test]

    def check_response(self, response: httpx.Response) -> None:
        """Error bodies, metrics, timelines and public surfaces carry no number."""
        kind = response.headers.get("content-type", "")
        path = response.request.url.path
        if "problem+json" in kind or _SURFACES.search(path):
            where = f"{response.request.method} {path} -> {response.status_code} body"
            self.check(response.content, where)

    def check_files(self, folder: Path) -> None:
        """SQLite files (and their -wal) and the logs of processes a test ran."""
        for path in sorted(folder.rglob("*")):
            name = path.name
            if not path.is_file():
                continue
            if name.endswith((".db", ".db-wal", ".sqlite", ".sqlite-wal")):
                self.check(path.read_bytes(), f"database file {path}", PASSENGERS_ONLY)
            elif name.endswith(".log"):
                self.check(path.read_bytes(), f"log file {path}")

    def check_file_lines(self, path: Path) -> int:
        """Scan a log file line by line; return how many lines had a canary."""
        hits = 0
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if self.check(line, f"{path}:{number}"):
                    hits += 1
        return hits


# Rows that carry no personal data by design (ids and counts only), whatever the role.
_ROWS = (
    ("timeline_events", "SELECT CAST(data AS TEXT), actor FROM timeline_events"),
    ("jobs", "SELECT CAST(payload AS TEXT), last_error FROM jobs"),
    ("delivery_attempts", "SELECT error FROM delivery_attempts"),
)


def check_database(collector: Collector, url: str) -> None:
    """Scan the rows of ``url`` that must never hold a number (timeline, jobs, attempts)."""
    sqlite = make_url(url).get_backend_name() == "sqlite"
    connect_args: dict[str, Any] = (
        {"timeout": 2} if sqlite else {"options": "-c statement_timeout=5000"}
    )
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            for table, query in _ROWS:
                rows = conn.exec_driver_sql(query).all()
                text = "\n".join(str(cell) for row in rows for cell in row if cell is not None)
                collector.check(text, f"{table} rows")
    except DBAPIError:  # the test dropped the schema, or left the database locked
        pass
    finally:
        engine.dispose()


class CanaryHandler(logging.FileHandler):
    """Writes every record to a file through the production formatter and scans each line."""

    def __init__(self, path: Path, collector: Collector) -> None:
        super().__init__(path, mode="w", encoding="utf-8", delay=False)
        self.collector = collector

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a broken record must not hide the others
            self.handleError(record)
            return
        self.collector.check(line, f"log line from {record.name}")
        self.stream.write(line + self.terminator)
