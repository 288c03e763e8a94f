"""Backups: SQLite through its online backup API (consistent while the service runs);
PostgreSQL through pg_dump / pg_restore. Back up the encryption keys too (settings), kept apart
from the backup: without them, passengers' personal data in a backup cannot be read."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from incident.errors import ConfigError

KEYS_REMINDER = (
    "remember: back up INCIDENT_SECRET_KEY and INCIDENT_DATA_KEYS too, kept apart "
    "from this file; without them encrypted data in it cannot be read"
)


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise ConfigError("an in-memory database cannot be backed up")
    return Path(parsed.database)


def _pg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def backup(url: str, target: Path) -> str:
    """Write a consistent copy of the database to ``target``; return what was done."""
    source = _sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        if not source.exists():
            raise ConfigError(f"{source}: no such database")
        partial = target.with_suffix(target.suffix + ".partial")
        with sqlite3.connect(source) as src, sqlite3.connect(partial) as dst:
            src.backup(dst)
        partial.replace(target)
        return f"backed up {source} to {target} (SQLite online backup)"
    if shutil.which("pg_dump") is None:
        raise ConfigError(
            f"pg_dump is not installed; run: pg_dump --format=custom --file={target} <database URL>"
        )
    subprocess.run(
        ["pg_dump", "--format=custom", f"--file={target}", _pg_dsn(url)],
        check=True,
        capture_output=True,
    )
    return f"backed up to {target} (pg_dump custom format)"


def restore(url: str, source: Path) -> str:
    """Replace the database with a backup (stop the service first)."""
    if not source.exists():
        raise ConfigError(f"{source}: no such backup")
    target = _sqlite_path(url)
    if target is not None:
        with sqlite3.connect(source) as check:
            if check.execute("PRAGMA integrity_check").fetchone() != ("ok",):
                raise ConfigError(f"{source}: not an intact SQLite database")
        target.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        return f"restored {target} from {source}"
    if shutil.which("pg_restore") is None:
        raise ConfigError(
            "pg_restore is not installed; run: pg_restore --clean --if-exists "
            f"--dbname=<database URL> {source}"
        )
    subprocess.run(
        ["pg_restore", "--clean", "--if-exists", f"--dbname={_pg_dsn(url)}", str(source)],
        check=True,
        capture_output=True,
    )
    return f"restored from {source} (pg_restore)"
