"""Statement parameters (contacts, personal data) never reach an error message or a log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from incident.db import make_engine

NUMBER = "13912345678"  # a canary (tests/canaries.py)


def test_database_errors_and_echo_hide_the_parameters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", echo=True)
    try:
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"), engine.connect() as conn:
            conn.execute(text("CREATE TABLE t (phone TEXT)"))
            conn.execute(text("INSERT INTO t VALUES (:p)"), {"p": NUMBER})
            with pytest.raises(OperationalError) as raised:
                conn.execute(text("SELECT * FROM missing WHERE x = :p"), {"p": NUMBER})
    finally:
        engine.dispose()
    assert "INSERT INTO t" in caplog.text  # the statements were logged ...
    assert NUMBER not in caplog.text  # ... without their parameters
    assert NUMBER not in str(raised.value)
