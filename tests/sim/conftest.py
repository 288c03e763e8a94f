"""One simulator rig per test module: a migrated database (a SQLite file, or a PostgreSQL
database made from the session's template when INCIDENT_TEST_DATABASE_URL is set) that every
scenario reuses, its scenario tables emptied or its file copied before each seed."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from incident.sim.world import Rig
from tests.conftest import PG_URL, _admin_url


@pytest.fixture(scope="module")
def sim_database_url(template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PG_URL:
        # in memory when the machine has a tmpfs: a fifth faster, and it is thrown away
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            with tempfile.TemporaryDirectory(prefix="incident-sim-", dir=shm) as folder:
                path = Path(folder) / "sim.db"
                shutil.copyfile(template_db, path)
                yield f"sqlite:///{path}"
            return
        path = tmp_path_factory.mktemp("sim") / "sim.db"
        shutil.copyfile(template_db, path)
        yield f"sqlite:///{path}"
        return
    name = f"incident_sim_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_admin_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def rig(sim_database_url: str) -> Iterator[Rig]:
    """The simulator's rig; the engine logs at WARNING while it runs (thousands of scenarios
    at DEBUG would fill the session log for nothing)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    built = Rig.build(sim_database_url)
    try:
        yield built
    finally:
        built.close()
        root.setLevel(level)


def report_line(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print past pytest's capture (scenarios per second belong in the test output)."""
    with capsys.disabled():
        print(line, flush=True)
