"""Start-up waits for a database that is still starting, instead of exiting at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from incident.db import Database, wait_until_reachable


def test_start_up_waits_with_backoff_until_the_database_answers(tmp_path: Path) -> None:
    path = tmp_path / "incident.db"
    path.mkdir()  # nothing can open it yet
    db = Database.from_url(f"sqlite:///{path}")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            path.rmdir()  # the database comes up

    try:
        assert wait_until_reachable(db, timeout=60, sleep=sleep) == 3
    finally:
        db.dispose()
    assert waits == [0.5, 1.0, 2.0]


def test_start_up_gives_up_after_the_timeout_with_the_error(tmp_path: Path) -> None:
    path = tmp_path / "incident.db"
    path.mkdir()
    db = Database.from_url(f"sqlite:///{path}")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    try:
        with pytest.raises(OperationalError):
            wait_until_reachable(db, timeout=10, sleep=sleep, monotonic=lambda: now[0])
    finally:
        db.dispose()
    assert now[0] == pytest.approx(10.0)
