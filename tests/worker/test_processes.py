"""Real worker processes killed, frozen and stopped mid-send (#14): a page reaches its
receiver once, and on time.

- SIGKILL: another worker takes the dead one's sends over within seconds (its heartbeat
  goes stale), not when their 30 s lease runs out.
- SIGSTOP past the takeover, then SIGCONT: the frozen worker sends nothing that the other
  worker took over.
- SIGTERM: the worker hands back the sends that wait for a retry, lets attempts under way
  finish, records them and exits; nothing is sent twice, no task is left pending and the log
  holds no phone number (the roster's contacts carry a canary number, checked in tmp_path).

The receiver is a real HTTP server on loopback; workers run as `python -m incident worker`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from incident import response, roster
from incident.catalog import Catalog
from incident.clock import SystemClock
from incident.db import Database
from incident.models import Delivery, Job, WorkerHeartbeat
from incident.playbook import RosterRefs, parse_playbook_text
from tests.channels.test_paging import PLAYBOOK
from tests.faults.test_receivers import contact, team_roster
from tests.peers import HttpReceiver, http_receiver

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Site:
    """One database, a team of agents paged by the page-test playbook, worker processes."""

    def __init__(self, db: Database, url: str, tmp: Path, agents: dict[str, list[str]]) -> None:
        self.db, self.url, self.tmp = db, url, tmp
        self.playbooks = tmp / "playbooks"
        self.playbooks.mkdir()
        (self.playbooks / "page-test.yaml").write_text(PLAYBOOK)
        doc = roster.parse_roster_text(team_roster(agents, "inbox://h", "inbox://d"), "r.yaml")
        with db.transaction() as session:
            roster.apply_roster(doc, session=session)
        refs = RosterRefs(*roster.ids_in_doc(doc))
        self.catalog = Catalog({"page-test": parse_playbook_text(PLAYBOOK, "p.yaml", refs)})
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = tmp / "workers.log"

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        environ = {
            **os.environ,
            "INCIDENT_DATABASE_URL": self.url,
            "INCIDENT_PLAYBOOKS_DIR": str(self.playbooks),
            "INCIDENT_LOG_FORMAT": "json",
            "INCIDENT_LOG_LEVEL": "INFO",
            **env,
        }
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "incident", "worker"],
                env=environ,
                stdout=out,
                stderr=out,
                cwd=ROOT,
            )
        self.procs.append(proc)
        return proc

    def declare(self) -> None:
        with self.db.transaction() as session:
            response.declare(
                session=session,
                now=SystemClock().now(),
                catalog=self.catalog,
                playbook_id="page-test",
                severity="III",
                title="Line G signal fault",
                facts={"line": "G"},
                actor="test",
            )

    def count(self, *where: object) -> int:
        with self.db.reading() as session:
            return int(session.scalar(select(func.count()).where(*where)) or 0)

    def deliveries(self) -> list[Delivery]:
        with self.db.reading() as session:
            return list(session.scalars(select(Delivery).where(Delivery.purpose == "page")))

    def alive(self, owner_pid: int) -> bool:
        with self.db.reading() as session:
            pids = session.scalars(select(WorkerHeartbeat.pid))
            return owner_pid in set(pids)

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for raw in self.log.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                lines.append({"raw": raw})
        return lines


@contextmanager
def site(
    db: Database, url: str, tmp: Path, paths: list[str], **peer: float
) -> Iterator[tuple[Site, HttpReceiver]]:
    with http_receiver(**peer) as receiver:
        agents = {f"a{n}": [contact(receiver.url(f"{path}/a{n}"))] for n, path in enumerate(paths)}
        place = Site(db, url, tmp, agents)
        try:
            yield place, receiver
        finally:
            for proc in place.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
                    proc.wait(10)


def wait_for(what: Callable[[], bool], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s: {why}")
        time.sleep(0.05)


def test_a_killed_workers_sends_are_taken_over_within_seconds_not_at_the_end_of_the_lease(
    seeded: Database, database_url: str, tmp_path: Path
) -> None:
    # Eight pages to a receiver that holds each first request for 60 s: worker a is mid-send
    # when it is killed; worker b re-sends (the first requests' fate is unknown: allowed).
    with site(seeded, database_url, tmp_path, ["/stall"] * 8, flaky=1, hang_seconds=60) as (
        place,
        receiver,
    ):
        first = place.worker()
        wait_for(lambda: place.alive(first.pid), 30, "worker a beats")
        place.declare()
        wait_for(lambda: len(receiver.received) >= 8, 30, "worker a sends the eight pages")
        second = place.worker()
        wait_for(lambda: place.alive(second.pid), 30, "worker b beats")
        first.kill()
        killed = time.monotonic()
        wait_for(lambda: sum(receiver.accepted().values()) >= 8, 40, "worker b re-sends")
        taken_over = max(r.at for r in receiver.received if r.status == 200) - killed
        wait_for(lambda: place.count(Delivery.status == "delivered") == 8, 20, "b records them all")
    print(f"taken over {taken_over:.2f} s after the kill")
    assert taken_over < 8.0, f"the last page went {taken_over:.1f} s after the kill"
    assert receiver.accepted() == {d.idempotency_key: 1 for d in place.deliveries()}


def test_a_frozen_worker_sends_nothing_that_another_worker_took_over_while_it_was_frozen(
    seeded: Database, database_url: str, tmp_path: Path
) -> None:
    # Worker a gets 429 Retry-After 4 and waits; it is frozen 1 s into the wait. Worker b sees
    # its heartbeat go stale, takes the job over and delivers. Then a is resumed.
    with site(seeded, database_url, tmp_path, ["/busy"], flaky=1, retry_after=4) as (
        place,
        receiver,
    ):
        lease = {"INCIDENT_WORKER_LEASE_SECONDS": "5"}  # the old engine took over at the lease
        first = place.worker(**lease)
        wait_for(lambda: place.alive(first.pid), 30, "worker a beats")
        place.declare()
        wait_for(lambda: len(receiver.received) >= 1, 30, "worker a's first attempt")
        time.sleep(1.0)
        first.send_signal(signal.SIGSTOP)
        second = place.worker(**lease)
        wait_for(lambda: sum(receiver.accepted().values()) >= 1, 40, "worker b delivers")
        wait_for(lambda: place.count(Delivery.status == "delivered") == 1, 20, "b records it")
        first.send_signal(signal.SIGCONT)
        time.sleep(6.0)  # a's wait is long over: it would have sent by now
        second.send_signal(signal.SIGTERM)
        first.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0 and first.wait(20) == 0
    assert len(receiver.received) == 2, [(r.path, r.status) for r in receiver.received]
    assert list(receiver.accepted().values()) == [1]


def test_a_stopped_worker_finishes_or_hands_back_its_sends_and_nothing_is_sent_twice(
    seeded: Database, database_url: str, tmp_path: Path
) -> None:
    # Six pages whose first answer takes 2 s (under way at the stop: they finish) and two
    # whose receiver said "retry in 20 s" (waiting at the stop: handed back at once).
    paths = ["/stall"] * 6 + ["/busy"] * 2
    with site(seeded, database_url, tmp_path, paths, flaky=1, hang_seconds=2, retry_after=20) as (
        place,
        receiver,
    ):
        # A 30 s lease: a send left to it would wait that long; the 20 s Retry-After stays
        # under the 25 s send bound, so the two busy sends wait in flight until the stop.
        first = place.worker()
        wait_for(lambda: place.alive(first.pid), 30, "the worker beats")
        place.declare()
        wait_for(lambda: len(receiver.received) >= 8, 30, "all eight first attempts")
        first.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert first.wait(20) == 0
        took = time.monotonic() - stopped
        delivered = place.count(Delivery.status == "delivered")
        held = place.count(Job.status == "running")
        second = place.worker()
        wait_for(lambda: place.count(Delivery.status == "delivered") == 8, 30, "the rest")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
        lines = place.log_lines()
    assert took < 8.0, f"the stop took {took:.1f} s"
    assert delivered == 6, "attempts under way finished and were recorded before the exit"
    assert held == 0, "nothing left to a lease: the waiting sends were handed back"
    assert receiver.accepted() == {d.idempotency_key: 1 for d in place.deliveries()}
    assert len(receiver.received) == 10  # six, two 429s, then those two again
    assert not [line for line in lines if "destroyed" in json.dumps(line)]
    assert not [line for line in lines if line.get("level") in ("error", "critical")]
