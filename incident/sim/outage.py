"""A worker's view of the database that can be taken away for a while."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import InternalError, OperationalError
from sqlalchemy.orm import Session

from incident.clock import Clock
from incident.db import Database


class SimulatedOutage(Exception):
    """What the driver would say: the server is gone."""


class SimulatedGlitch(Exception):
    """An error that is not an outage (the server failed one transaction at its commit)."""


class FlakyDatabase(Database):
    """The same engine; ``transaction()`` and ``reading()`` raise OperationalError (what
    incident.db.database_unavailable() recognises) during an outage: for the next ``calls``
    calls, or until the simulated clock reaches ``until``. A glitch is another kind of
    failure: the next ``glitches`` transactions raise InternalError at their commit."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        super().__init__(engine)
        self.clock = clock
        self.fail_calls = 0
        self.fail_until: datetime | None = None
        self.failures = 0
        self.glitches = 0  # the next transactions that fail at their commit (not an outage)

    def down_for(self, *, calls: int = 0, until: datetime | None = None) -> None:
        self.fail_calls = max(self.fail_calls, calls)
        if until is not None and (self.fail_until is None or until > self.fail_until):
            self.fail_until = until

    def is_down(self) -> bool:
        return self.fail_calls > 0 or (
            self.fail_until is not None and self.clock.now() < self.fail_until
        )

    def _check(self) -> None:
        if self.fail_calls > 0:
            self.fail_calls -= 1
        elif self.fail_until is None or self.clock.now() >= self.fail_until:
            return
        self.failures += 1
        raise OperationalError("BEGIN", None, SimulatedOutage("server closed the connection"))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        self._check()
        with super().transaction() as session:
            yield session
            if self.glitches > 0:  # the work is done and rolls back
                self.glitches -= 1
                raise InternalError("COMMIT", None, SimulatedGlitch("internal error at commit"))

    @contextmanager
    def reading(self) -> Iterator[Session]:
        self._check()
        with super().reading() as session:
            yield session
