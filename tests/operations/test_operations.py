"""Several workers on one database, the auditor, /metrics and backups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from starlette.testclient import TestClient

from incident import delivery, drills, paging, response
from incident.auditor import Auditor
from incident.catalog import Catalog
from incident.channels import Sender, SendPolicy
from incident.clock import FrozenClock, SystemClock
from incident.db import Database
from incident.models import (
    DeliveryAttempt,
    InboxMessage,
    Incident,
    Job,
    Page,
    TimelineEvent,
    WorkerHeartbeat,
)
from incident.settings import Secret, Settings
from incident.worker import Worker
from tests.factories import MASS_DELAY_FACTS
from tests.peers import http_receiver

ROOT = Path(__file__).resolve().parents[2]
PG = os.environ.get("INCIDENT_TEST_DATABASE_URL", "").startswith("postgresql")
Auth = Callable[..., dict[str, str]]


@contextmanager
def workers(
    database_url: str, count: int, log: Path, **env: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    settings = {
        **os.environ,
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "INCIDENT_LOG_LEVEL": "WARNING",
        "INCIDENT_WORKER_POLL_SECONDS": "0.2",
        "INCIDENT_WORKER_HEARTBEAT_SECONDS": "0.5",
        **env,
    }
    with log.open("ab") as out:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "incident", "worker"],
                env=settings,
                stdout=out,
                stderr=out,
                cwd=ROOT,
            )
            for _ in range(count)
        ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


def queue_inbox_messages(db: Database, n: int) -> None:
    with db.transaction() as session:
        delivery.create_many(
            [
                delivery.Spec("test", f"inbox://bulk/{i}", "t", "body", f"bulk:{i}")
                for i in range(n)
            ],
            session=session,
            now=SystemClock().now(),
        )


def count(db: Database, model: type, *where: object) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


def wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.slow
@pytest.mark.skipif(not PG, reason="several worker processes share PostgreSQL")
def test_two_workers_share_5000_jobs_each_once_none_lost(
    seeded: Database, database_url: str, tmp_path: Path
) -> None:
    with workers(database_url, 2, tmp_path / "w.log"):
        # both workers up (each has beaten once) before the jobs arrive
        assert wait_until(lambda: count(seeded, WorkerHeartbeat) == 2, 60)
        queue_inbox_messages(seeded, 5000)
        assert wait_until(lambda: count(seeded, InboxMessage) >= 5000, 120)
    assert count(seeded, InboxMessage) == 5000
    assert count(seeded, DeliveryAttempt) == 5000  # each sent exactly once
    assert count(seeded, Job, Job.status != "done") == 0
    with seeded.reading() as session:
        done = [b.jobs_done for b in session.scalars(select(WorkerHeartbeat))]
    assert len(done) == 2 and sum(done) == 5000
    assert min(done) >= 0.3 * 5000, done


@pytest.mark.slow
@pytest.mark.skipif(not PG, reason="several worker processes share PostgreSQL")
def test_a_killed_workers_jobs_complete_on_the_other_within_the_lease(
    seeded: Database, database_url: str, tmp_path: Path
) -> None:
    lease = 2.0
    with http_receiver() as receiver:
        with seeded.transaction() as session:
            delivery.create_many(
                [
                    delivery.Spec("test", receiver.url(f"/slow/{i}"), "t", "b", f"slow:{i}")
                    for i in range(400)
                ],
                session=session,
                now=SystemClock().now(),
            )
        with workers(
            database_url,
            2,
            tmp_path / "w.log",
            INCIDENT_WORKER_LEASE_SECONDS=str(lease),
            INCIDENT_DELIVERY_IN_FLIGHT="32",
        ) as procs:
            assert wait_until(lambda: len(receiver.received) >= 60, 60)
            procs[0].send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            assert wait_until(lambda: count(seeded, Job, Job.status != "done") == 0, 60)
            took = time.monotonic() - killed_at
    # 400 deliveries at 100 ms, 32 in flight on the survivor: about 1.3 s of sending
    assert took < lease + 5, took


@pytest.mark.slow
def test_a_scheduled_drill_and_an_escalation_fire_once_with_three_workers(
    seeded: Database, database_url: str, tmp_path: Path, catalog: Catalog, settings: Settings
) -> None:
    now = SystemClock().now()
    local = (now + timedelta(minutes=1)).astimezone(settings.zone)
    with seeded.transaction() as session:
        schedule = drills.add_schedule(
            session=session,
            now=now,
            zone=settings.zone,
            catalog=catalog,
            playbook_id="mass-delay",
            cron=f"{local.minute} {local.hour} * * *",
            severity="IV",
            facts=MASS_DELAY_FACTS,
            participants=["coordination"],
            actor="t",
        )
        due = schedule.next_run_at
        incident = response.declare(
            session=session,
            now=now,
            catalog=catalog,
            playbook_id="mass-delay",
            severity="III",
            title="t",
            facts=MASS_DELAY_FACTS,
            actor="t",
        )
        incident_id = incident.id
    assert due is not None
    # the escalation is due now: pull the department pages' deadlines into the past
    with workers(database_url, 3, tmp_path / "w.log"):
        assert wait_until(lambda: count(seeded, Page, Page.incident_id == incident_id) > 0, 30)
        with seeded.transaction() as session:
            for job in session.scalars(select(Job).where(Job.kind == paging.DEADLINE_JOB)):
                job.run_at = SystemClock().now()
        wait_s = (due - SystemClock().now()).total_seconds() + 8
        time.sleep(max(wait_s, 3))
        assert wait_until(lambda: count(seeded, Incident, Incident.mode == "drill") >= 1, 20)
        time.sleep(2)
    assert count(seeded, Incident, Incident.drill_schedule_id == schedule.id) == 1
    with seeded.reading() as session:
        escalated = session.scalars(
            select(func.count())
            .select_from(Page)
            .where(Page.incident_id == incident_id, Page.level > 0)
        ).one()
        events = session.execute(
            select(func.count())
            .select_from(TimelineEvent)
            .where(TimelineEvent.incident_id == incident_id, TimelineEvent.kind == "page:escalated")
        ).scalar_one()
    assert escalated >= 1
    pages = count(seeded, Page, Page.incident_id == incident_id, Page.target_kind != "duty")
    assert events <= pages  # each page escalated at most once from level 0


def test_metrics_parse_and_move_when_deliveries_happen(
    client: TestClient, auth: Auth, worker: Worker
) -> None:
    # /metrics answers loopback peers only without INCIDENT_METRICS_TOKEN (#16)
    scraper = TestClient(client.app, raise_server_exceptions=False, client=("127.0.0.1", 50000))

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = scraper.get("/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    before = samples()
    assert ("incident_pages_awaiting_ack", ()) in before
    response_ = client.post(
        "/api/incidents",
        headers=auth("duty_manager"),
        json={"playbook": "mass-delay", "severity": "III", "title": "m", "facts": MASS_DELAY_FACTS},
    )
    assert response_.status_code == 201
    worker.drain()
    worker.heartbeat()
    after = samples()
    delivered = after[
        (
            "incident_deliveries",
            (("channel", "inbox"), ("purpose", "page"), ("status", "delivered")),
        )
    ]
    assert delivered > before.get(
        (
            "incident_deliveries",
            (("channel", "inbox"), ("purpose", "page"), ("status", "delivered")),
        ),
        0,
    )
    assert after[("incident_pages_awaiting_ack", ())] > 0
    assert any(name == "incident_worker_heartbeat_age_seconds" for name, _ in after)
    ready = client.get("/readyz").json()
    assert ready["workers"] and ready["workers"][0]["worker"] == "test"


@pytest.mark.slow
def test_the_auditor_alerts_when_a_worker_is_stopped_and_is_quiet_while_it_runs(
    seeded: Database, database_url: str, tmp_path: Path, settings: Settings
) -> None:
    with http_receiver() as receiver, workers(database_url, 1, tmp_path / "w.log") as procs:
        watch = settings.replace(
            auditor_worker_stale_seconds=2.0, ops_alert_urls=Secret(receiver.url("/ok/ops"))
        )
        sender = Sender(SendPolicy(attempts=1))
        auditor = Auditor(seeded, watch, SystemClock(), sender)
        try:
            assert wait_until(lambda: count(seeded, WorkerHeartbeat) == 1, 30)
            for _ in range(6):
                assert auditor.check() == []
                time.sleep(0.5)
            procs[0].send_signal(signal.SIGSTOP)
            time.sleep(3)
            alerts = auditor.check()
            assert len(alerts) == 1 and "silent" in alerts[0]
            assert [r.body["message"] for r in receiver.received] == alerts
            assert auditor.check() == []  # said once, not every round
            procs[0].send_signal(signal.SIGCONT)
            assert wait_until(lambda: bool(auditor.check()), 10)
            assert "recovered" in receiver.received[-1].body["message"]
        finally:
            sender.close()


def test_backup_and_restore_round_trip(
    seeded: Database, database_url: str, tmp_path: Path, clock: FrozenClock, catalog: Catalog
) -> None:
    if PG:
        pytest.skip("pg_dump guidance is printed; the SQLite path is tested here")
    env = {**os.environ, "INCIDENT_DATABASE_URL": database_url}
    target = tmp_path / "backup.db"
    made = subprocess.run(
        [sys.executable, "-m", "incident", "db", "backup", str(target)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "INCIDENT_DATA_KEYS" in made.stdout
    with seeded.transaction() as session:
        response.declare(
            session=session,
            now=clock.now(),
            catalog=catalog,
            playbook_id="mass-delay",
            severity="IV",
            title="after the backup",
            facts=MASS_DELAY_FACTS,
            actor="t",
        )
    assert count(seeded, Incident) == 1
    seeded.dispose()
    restored = subprocess.run(
        [sys.executable, "-m", "incident", "db", "restore", str(target)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert restored.returncode == 0, restored.stderr
    assert count(seeded, Incident) == 0
    bad = subprocess.run(
        [sys.executable, "-m", "incident", "db", "restore", str(tmp_path / "missing.db")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "no such backup" in bad.stderr


@pytest.mark.slow
def test_the_container_entrypoint_migrates_then_serves_a_healthy_web(
    database_url: str, tmp_path: Path
) -> None:
    """The steps the image runs (docker/entrypoint.sh, docker/healthcheck.py), run here: the
    web container is healthy once a worker container beats."""
    from tests.peers import free_port

    port = str(free_port())
    env = {
        **os.environ,
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_PORT": port,
        "INCIDENT_HOST": "127.0.0.1",
        "INCIDENT_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "INCIDENT": str(Path(sys.executable).parent / "incident"),
        "INCIDENT_LOG_LEVEL": "WARNING",
    }
    entry = str(ROOT / "docker" / "entrypoint.sh")
    health = [sys.executable, str(ROOT / "docker" / "healthcheck.py")]
    assert subprocess.run([entry, "migrate"], env=env, check=False).returncode == 0
    assert subprocess.run(health, env=env, check=False).returncode == 1  # nothing serves yet
    with (tmp_path / "web.log").open("wb") as log:
        web = subprocess.Popen([entry, "web"], env=env, stdout=log, stderr=log)
    worker = None
    try:
        # the web answers, but is not ready (nor healthy) while no worker is alive (#14)
        assert wait_until(lambda: _readyz(port) == 503, 30), (tmp_path / "web.log").read_text()
        assert subprocess.run(health, env=env, check=False).returncode == 1
        with (tmp_path / "worker.log").open("wb") as log:
            worker = subprocess.Popen([entry, "worker"], env=env, stdout=log, stderr=log)
        assert wait_until(
            lambda: subprocess.run(health, env=env, check=False).returncode == 0, 30
        ), (tmp_path / "web.log").read_text()[-2000:]
    finally:
        for proc in (web, worker):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)


def _readyz(port: str) -> int | None:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
    except httpx.HTTPError:
        return None
