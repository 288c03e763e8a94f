"""Fresh migrated databases on demand: a stateful property test wants one per example (a
file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from incident.db import Database
from tests.conftest import PG_URL, _admin_url


@pytest.fixture
def fresh_database(template_db: str, tmp_path: Path) -> Iterator[Callable[[], Database]]:
    """``fresh_database()``: a new, migrated, empty database (all dropped at the end)."""
    made: list[tuple[Database, str | None]] = []
    admin = create_engine(_admin_url(PG_URL), isolation_level="AUTOCOMMIT") if PG_URL else None

    def make() -> Database:
        if admin is not None:
            name = f"incident_p_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
            url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
            made.append((Database.from_url(url), name))
        else:
            path = tmp_path / f"{uuid.uuid4().hex[:10]}.db"
            shutil.copyfile(template_db, path)
            made.append((Database.from_url(f"sqlite:///{path}"), None))
        return made[-1][0]

    yield make
    for database, name in made:
        database.dispose()
        if admin is not None and name is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    if admin is not None:
        admin.dispose()
