"""The auditor's blind spots (#14): the database being away, and a dead worker's alert that
cleared by itself after an hour."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from incident import operations
from incident.auditor import Auditor
from incident.channels import Message, Outcome, Try
from incident.clock import FrozenClock
from incident.db import Database
from incident.settings import Secret, Settings

OPS = "json://ops.example/hook"


class Recorder:
    """A Sender that records what it is asked to send and says it was delivered."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send_now(self, message: Message, timeout: float | None = None) -> Outcome:
        self.sent.append(message)
        return Outcome(message.delivery_id, [Try(0.0, 1, "delivered", 200, None)])


def watching(db: Database, settings: Settings, clock: FrozenClock) -> tuple[Auditor, Recorder]:
    recorder = Recorder()
    auditor = Auditor(
        db,
        settings.replace(ops_alert_urls=Secret(OPS), auditor_worker_stale_seconds=30.0),
        clock,
        recorder,  # type: ignore[arg-type]
    )
    return auditor, recorder


def beat(db: Database, clock: FrozenClock, owner: str, host: str = "h1", **kw: bool) -> None:
    with db.transaction() as session:
        operations.beat(
            owner,
            host=host,
            pid=1,
            started_at=clock.now(),
            jobs_done=0,
            session=session,
            now=clock.now(),
            **kw,
        )


def test_the_database_being_away_is_alerted_to_ops_and_its_return_said(
    seeded: Database, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    auditor, recorder = watching(seeded, settings, clock)
    beat(seeded, clock, "w1")
    assert auditor.check() == []
    auditor.db = Database.from_url(f"sqlite:///{tmp_path}/no/such/dir/incident.db")
    try:
        assert auditor.check() == []  # one failed check may be a blip
        alerts = auditor.check()
        assert len(alerts) == 1 and "ALERT" in alerts[0] and "database" in alerts[0]
        assert [m.address for m in recorder.sent] == [OPS]
        assert auditor.check() == []  # said once
    finally:
        auditor.db.dispose()
        auditor.db = seeded
    beat(seeded, clock, "w1")
    back = auditor.check()
    assert len(back) == 1 and "recovered" in back[0] and "database" in back[0]
    assert len(recorder.sent) == 2


def test_a_worker_that_stopped_beating_stays_alerted_past_an_hour_until_it_is_back(
    seeded: Database, settings: Settings, clock: FrozenClock
) -> None:
    auditor, _ = watching(seeded, settings, clock)
    beat(seeded, clock, "w1")
    beat(seeded, clock, "w2", host="h2")
    clock.advance(seconds=60)
    beat(seeded, clock, "w2", host="h2")
    alerts = auditor.check()
    assert len(alerts) == 1 and "w1" in alerts[0] and "silent" in alerts[0]
    for _ in range(3):
        clock.advance(hours=1)
        beat(seeded, clock, "w2", host="h2")
        assert auditor.check() == []  # not "recovered": it never came back
    assert "worker:w1" in {c.key for c in Auditor(seeded, settings, clock).conditions(clock.now())}
    beat(seeded, clock, "w1")
    back = auditor.check()
    assert len(back) == 1 and "recovered" in back[0] and "w1" in back[0]


def test_a_dead_workers_alert_clears_when_it_is_forgotten_or_replaced_on_its_host(
    seeded: Database, settings: Settings, clock: FrozenClock
) -> None:
    auditor, _ = watching(seeded, settings, clock)
    beat(seeded, clock, "w1", host="h1")
    beat(seeded, clock, "w2", host="h2")
    clock.advance(seconds=60)
    assert len(auditor.check()) == 2  # both silent
    clock.advance(hours=2)
    with seeded.transaction() as session:
        assert operations.forget("w1", session=session, now=clock.now())
        assert not operations.forget("nobody", session=session, now=clock.now())
    cleared = auditor.check()
    assert len(cleared) == 1 and "recovered" in cleared[0] and "w1" in cleared[0]
    beat(seeded, clock, "w3", host="h2")  # w2's host runs a new worker, started after w2 died
    replaced = auditor.check()
    assert any("recovered" in t and "w2" in t for t in replaced), replaced
    clock.advance(days=8)
    beat(seeded, clock, "w3", host="h2")
    assert auditor.check() == []


def test_workers_list_and_forget_from_the_command_line(seeded: Database, database_url: str) -> None:
    from incident.clock import SystemClock

    clock = FrozenClock(SystemClock().now() - timedelta(minutes=5))
    beat(seeded, clock, "gone-1", host="h9")
    env = {**os.environ, "INCIDENT_DATABASE_URL": database_url, "INCIDENT_LOG_LEVEL": "WARNING"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "incident", "workers", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    listed = run("list")
    assert listed.returncode == 0 and "gone-1\th9" in listed.stdout and "silent" in listed.stdout
    assert run("forget", "gone-1").returncode == 0
    assert "stopped" in run("list").stdout
    again = run("forget", "gone-1")
    assert again.returncode == 1 and "no silent worker" in again.stderr
