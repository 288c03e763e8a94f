"""The public surfaces come from memory, and stay correct across processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import xmlschema
from starlette.testclient import TestClient

from incident.app import create_app
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.notices import generation
from incident.notices.cache import FeedCache, Rendered, stamp_of
from incident.settings import Settings
from incident.worker import Worker
from tests.notices.desk import Desk

Auth = Callable[..., dict[str, str]]


@pytest.fixture
def desk(
    client: TestClient,
    worker: Worker,
    clock: FrozenClock,
    auth: Auth,
    cap_schema: xmlschema.XMLSchema,
) -> Desk:
    return Desk(client, worker, clock, auth("duty_manager"), cap_schema)


@pytest.fixture
def other_process(
    seeded: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> Iterator[TestClient]:
    """A second app on the same database, as another `incident serve` would be."""
    database = Database.from_url(settings.database_url)
    app = create_app(
        settings.replace(notice_cache_seconds=0.0),
        db=database,
        clock=clock,
        catalog=catalog,
        run_worker=False,
    )
    with TestClient(app, raise_server_exceptions=False) as other:
        yield other
    database.dispose()


def test_a_publication_in_one_process_shows_in_another(
    desk: Desk, other_process: TestClient, seeded: Database
) -> None:
    incident_id = desk.declare()
    assert other_process.get("/gtfs-rt/alerts.pb?format=json").json() == {
        "header": other_process.get("/gtfs-rt/alerts.pb?format=json").json()["header"]
    }
    assert "G线晚点" not in other_process.get("/notices").text
    notice_id = desk.draft(incident_id, "G线晚点", "Delays on line G")
    desk.publish(notice_id)
    with seeded.reading() as session:
        assert generation(session=session) == 1
    assert "G线晚点" in other_process.get("/notices").text
    (entity,) = other_process.get("/gtfs-rt/alerts.pb?format=json").json()["entity"]
    assert entity["id"] == notice_id


def test_a_drill_publication_does_not_touch_the_generation(desk: Desk, seeded: Database) -> None:
    drill = desk.declare(mode="drill")
    desk.publish(desk.draft(drill, "演练", "Exercise"))
    with seeded.reading() as session:
        assert generation(session=session) == 0


def test_an_unchanged_surface_answers_304_to_its_etag(desk: Desk) -> None:
    incident_id = desk.declare()
    desk.publish(desk.draft(incident_id, "G线晚点", "Delays on line G"))
    for path in ("/notices", "/notices.atom", "/notices.cap", "/gtfs-rt/alerts.pb"):
        first = desk.client.get(path)
        assert first.headers["cache-control"].startswith("public")
        again = desk.client.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


def test_a_surface_is_rendered_once_however_many_ask_at_once() -> None:
    cache = FeedCache(check_every=1.0)
    calls: list[int] = []
    stamp = (1, 0)

    def render() -> Rendered:
        calls.append(1)
        time.sleep(0.05)
        return Rendered.of(b"feed", "text/plain")

    results: list[Rendered] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.fill("atom", stamp, render)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and {r.body for r in results} == {b"feed"}
    assert cache.lookup("atom", (2, 0)) is None  # a new generation renders again


def test_the_generation_is_trusted_for_a_while_and_re_read_after_invalidation() -> None:
    cache = FeedCache(check_every=60.0)
    assert cache.known_generation() == (None, 0)
    cache.learn(5, 0)
    assert cache.known_generation() == (5, 0)
    cache.invalidate()
    known, epoch = cache.known_generation()
    assert known is None and epoch == 1
    cache.learn(4, 0)  # read before the invalidation: ignored
    assert cache.known_generation()[0] is None
    cache.learn(6, epoch)
    assert cache.known_generation()[0] == 6


def test_stamps_change_with_the_minute(clock: FrozenClock) -> None:
    first = stamp_of(3, clock.now())
    clock.advance(seconds=59)
    assert stamp_of(3, clock.now()) == first
    clock.advance(seconds=1)
    assert stamp_of(3, clock.now()) != first


def test_one_request_re_reads_a_due_generation_while_the_others_serve_on() -> None:
    cache = FeedCache(check_every=0.0)
    cache.learn(5, 0)
    assert cache.known_generation() == (None, 0)  # this one reads the database
    assert cache.known_generation() == (5, 0)  # the others do not wait for it
    cache.learn(6, 0)
    assert cache.known_generation() == (None, 0)  # due again at once (check_every 0)
