"""Engines, sessions and transactions. SQLite gets WAL, foreign keys and a busy timeout;
PostgreSQL a lock timeout of the same length, so a locked database is an error (503) in
bounded time rather than a request that hangs."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from incident.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

SQLITE_BUSY_MS = 10_000  # also PostgreSQL's lock_timeout


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_ms: int = SQLITE_BUSY_MS) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # One writer at a time: take the write lock up front so that a read-then-write
    # transaction never fails half-way with SQLITE_BUSY. Readers pass DEFERRED.
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, lock_wait_ms: int = SQLITE_BUSY_MS, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; SQLite files get their folder and pragmas.

    ``lock_wait_ms`` bounds how long a statement waits for a lock (SQLite's busy timeout,
    PostgreSQL's ``lock_timeout``) before it fails with an OperationalError.
    """
    parsed = make_url(url)
    # Statement parameters carry personal data (contacts, sealed or not): never in a log line
    # or an error message, whatever the log level.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_ms=lock_wait_ms))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and "options" not in parsed.query:
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("options", f"-c lock_timeout={int(lock_wait_ms)}")
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def database_unavailable(exc: BaseException) -> bool:
    """Locked, busy, unreachable, restarting or out of connections: worth retrying soon."""
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def locked(session: Session, model: type[T], ident: Any) -> T | None:
    """Read a row again and lock it until the transaction ends, before deciding a transition
    on its state: ``SELECT ... FOR UPDATE`` on PostgreSQL, so that a concurrent transition of
    the same row waits and then sees this one's result (SQLite's ``BEGIN IMMEDIATE`` has
    serialised writers already). What the session changed and did not flush goes first; the
    object in the session is refreshed from the row (None when the row is gone)."""
    session.flush()
    return session.get(model, ident, with_for_update={"of": model}, populate_existing=True)


AUDIT_KEYS_INFO = "incident.audit_keys"


class Database:
    """An engine with its session factories: one for writes, one for reads."""

    def __init__(self, engine: Engine, *, lock_wait_ms: int = SQLITE_BUSY_MS) -> None:
        self.engine = engine
        self._write = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer. Threads of this process queue for it here, woken the moment
        # it is free, rather than in SQLite's busy handler, which polls every 100 ms and can
        # starve one thread (the embedded worker) while others keep taking the lock.
        self._writer = threading.RLock() if is_sqlite(engine) else None
        self._lock_wait = lock_wait_ms / 1000
        read_engine = engine.execution_options(sqlite_begin="DEFERRED")
        self._read = sessionmaker(read_engine, expire_on_commit=False)
        # The timeline's audit keys (incident.timeline.AuditKeys), handed to every session
        # in ``session.info``; None: the development keys.
        self.audit_keys: object | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        wait = int(kwargs.get("lock_wait_ms", SQLITE_BUSY_MS))
        return cls(make_engine(url, **kwargs), lock_wait_ms=wait)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: commits on exit, rolls back on error."""
        if self._writer is None:
            with self._write() as session, session.begin():
                session.info[AUDIT_KEYS_INFO] = self.audit_keys
                yield session
            return
        if not self._writer.acquire(timeout=self._lock_wait):
            raise PoolTimeout("waited too long for the database's write lock")
        try:
            with self._write() as session, session.begin():
                session.info[AUDIT_KEYS_INFO] = self.audit_keys
                yield session
        finally:
            self._writer.release()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only transaction (never commits); loaded objects stay readable after."""
        with self._read() as session:
            session.info[AUDIT_KEYS_INFO] = self.audit_keys
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def wait_until_reachable(
    db: Database,
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """At start-up, wait until the database answers (it may still be starting, or
    restarting): retry every 0.5 s, doubling to 5 s, for up to ``timeout`` seconds, then
    raise the last error. Returns how many tries failed. Without this, a process started
    before its database exits at once and a restart policy turns that into a crash loop."""
    deadline = monotonic() + timeout
    failures = 0
    while True:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            if not database_unavailable(exc) or monotonic() >= deadline:
                raise
            failures += 1
            cause = getattr(exc, "orig", None) or exc
            log.warning("database_waiting", error_type=type(cause).__name__, failed_tries=failures)
            sleep(min(0.5 * 2 ** min(failures - 1, 4), 5.0, max(0.0, deadline - monotonic())))
            continue
        if failures:
            log.info("database_reachable", failed_tries=failures)
        return failures
