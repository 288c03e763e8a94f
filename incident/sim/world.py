"""What every scenario shares: settings, the shipped playbooks, the demo roster with its
contacts turned into ``sim://`` addresses, one Sender with the fake gateway, and a store that
hands each scenario a clean database."""

from __future__ import annotations

import functools
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, delete
from sqlalchemy.engine import make_url

from incident import roster
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database, make_engine
from incident.handlers import Context
from incident.migrate import upgrade
from incident.models import Base
from incident.playbook import RosterRefs
from incident.roster_file import RosterDoc, parse_roster_text
from incident.settings import Secret, Settings
from incident.sim.gateway import Gateway, SimSender

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
DEMO_ROSTER = Path(__file__).resolve().parents[1] / "demo" / "roster.yaml"
PUBLIC_CHANNEL = "sim://public/board"
DRILL_CHANNEL = "sim://drill/notices"
LEASE_SECONDS = 30.0
MAX_ATTEMPTS = 4  # a short fuse: a few glitches in a row can make a job fail
DAY_ONE = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
# The roster and the pinned playbooks stay from one scenario to the next; the rest is wiped.
KEPT = {"departments", "people", "contact_methods", "rota_patterns", "rota_overrides"}
KEPT |= {"playbook_versions"}


@functools.cache
def sim_roster(path: Path = DEMO_ROSTER) -> RosterDoc:
    """The demo roster with every contact on the fake gateway (``sim://person/...``)."""
    return parse_roster_text(path.read_text().replace("inbox://", "sim://person/"), str(path))


def sim_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        playbooks_dir=PLAYBOOKS,
        demo_roster=DEMO_ROSTER,
        worker_lease_seconds=LEASE_SECONDS,
        job_max_attempts=MAX_ATTEMPTS,
        worker_poll_seconds=0.0,
        worker_listen=False,
        delivery_backoff_seconds=0.01,
        delivery_in_flight=100_000,
        public_channels=Secret(PUBLIC_CHANNEL),
        drill_notice_channel=DRILL_CHANNEL,
    )


class Store:
    """A clean database per scenario: the SQLite file copied from a prepared template
    (``copy``), or the scenario tables emptied in place (``wipe``, any database)."""

    def __init__(self, url: str, doc: RosterDoc, catalog: Catalog, strategy: str = "auto") -> None:
        self.url = url
        self.sqlite = make_url(url).get_backend_name() == "sqlite"
        self.strategy = strategy if strategy != "auto" else ("copy" if self.sqlite else "wipe")
        if self.strategy == "copy" and not self.sqlite:
            raise ValueError("the copy strategy is for SQLite files")
        self.engine: Engine | None = None
        self._prepare(doc, catalog)

    def _prepare(self, doc: RosterDoc, catalog: Catalog) -> None:
        engine = make_engine(self.url)
        upgrade(engine)
        db = Database(engine)
        with db.transaction() as session:
            roster.apply_roster(doc, session=session)
            for playbook in catalog:
                catalog.pin(playbook, session=session, now=DAY_ONE)
        if self.strategy == "copy":
            engine.dispose()  # checkpoints the WAL into the file
            path = Path(str(make_url(self.url).database))
            self._template = path.with_name(path.stem + "-template.db")
            shutil.copyfile(path, self._template)
            self._work = path
        else:
            self.engine = engine

    def fresh(self) -> Engine:
        """An engine on a database holding only the roster and the playbooks."""
        if self.strategy == "copy":
            if self.engine is not None:
                self.engine.dispose()
            for suffix in ("-wal", "-shm"):
                Path(f"{self._work}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(self._template, self._work)
            self.engine = make_engine(self.url)
            return self.engine
        assert self.engine is not None
        with self.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name not in KEPT:
                    conn.execute(delete(table))
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


class _DestroyedTasks(logging.Filter):
    """A stopped worker closes its sender with sends still parked at the gateway: asyncio
    says so when their tasks are collected. Expected here; not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Task was destroyed but it is pending" not in record.getMessage()


@dataclass
class Rig:
    settings: Settings
    catalog: Catalog
    context: Context
    gateway: Gateway
    store: Store

    @classmethod
    def build(cls, database_url: str, *, strategy: str = "auto") -> Rig:
        settings = sim_settings(database_url)
        asyncio_log = logging.getLogger("asyncio")
        if not any(isinstance(f, _DestroyedTasks) for f in asyncio_log.filters):
            asyncio_log.addFilter(_DestroyedTasks())
        doc = sim_roster()
        departments, roles, people = roster.ids_in_doc(doc)
        catalog = Catalog.from_paths(
            [PLAYBOOKS], RosterRefs(departments=departments, roles=roles, people=people)
        )
        context = Context.build(settings, catalog)
        gateway = Gateway(FrozenClock(DAY_ONE))
        store = Store(database_url, doc, catalog, strategy)
        return cls(settings, catalog, context, gateway, store)

    def sender(self) -> SimSender:
        """A worker's own Sender, on the fake gateway."""
        return SimSender(self.gateway, self.context.send_policy())

    def close(self) -> None:
        self.gateway.release_due()
        self.gateway.wait_quiet(5.0)
        self.store.close()
