"""Shared fixtures: a database built by the migrations (SQLite, or PostgreSQL when
INCIDENT_TEST_DATABASE_URL names one), a frozen clock, the shipped playbooks and roster."""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
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
from incident.logs import configure_logging
from incident.migrate import upgrade
from incident.playbook import RosterRefs
from incident.settings import Settings
from incident.worker import Worker
from tests import canaries

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
DEMO_ROSTER = ROOT / "incident" / "demo" / "roster.yaml"
PG_URL = os.environ.get("INCIDENT_TEST_DATABASE_URL", "")
ARTIFACTS = Path(os.environ.get("INCIDENT_TEST_ARTIFACTS") or ROOT / "test-artifacts")


# -- personal-data canaries (tests/canaries.py) ----------------------------------------------
CANARIES = canaries.Collector()
_LOG_PATH = pytest.StashKey[Path]()
_QUIET = ("httpcore", "hpack", "asyncio", "multipart", "PIL", "markdown_it", "filelock")


def pytest_configure(config: pytest.Config) -> None:
    """Every logger at DEBUG through the production pipeline (masking included) into one
    session log that is scanned line by line; every HTTP response a test reads is teed to the
    canary check."""
    folder = ARTIFACTS / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("pytest-*.log"))[:-10]:  # keep the last sessions' logs
        if time.time() - old.stat().st_mtime > 3600:
            old.unlink(missing_ok=True)
    path = folder / f"pytest-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    configure_logging("json", "DEBUG")
    root = logging.getLogger()
    production = root.handlers[0]
    handler = canaries.CanaryHandler(path, CANARIES)
    handler.setFormatter(production.formatter)
    for log_filter in production.filters:
        handler.addFilter(log_filter)
    root.handlers[:] = [handler]
    for name in _QUIET:  # transport chatter with no data of ours: keep the volume sane
        logging.getLogger(name).setLevel(logging.INFO)
    config.stash[_LOG_PATH] = path

    plain_send = httpx.Client.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = plain_send(self, request, **kwargs)
        if not kwargs.get("stream"):
            CANARIES.check_response(response)
        return response

    httpx.Client.send = send  # type: ignore[method-assign]


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    CANARIES.current = nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, content in report.sections:
        if title.endswith(f" {report.when}"):  # each phase's capture once
            CANARIES.check(content, f"{title.lower()} (pytest capture)")


@pytest.fixture(autouse=True)
def _canary_watch(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test that let a canary number out; scan the files it left in tmp_path."""
    yield
    folder = request.node.funcargs.get("tmp_path")
    if isinstance(folder, Path) and folder.exists():
        CANARIES.check_files(folder)
    found = CANARIES.of(request.node.nodeid)
    if found:
        pytest.fail("personal data leaked:\n" + "\n".join(map(str, found)), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The final check: re-read the whole session log, then fail the run on any finding."""
    path = session.config.stash.get(_LOG_PATH, None)
    if path is None or not path.exists():
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler, canaries.CanaryHandler):
            handler.flush()
    CANARIES.current = "(session log)"
    CANARIES.check_file_lines(path)
    if CANARIES.findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    path = terminalreporter.config.stash.get(_LOG_PATH, None)
    if CANARIES.findings:
        terminalreporter.section("personal data canaries", red=True)
        for finding in CANARIES.findings[:200]:
            terminalreporter.write_line(str(finding))
        terminalreporter.write_line(f"{len(CANARIES.findings)} finding(s); session log: {path}")
    elif path is not None:
        terminalreporter.write_line(f"canaries: none found (session log {path})")


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
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        yield url
        canaries.check_database(CANARIES, url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        target = tmp_path / "incident.db"
        shutil.copyfile(template_db, target)
        yield f"sqlite:///{target}"
        canaries.check_database(CANARIES, f"sqlite:///{target}")


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
