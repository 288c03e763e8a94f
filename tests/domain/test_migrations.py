"""The schema comes from the migrations, and they match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from incident import migrate
from incident.db import Database
from incident.models import Base


def test_models_and_migrations_agree(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_the_test_database_is_at_the_head_revision(db: Database) -> None:
    assert migrate.is_current(db.engine)
    assert migrate.current_revision(db.engine) == migrate.head_revision()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    if db.engine.dialect.name != "sqlite":
        return
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
