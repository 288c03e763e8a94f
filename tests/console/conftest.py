"""The console under test: a real uvicorn server on a loopback port (embedded worker on, the
demo roster and users, ``inbox://`` contacts) and a headless Chromium driven by Playwright.

Browser tests run in the SQLite run only (see ``browser_skip``): they prove the pages, not the
database, and keep the PostgreSQL run short.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from incident import demo_data, security
from incident.app import create_app
from incident.catalog import Catalog
from incident.clock import SystemClock
from incident.db import Database
from incident.settings import Settings
from tests.conftest import DEMO_ROSTER, PG_URL, PLAYBOOKS, ROOT
from tests.peers import free_port

CHROMIUM = Path(os.environ.get("INCIDENT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser_skip() -> str | None:
    """Why browser tests cannot run here, or None."""
    if PG_URL:
        return "browser tests run in the SQLite run only (INCIDENT_TEST_DATABASE_URL is set)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: as root, scripts/test installs Debian's chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[dev]'"
    return None


def artifacts_dir() -> Path:
    """Where screenshots go: $INCIDENT_TEST_ARTIFACTS/screenshots (scripts/test sets it)."""
    base = Path(os.environ.get("INCIDENT_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder = base / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- HTTP-level helpers (TestClient; both databases) -----------------------------------------
def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page carries a CSRF token"
    return found.group(1)


def console_login(client: TestClient, name: str, password: str) -> str:
    """Sign ``client`` in; return the session's CSRF token."""
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"csrf": token, "name": name, "password": password, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/").text)


@pytest.fixture
def console_user(seeded: Database) -> Any:
    """``console_user("duty_manager")``: a new user (password = name), returns its name."""
    counter = iter(range(1_000_000))

    def make(role: str, person_id: str | None = None) -> str:
        name = f"{role}-{next(counter)}"
        with seeded.transaction() as session:
            security.add_user(
                name,
                role,
                session=session,
                now=SystemClock().now(),
                person_id=person_id,
                password=name,
            )
        return name

    return make


# -- the live server (browser tests) ---------------------------------------------------------
@dataclass
class LiveServer:
    url: str
    db: Database
    settings: Settings
    duty_token: str

    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.duty_token}"}


@pytest.fixture(scope="module")
def live_server(
    template_db: str, tmp_path_factory: pytest.TempPathFactory, catalog: Catalog
) -> Iterator[LiveServer]:
    reason = browser_skip()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("console")
    shutil.copyfile(template_db, folder / "incident.db")
    url = f"sqlite:///{folder / 'incident.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=url,
        playbooks_dir=PLAYBOOKS,
        demo_roster=DEMO_ROSTER,
        public_url=base,
        worker_poll_seconds=0.1,
        log_level="WARNING",
    )
    db = Database.from_url(url)
    demo_data.seed(db, settings, SystemClock())
    tokens = demo_data.tokens_path(settings).read_text()
    duty = next(line.split("\t")[2] for line in tokens.splitlines() if line.startswith("duty\t"))
    app = create_app(settings, db=db, clock=SystemClock(), catalog=catalog, run_worker=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, ws="none"
        )
    )
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the console server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(base, db, settings, duty.strip())
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        db.dispose()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    reason = browser_skip()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test, so a fixture can tell that the test failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def browser_page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) at desktop size, in Chinese by default. A failed
    test leaves a screenshot and the page's HTML in the artifacts folder."""
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, locale="zh-CN", device_scale_factor=1
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        name = f"failed-{request.node.name}"
        try:
            page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)
            (artifacts_dir() / f"{name}.html").write_text(page.content())
        except Exception as exc:  # the page may be gone; the failure itself is what matters
            print(f"no screenshot of the failure: {exc}")
    context.close()
