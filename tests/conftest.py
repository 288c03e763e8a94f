"""Shared fixtures: a database built by the migrations (SQLite, or PostgreSQL when
INCIDENT_TEST_DATABASE_URL names one), a frozen clock, the shipped playbooks and roster."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from incident import roster, security
from incident.app import create_app
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.migrate import upgrade
from incident.playbook import RosterRefs
from incident.settings import Settings
from incident.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
DEMO_ROSTER = ROOT / "incident" / "demo" / "roster.yaml"
PG_URL = os.environ.get("INCIDENT_TEST_DATABASE_URL", "")


def _admin_url(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database to copy for each test: a file (SQLite) or a template (PostgreSQL)."""
    if PG_URL:
        name = f"incident_tmpl_{uuid.uuid4().hex[:8]}"
        admin = create_engine(_admin_url(PG_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        engine = Database.from_url(url).engine
        upgrade(engine)
        engine.dispose()
        yield name
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        database = Database.from_url(f"sqlite:///{path}")
        upgrade(database.engine)
        database.dispose()  # the last connection to close checkpoints the WAL into the file
        yield str(path)


@pytest.fixture
def database_url(template_db: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if PG_URL:
        name = f"incident_t_{uuid.uuid4().hex[:10]}"
        admin = create_engine(_admin_url(PG_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        target = tmp_path / "incident.db"
        shutil.copyfile(template_db, target)
        yield f"sqlite:///{target}"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.from_url(database_url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        playbooks_dir=PLAYBOOKS,
        demo_roster=DEMO_ROSTER,
        worker_poll_seconds=0.05,
    )


@pytest.fixture(scope="session")
def roster_doc() -> roster.RosterDoc:
    return roster.load_roster_file(DEMO_ROSTER)


@pytest.fixture(scope="session")
def catalog(roster_doc: roster.RosterDoc) -> Catalog:
    departments, roles, people = roster.ids_in_doc(roster_doc)
    return Catalog.from_paths(
        [PLAYBOOKS], RosterRefs(departments=departments, roles=roles, people=people)
    )


@pytest.fixture
def seeded(db: Database, roster_doc: roster.RosterDoc) -> Database:
    """The database with the demo roster loaded."""
    with db.transaction() as session:
        roster.apply_roster(roster_doc, session=session)
    return db


@pytest.fixture
def context(settings: Settings, catalog: Catalog) -> Context:
    return Context.build(settings, catalog)


@pytest.fixture
def sender(context: Context) -> Iterator[Sender]:
    """Sends for real; tests give backoff a tiny base so retries take milliseconds."""
    policy = replace(context.send_policy(), backoff_seconds=0.01, max_backoff_seconds=0.05)
    real = Sender(policy)
    yield real
    real.close()


@pytest.fixture
def worker(seeded: Database, context: Context, clock: FrozenClock, sender: Sender) -> Worker:
    return Worker(seeded, context, clock, sender=sender, owner="test")


@pytest.fixture
def client(
    seeded: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> Iterator[TestClient]:
    app = create_app(settings, db=seeded, clock=clock, catalog=catalog, run_worker=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth(seeded: Database, clock: FrozenClock) -> Callable[[str], dict[str, str]]:
    """``auth("duty_manager")``: headers of a new user with that role."""

    def make(role: str, person_id: str | None = None) -> dict[str, str]:
        with seeded.transaction() as session:
            _, token = security.add_user(
                f"{role}-{uuid.uuid4().hex[:6]}",
                role,
                session=session,
                now=clock.now(),
                person_id=person_id,
            )
        return {"Authorization": f"Bearer {token}"}

    return make
