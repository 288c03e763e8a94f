"""The database briefly away (#9): locked longer than the lock wait, or unreachable. The API
answers 503 problem+json with Retry-After and recovers when the database is back; the worker
keeps running, logs the outage with backoff (1st, 2nd, 4th ... failed round) and processes
the jobs afterwards.

SQLite: "locked" is a ``BEGIN EXCLUSIVE`` held from another connection (writes wait, reads go
on: WAL); "unavailable" is the file gone (a directory in its place) after the connections
were lost. PostgreSQL: "locked" is ``LOCK TABLE ... ACCESS EXCLUSIVE`` from another connection
(the app's ``lock_timeout`` is short here); "unavailable" is a TCP proxy in front of the server
cut and restored; terminated backends are replaced by the pool (pre-ping)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from starlette.testclient import TestClient

from incident import operations, roster, security
from incident.app import create_app
from incident.catalog import Catalog
from incident.channels import Sender
from incident.clock import FrozenClock
from incident.db import Database, database_unavailable, make_engine
from incident.handlers import Context
from incident.models import Delivery, InboxMessage, Job
from incident.settings import Settings
from incident.worker import Worker
from tests.conftest import PG_URL
from tests.factories import MASS_DELAY_FACTS, declare
from tests.peers import tcp_proxy

LOCK_WAIT_MS = 300
DECLARE = {
    "playbook": "mass-delay",
    "severity": "III",
    "title": "Line G signal fault",
    "facts": MASS_DELAY_FACTS,
}


@dataclass
class Outage:
    """Takes the database away (``begin``) and brings it back (``end``)."""

    kind: str
    url: str  # what the app and the worker connect to
    begin: Callable[[], None]
    end: Callable[[], None]


def _sqlite_outage(kind: str, url: str, db: Callable[[], Database]) -> Iterator[Outage]:
    path = Path(str(make_url(url).database))
    if kind == "locked":
        holder = sqlite3.connect(path, isolation_level=None)

        def lock() -> None:
            holder.execute("BEGIN EXCLUSIVE")

        def unlock() -> None:
            holder.execute("COMMIT")

        yield Outage(kind, url, lock, unlock)
        holder.close()
        return
    away = path.with_name("away.db")

    def vanish() -> None:
        db().dispose()  # the connections are lost with the database
        path.rename(away)
        path.mkdir()  # nothing can open it (a new empty file would hide the outage)

    def come_back() -> None:
        path.rmdir()
        away.rename(path)

    yield Outage(kind, url, vanish, come_back)
    if away.exists():
        come_back()


def _pg_outage(kind: str, url: str) -> Iterator[Outage]:
    if kind == "locked":
        holder = create_engine(url, poolclass=NullPool).connect()

        def lock() -> None:
            holder.execute(text("LOCK TABLE incidents, jobs IN ACCESS EXCLUSIVE MODE"))

        def unlock() -> None:
            holder.rollback()

        yield Outage(kind, url, lock, unlock)
        holder.close()
        return
    parsed = make_url(url)
    with tcp_proxy(parsed.host or "127.0.0.1", parsed.port or 5432) as proxy:
        via = parsed.set(host="127.0.0.1", port=proxy.port)
        yield Outage(kind, via.render_as_string(hide_password=False), proxy.cut, proxy.restore)


@pytest.fixture(params=["locked", "unavailable"])
def outage(request: pytest.FixtureRequest, database_url: str) -> Iterator[Outage]:
    databases: list[Database] = []
    request.node.stash[_DATABASES] = databases
    if PG_URL:
        yield from _pg_outage(request.param, database_url)
    else:
        yield from _sqlite_outage(request.param, database_url, lambda: databases[0])


_DATABASES = pytest.StashKey[list[Database]]()


@pytest.fixture
def app_db(
    request: pytest.FixtureRequest, outage: Outage, roster_doc: roster.RosterDoc
) -> Iterator[Database]:
    """The app's database, through the outage's URL, with a short lock wait."""
    db = Database(make_engine(outage.url, lock_wait_ms=LOCK_WAIT_MS), lock_wait_ms=LOCK_WAIT_MS)
    request.node.stash[_DATABASES].append(db)
    with db.transaction() as session:
        roster.apply_roster(roster_doc, session=session)
    yield db
    db.dispose()


def _problem(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["retry-after"] == "5"
    body: dict[str, Any] = answer.json()
    assert body["type"].endswith("/database-unavailable") and body["status"] == 503
    assert "Traceback" not in answer.text and "SELECT" not in answer.text
    return body


def test_the_api_answers_503_with_retry_after_while_the_database_is_away_then_recovers(
    outage: Outage, app_db: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> None:
    with app_db.transaction() as session:
        _, token = security.add_user("duty", "duty_manager", session=session, now=clock.now())
        operations.beat(  # a worker is alive (elsewhere), so /readyz can say ready
            "w",
            host="h",
            pid=1,
            started_at=clock.now(),
            jobs_done=0,
            session=session,
            now=clock.now(),
        )
    duty = {"Authorization": f"Bearer {token}"}
    app = create_app(settings, db=app_db, clock=clock, catalog=catalog, run_worker=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/api/incidents", json=DECLARE, headers=duty).status_code == 201
        outage.begin()
        try:
            started = time.monotonic()
            _problem(client.post("/api/incidents", json=DECLARE, headers=duty))
            assert time.monotonic() - started < 5, "bounded by the lock wait, not hanging"
            listed = client.get("/api/incidents", headers=duty)
            if outage.kind == "locked" and not PG_URL:
                assert listed.status_code == 200  # WAL: readers go on while a writer holds
            else:
                _problem(listed)
            if outage.kind == "unavailable":
                assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200  # alive: no restart wanted
        finally:
            outage.end()
        again = client.post("/api/incidents", json=DECLARE, headers=duty)
        assert again.status_code == 201, again.text
        listed = client.get("/api/incidents", headers=duty).json()["items"]
        assert len(listed) == 2
        assert client.get("/readyz").status_code == 200


def _events(records: list[Any], name: str) -> list[dict[str, Any]]:
    return [r.msg for r in records if isinstance(r.msg, dict) and r.msg.get("event") == name]


def _due(db: Database, clock: FrozenClock) -> int:
    """Jobs due now and not yet done."""
    with db.reading() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.run_at <= clock.now(), Job.status.in_(("queued", "running")))
            )
            or 0
        )


def test_the_worker_survives_the_outage_logs_it_with_backoff_and_resumes(
    outage: Outage,
    app_db: Database,
    settings: Settings,
    catalog: Catalog,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    declare(app_db, catalog, clock)
    assert _due(app_db, clock) > 0
    settings = replace(settings, worker_poll_seconds=0.05)
    with ExitStack() as stack:
        sender = Sender(Context.build(settings, catalog).send_policy())
        worker = Worker(app_db, Context.build(settings, catalog), clock, sender=sender)
        stack.callback(worker.stop)
        outage.begin()
        try:
            worker.start()
            time.sleep(2.5)
            assert worker._thread is not None and worker._thread.is_alive()
        finally:
            outage.end()
        deadline = time.monotonic() + 10  # the backoff is capped at 5 s
        while not _events(caplog.records, "worker_resumed") or _due(app_db, clock):
            assert time.monotonic() < deadline, "the worker did not resume"
            time.sleep(0.05)
        assert worker._thread.is_alive()
    failed = _events(caplog.records, "worker_round_failed")
    (resumed,) = _events(caplog.records, "worker_resumed")
    rounds = int(resumed["failed_rounds"])
    assert 3 <= rounds <= 14, rounds  # backing off: polling every 50 ms would be ~50 rounds
    assert [f["failed_rounds"] for f in failed] == [2**n for n in range(rounds.bit_length())]
    assert all("SELECT" not in str(f) and "INSERT" not in str(f) for f in failed)
    assert all(r.levelname != "CRITICAL" for r in caplog.records)


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: backends terminated by the server")
def test_terminated_backends_are_replaced_by_the_pool(
    database_url: str, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> None:
    db = Database.from_url(database_url)
    try:
        with db.transaction() as session:
            _, token = security.add_user("duty", "duty_manager", session=session, now=clock.now())
        duty = {"Authorization": f"Bearer {token}"}
        app = create_app(settings, db=db, clock=clock, catalog=catalog, run_worker=False)
        name = make_url(database_url).database
        admin = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with TestClient(app, raise_server_exceptions=False) as client:
            for _ in range(3):
                assert client.get("/api/incidents", headers=duty).status_code == 200
            with admin.connect() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                ).scalar()
            assert killed
            answers = [client.get("/api/incidents", headers=duty).status_code for _ in range(5)]
            assert answers == [200] * 5, answers  # pre-ping: no request sees a dead connection
        admin.dispose()
    finally:
        db.dispose()


def test_a_request_lock_wait_is_bounded_on_both_databases(database_url: str) -> None:
    """The engine's lock wait is what turns a held lock into an error (503) in bounded time."""
    db = Database(make_engine(database_url, lock_wait_ms=LOCK_WAIT_MS), lock_wait_ms=LOCK_WAIT_MS)
    try:
        with db.engine.connect() as conn:
            if PG_URL:
                shown = conn.execute(text("SHOW lock_timeout")).scalar()
                assert shown == f"{LOCK_WAIT_MS}ms"
            else:
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == LOCK_WAIT_MS
    finally:
        db.dispose()
    default = Database.from_url(database_url)
    try:
        with default.engine.connect() as conn:
            if PG_URL:
                assert conn.execute(text("SHOW lock_timeout")).scalar() == "10s"
            else:
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    finally:
        default.dispose()


