"""Backups: SQLite through its online backup API (consistent while the service runs);
PostgreSQL through pg_dump / pg_restore. Back up the encryption keys too (settings), kept apart
from the backup: without them, passengers' personal data in a backup cannot be read."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from incident.errors import ConfigError, IncidentError


class BackupError(IncidentError):
    """pg_dump or pg_restore failed (the message is theirs, without the password)."""


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


def _pg_dsn(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL without its password, and the environment that carries the password
    (``PGPASSWORD``): a password on the command line is visible to every user (ps)."""
    parsed = make_url(url).set(drivername="postgresql")
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    return parsed._replace(password=None).render_as_string(hide_password=False), env


def _run(tool: str, args: list[str], url: str, *, partial: Path | None = None) -> None:
    """Run pg_dump or pg_restore with the password in its environment; a failure raises one
    line with the tool's own message (never the password)."""
    dsn, secret_env = _pg_dsn(url)
    done = subprocess.run(
        [tool, *[a.replace("{dsn}", dsn) for a in args]],
        capture_output=True,
        text=True,
        env={**os.environ, **secret_env},
        check=False,
    )
    if done.returncode == 0:
        return
    if partial is not None:
        partial.unlink(missing_ok=True)
    message = " ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
    password = secret_env.get("PGPASSWORD")
    if password:
        message = message.replace(password, "***")
    raise BackupError(f"{tool} failed (exit {done.returncode}): {message or 'no message'}")


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
    _run("pg_dump", ["--format=custom", f"--file={target}", "{dsn}"], url, partial=target)
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
    _run("pg_restore", ["--clean", "--if-exists", "--dbname={dsn}", str(source)], url)
    return f"restored from {source} (pg_restore)"
