"""Alembic, driven from code: upgrade the schema, and tell whether it is current."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` on ``engine``."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@functools.cache
def head_revision() -> str | None:
    """The newest revision of the migrations shipped (read once: they do not change)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_current(engine: Engine) -> bool:
    """Whether the schema is at the head revision. Reads ``alembic_version`` itself, without
    the alembic context whose set-up logs two INFO lines each time (/readyz asks every few s)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    return versions == [head_revision()]
