"""The canary check can fail (#9): planted numbers are found in every written form, in a
SQLite file and its -wal, in a log file, in error bodies; masked numbers are not; and the
session really logs every logger at DEBUG through the masking pipeline."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import httpx
import pytest
import structlog

from tests import canaries
from tests.canaries import (
    FOREIGN_PASSENGER,
    PASSENGER_NUMBERS,
    PASSENGERS_ONLY,
    STAFF_NUMBERS,
    CanaryHandler,
    Collector,
    find,
)

NUMBER = PASSENGER_NUMBERS[0]  # 13912345678


@pytest.mark.parametrize(
    "written",
    [
        NUMBER,
        f"+86{NUMBER}",
        f"86{NUMBER}",
        f"0086{NUMBER}",
        f"{NUMBER[:3]} {NUMBER[3:7]} {NUMBER[7:]}",
        f"+86 {NUMBER[:3]} {NUMBER[3:7]} {NUMBER[7:]}",
        f"{NUMBER[:3]}-{NUMBER[3:7]}-{NUMBER[7:]}",
        f"+86-{NUMBER[:3]}-{NUMBER[3:7]}-{NUMBER[7:]}",
        f"%2B86{NUMBER}",
        FOREIGN_PASSENGER,
        "+61 491 570 156",
        "0491 570 156",
    ],
)
def test_every_written_form_of_a_canary_is_found(written: str) -> None:
    assert find(f'{{"phone": "{written}", "n": 1}}') == [written]
    assert find(written.encode(), PASSENGERS_ONLY) == [written]


@pytest.mark.parametrize(
    "innocent",
    [
        f"{NUMBER[:3]}****{NUMBER[7:]}",  # masked for viewers
        "*********78",  # masked in logs
        f"2{NUMBER}",  # a longer number
        f"{NUMBER}9",
        "2026-11-22T21:42:10.709406Z",
    ],
)
def test_masked_numbers_and_other_digits_are_not_canaries(innocent: str) -> None:
    assert find(innocent) == []


def test_staff_numbers_count_everywhere_but_in_the_database_files() -> None:
    staff = STAFF_NUMBERS[0]
    assert find(f"to=+86{staff}") == [f"+86{staff}"]
    assert find(f"to=+86{staff}", PASSENGERS_ONLY) == []


def test_a_canary_planted_in_a_sqlite_file_or_its_wal_is_found(tmp_path: Path) -> None:
    folder = tmp_path / "planted"
    folder.mkdir()
    conn = sqlite3.connect(folder / "x.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES (?)", (f"+86 {NUMBER}",))
    conn.execute("INSERT INTO t VALUES (?)", (f"+86{STAFF_NUMBERS[0]}",))  # allowed there
    collector = Collector(current="planted")
    try:
        collector.check_files(folder)  # not yet checkpointed: the row is in the -wal only
    finally:
        conn.close()  # the last connection checkpoints the WAL into the file
    collector.check_files(folder)
    places = [f.where for f in collector.findings]
    assert any(p.endswith("x.db-wal") for p in places), places
    assert any(p.endswith("x.db") for p in places), places
    assert all(f.found == (f"+86 {NUMBER}",) for f in collector.findings)
    (tmp_path / "planted" / "x.db").unlink()  # keep the session's own sweep clean
    for extra in folder.glob("x.db-*"):
        extra.unlink()


def test_a_canary_planted_in_a_log_file_is_found_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "planted.txt"
    path.write_text(f"fine\nalso fine\nsms to +86{NUMBER} failed\n")
    collector = Collector(current="planted")
    assert collector.check_file_lines(path) == 1
    (finding,) = collector.findings
    assert finding.where == f"{path}:3" and finding.found == (f"+86{NUMBER}",)
    assert str(finding) == f"planted: +86{NUMBER} in {path}:3"


def test_a_canary_logged_without_the_masking_pipeline_is_caught(tmp_path: Path) -> None:
    collector = Collector(current="planted")
    handler = CanaryHandler(tmp_path / "planted.txt", collector)
    logger = logging.getLogger("tests.planted")
    logger.propagate = False  # not through the session's pipeline: no masking here
    logger.addHandler(handler)
    try:
        logger.warning("calling %s", NUMBER)
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.propagate = True
    assert [f.found for f in collector.findings] == [(NUMBER,)]
    assert NUMBER in (tmp_path / "planted.txt").read_text()
    (tmp_path / "planted.txt").unlink()


def test_error_bodies_and_public_surfaces_are_checked_but_authorised_views_are_not() -> None:
    collector = Collector(current="planted")

    def answer(path: str, kind: str, body: str, status: int = 200) -> httpx.Response:
        request = httpx.Request("GET", f"http://testserver{path}")
        return httpx.Response(status, headers={"content-type": kind}, text=body, request=request)

    leak = json.dumps({"detail": f"bad phone {NUMBER}"})
    collector.check_response(answer("/api/x", "application/problem+json", leak, 422))
    collector.check_response(answer("/notices.atom", "application/atom+xml", leak))
    collector.check_response(answer("/api/incidents/i/timeline", "application/json", leak))
    collector.check_response(answer("/metrics", "text/plain", leak))
    collector.check_response(answer("/api/passenger-groups/g/passengers", "application/json", leak))
    where = [f.where.split(" -> ")[0] for f in collector.findings]
    assert where == [
        "GET /api/x",
        "GET /notices.atom",
        "GET /api/incidents/i/timeline",
        "GET /metrics",
    ]


def test_the_session_logs_every_logger_at_debug_through_the_masking_pipeline() -> None:
    root = logging.getLogger()
    (handler,) = [h for h in root.handlers if isinstance(h, CanaryHandler)]
    assert root.level == logging.DEBUG
    assert logging.getLogger("apprise").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("uvicorn.access").getEffectiveLevel() == logging.DEBUG
    structlog.get_logger("tests.canaries").debug("canary_probe", phone=f"+86 {NUMBER}")
    logging.getLogger("apprise").debug("canary probe to %s", f"+86{NUMBER}")
    handler.flush()
    tail = Path(handler.baseFilename).read_text(encoding="utf-8").splitlines()[-50:]
    probes = [line for line in tail if "canary" in line and "probe" in line]
    assert len(probes) == 2, tail
    assert all(find(line) == [] and "*78" in line for line in probes), probes
    assert all(json.loads(line)["level"] == "debug" for line in probes)


def test_the_detectors_know_every_canary() -> None:
    assert len(canaries.ALL.cores) == len(PASSENGER_NUMBERS) + 1 + len(STAFF_NUMBERS)
