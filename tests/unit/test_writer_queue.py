"""SQLite has one writer: threads of one process queue for it in order and are woken at once,
instead of polling in SQLite's busy handler (which can starve the embedded worker)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from incident.db import Database


def test_a_waiting_writer_starts_as_soon_as_the_lock_is_released(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'x.db'}")
    held, released_at, started_at = threading.Event(), [0.0], [0.0]

    def holder() -> None:
        with db.transaction() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            held.set()
            time.sleep(0.45)
            released_at[0] = time.monotonic()

    def waiter() -> None:
        held.wait(5)
        with db.transaction() as session:
            started_at[0] = time.monotonic()
            session.execute(text("INSERT INTO t VALUES (1)"))

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        db.dispose()
    gap = started_at[0] - released_at[0]
    assert 0 <= gap < 0.03, gap  # SQLite's busy handler polls every 100 ms: about 80 ms late here


def test_a_writer_waits_no_longer_than_the_lock_wait(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'x.db'}", lock_wait_ms=200)
    inside, leave = threading.Event(), threading.Event()

    def holder() -> None:
        with db.transaction():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        inside.wait(5)
        started = time.monotonic()
        with pytest.raises(PoolTimeout), db.transaction():
            pass
        assert 0.15 < time.monotonic() - started < 2
    finally:
        leave.set()
        thread.join(5)
        db.dispose()