def test_sends_finished_during_the_outage_are_recorded_after_it_and_not_sent_again(
    outage: Outage, app_db: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> None:
    declare(app_db, catalog, clock)
    settings = replace(settings, worker_poll_seconds=0.05)
    ctx = Context.build(settings, catalog)
    worker = Worker(app_db, ctx, clock, sender=Sender(ctx.send_policy()))
    try:
        for _ in range(20):  # declare -> stage -> pages -> sends in flight
            worker.run_due()
            if worker._in_flight:
                break
        in_flight = len(worker._in_flight)
        assert in_flight > 0
        deadline = time.monotonic() + 5
        while worker._finished.qsize() < in_flight:  # demo inbox: delivered at once
            assert time.monotonic() < deadline
            time.sleep(0.02)
        outage.begin()
        try:
            with pytest.raises(Exception) as raised:
                worker.record_finished()
            assert database_unavailable(raised.value)
            assert worker._finished.qsize() == in_flight, "outcomes kept for later"
            assert len(worker._in_flight) == in_flight
        finally:
            outage.end()
        worker.drain()
    finally:
        worker.stop()
    with app_db.reading() as session:
        sent = session.execute(select(Delivery.status, Delivery.attempts)).all()
        filed = session.scalar(select(func.count()).select_from(InboxMessage))
    assert sent and all(row.status == "delivered" and row.attempts == 1 for row in sent)
    assert filed == len(sent)  # each message reached the inbox once
