"""What the simulator remembers while a scenario runs, for the invariants and the trace."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class SimIncident:
    id: str
    index: int
    playbook: str
    mode: str
    participants: list[str]
    resolved_by_scenario: bool = False


@dataclass
class Ledger:
    start: datetime
    trace: list[str] = field(default_factory=list)
    incidents: list[SimIncident] = field(default_factory=list)
    acks: dict[str, datetime] = field(default_factory=dict)  # page id -> acked_at committed
    # delivery id -> events (kill, freeze, stall, outage) that left its outcome unrecorded
    # while it was in flight: each may let the gateway accept it once more
    uncertain: Counter[int] = field(default_factory=Counter)
    # delivery id -> what happened to workers while it was in flight (for the reports)
    history: dict[int, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # unexpected exceptions out of rounds
    notes: dict[str, object] = field(default_factory=dict)

    def log(self, now: datetime, line: str) -> None:
        offset = int((now - self.start).total_seconds())
        sign = "-" if offset < 0 else "+"
        offset = abs(offset)
        stamp = f"t{sign}{offset // 3600:02d}:{offset // 60 % 60:02d}:{offset % 60:02d}"
        self.trace.append(f"{stamp} {line}")

    def happened(self, delivery_ids: list[int], what: str) -> None:
        for delivery_id in delivery_ids:
            self.history.setdefault(delivery_id, []).append(what)

    def incident(self, pick: int, *, open_only: bool = False) -> SimIncident | None:
        pool = [i for i in self.incidents if not (open_only and i.resolved_by_scenario)]
        return pool[pick % len(pool)] if pool else None
