"""One broken playbook file does not stop the service: the others load, the broken one runs
its last good version (or is absent), and the log, /readyz and the console say so."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from incident import operations, security
from incident.app import create_app, load_catalog, pin_catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.settings import Settings
from tests.conftest import PLAYBOOKS
from tests.console.conftest import console_login

BROKEN = "id: mass-delay\nversion: 3\ntitle: {zh: 坏, en: Broken}\nkind: mass_delay\nstages: [\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A playbooks folder with two good playbooks."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    for name in ("mass-delay.yaml", "equipment-failure.yaml"):
        shutil.copy(PLAYBOOKS / name, playbooks / name)
    return playbooks


@pytest.fixture
def local(settings: Settings, folder: Path) -> Settings:
    return settings.replace(playbooks_dir=folder)


def test_a_broken_playbook_runs_its_last_good_version_and_the_others_load(
    seeded: Database,
    local: Settings,
    folder: Path,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = load_catalog(local, seeded)
    pin_catalog(first, seeded, clock)  # the service ran with the good version once
    good = first.get("mass-delay").digest
    (folder / "mass-delay.yaml").write_text(BROKEN, encoding="utf-8")
    caplog.set_level(logging.ERROR)
    catalog = load_catalog(local, seeded)  # the restart
    assert catalog.ids() == ["equipment-failure", "mass-delay"]
    assert catalog.get("mass-delay").digest == good
    (broken,) = catalog.broken
    assert broken.file.endswith("mass-delay.yaml") and broken.line == 6
    assert broken.playbook_id == "mass-delay" and broken.serving_digest == good
    logged = [r.getMessage() for r in caplog.records if "playbook_broken" in r.getMessage()]
    assert logged and "mass-delay.yaml" in logged[0]


def test_a_broken_playbook_never_loaded_before_is_absent_and_reported(
    seeded: Database, local: Settings, folder: Path
) -> None:
    (folder / "mass-delay.yaml").write_text(BROKEN, encoding="utf-8")
    catalog = load_catalog(local, seeded)
    assert catalog.ids() == ["equipment-failure"]
    (broken,) = catalog.broken
    assert broken.serving_digest is None and broken.line == 6


def test_readyz_and_the_console_name_the_broken_playbook(
    seeded: Database, local: Settings, folder: Path, clock: FrozenClock
) -> None:
    pin_catalog(load_catalog(local, seeded), seeded, clock)
    (folder / "mass-delay.yaml").write_text(BROKEN, encoding="utf-8")
    app = create_app(local, db=seeded, clock=clock, run_worker=False)
    with seeded.transaction() as session:  # a worker is alive: /readyz says ready (#14)
        operations.beat(
            "w1",
            host="h",
            pid=1,
            started_at=clock.now(),
            jobs_done=0,
            session=session,
            now=clock.now(),
        )
    with TestClient(app, raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        (broken,) = ready.json()["playbooks"]["broken"]
        assert broken["file"].endswith("mass-delay.yaml") and broken["line"] == 6
        assert broken["serving"] == "last good version 2"
        with seeded.transaction() as session:
            security.add_user(
                "viewer1", "viewer", session=session, now=clock.now(), password="viewer1"
            )
        console_login(client, "viewer1", "viewer1")
        page = client.get("/playbooks")
        assert page.status_code == 200 and "mass-delay.yaml" in page.text
