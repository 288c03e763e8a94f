"""A scenario: the worst day as a seeded schedule of events.

Everything random is drawn here, from ``random.Random(seed)``, before anything runs: which
playbooks are declared and how, how each address behaves, which worker is killed or frozen,
when the database goes away, who acknowledges what. Choices that depend on the state of the
run (which open page is acknowledged) are stored as numbers and resolved against that state,
in a deterministic order. A scenario's events can be replayed in part (minimising).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from incident.roster_file import RosterDoc
from incident.sim.gateway import PROFILES, Profile
from incident.sim.world import DAY_ONE, DRILL_CHANNEL, PUBLIC_CHANNEL

SEVERITIES = ("I", "II", "III", "IV")
SEVERITY_WEIGHTS = (1, 2, 4, 3)  # most incidents are minor; a severe one pages far more
PROFILE_WEIGHTS = {
    "ok": 60,
    "flaky": 12,
    "throttled": 8,
    "down": 4,
    "broken": 5,
    "timeouts": 5,
    "slow": 4,
    "hangs": 2,
}
EVENT_WEIGHTS = {
    "tick": 30,
    "contend": 8,
    "declare": 1,
    "ack": 10,
    "ack_at_deadline": 5,
    "race_ack": 4,
    "decline": 3,
    "change": 4,
    "drop_fact": 2,
    "resolve": 2,
    "contain": 1,
    "publish": 3,
    "fire_manual": 2,
    "kill": 3,
    "stop": 2,
    "freeze": 3,
    "stall": 2,
    "outage": 3,
    "glitch": 2,
    "jump": 3,
}
MAX_INCIDENTS = 2
RESOLVE_AT_END = 0.35


@dataclass(frozen=True)
class Event:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return " ".join([self.kind, *(f"{k}={v}" for k, v in self.args.items())])


@dataclass
class Scenario:
    seed: int
    start: datetime
    workers: int
    profiles: dict[str, Profile]
    events: list[Event]
    resolve_at_end: bool = False
    answering: float = 0.75  # how likely a page is answered at its first level
    day_minutes: int = 30  # settling waits for work due this soon (pages: however long)

    def with_events(self, events: list[Event]) -> Scenario:
        return replace(self, events=list(events))


def addresses(doc: RosterDoc) -> list[str]:
    found = [contact.url for person in doc.people for contact in person.contacts]
    return [*found, PUBLIC_CHANNEL, DRILL_CHANNEL]


def _profiles(rng: random.Random, doc: RosterDoc) -> dict[str, Profile]:
    names = list(PROFILE_WEIGHTS)
    weights = list(PROFILE_WEIGHTS.values())
    chosen: dict[str, Profile] = {}
    for address in addresses(doc):
        name = rng.choices(names, weights)[0]
        profile = replace(
            PROFILES[name],
            retry_after=rng.choice([1.0, 5.0, 30.0, 90.0]),
            delay=rng.choice([2.0, 10.0, 20.0]),
        )
        if name != "ok":
            chosen[address] = profile
    return chosen


def _declare(rng: random.Random, playbooks: list[str], doc: RosterDoc) -> Event:
    drill = rng.random() < 0.3
    args: dict[str, Any] = {
        "playbook": rng.choice(playbooks),
        "severity": rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0],
        "mode": "drill" if drill else "live",
        "facts": rng.randrange(1 << 30),
    }
    if drill:
        pool = [d.id for d in doc.departments] + [p.id for p in doc.people]
        args["participants"] = sorted(rng.sample(pool, rng.randint(1, 4)))
    return Event("declare", args)


def _event(kind: str, rng: random.Random, playbooks: list[str], doc: RosterDoc) -> Event:
    pick = rng.randrange(1 << 16)
    if kind == "declare":
        return _declare(rng, playbooks, doc)
    if kind == "tick":
        return Event(kind, {"seconds": rng.choice([1, 5, 15, 31, 60, 120, 301])})
    if kind == "contend":
        return Event(kind, {"limits": [rng.randint(1, 8) for _ in range(4)]})
    if kind == "ack":
        return Event(kind, {"page": pick, "by": rng.choice(["recipient", "duty", "link"])})
    if kind in ("ack_at_deadline", "race_ack", "decline"):
        return Event(kind, {"page": pick})
    if kind == "change":
        severity = rng.choice([None, *SEVERITIES])
        return Event(
            kind, {"incident": pick, "severity": severity, "facts": rng.randrange(1 << 30)}
        )
    if kind in ("drop_fact", "resolve", "contain", "publish"):
        return Event(kind, {"incident": pick, "which": rng.randrange(1 << 16)})
    if kind == "fire_manual":
        return Event(kind, {"incident": pick, "stage": rng.randrange(1 << 16)})
    if kind in ("kill", "stop"):
        return Event(kind, {"worker": pick, "restart": rng.random() < 0.8})
    if kind in ("freeze", "stall"):
        return Event(kind, {"worker": pick, "seconds": rng.choice([20, 45, 120, 600])})
    if kind == "outage":
        if rng.random() < 0.5:
            return Event(kind, {"worker": pick, "calls": rng.randint(1, 6)})
        return Event(kind, {"worker": "all", "seconds": rng.choice([10, 60, 300])})
    if kind == "glitch":
        return Event(kind, {"worker": pick, "calls": rng.randint(1, 3)})
    if kind == "jump":
        return Event(kind, {"minutes": rng.choice([10, 30, 60, 180])})
    raise ValueError(kind)


def generate(seed: int, playbooks: list[str], doc: RosterDoc) -> Scenario:
    rng = random.Random(seed)
    start = DAY_ONE + timedelta(hours=rng.randrange(24 * 14), minutes=rng.randrange(60))
    workers = rng.randint(2, 4)
    profiles = _profiles(rng, doc)
    events = [_declare(rng, playbooks, doc)]
    kinds = list(EVENT_WEIGHTS)
    weights = list(EVENT_WEIGHTS.values())
    declared = 1
    for _ in range(rng.randint(6, 16)):
        kind = rng.choices(kinds, weights)[0]
        if kind == "declare":
            if declared >= MAX_INCIDENTS:
                kind = "tick"
            declared += 1
        events.append(_event(kind, rng, playbooks, doc))
    resolve = rng.random() < RESOLVE_AT_END
    answering = rng.choice([0.5, 0.75, 0.9, 0.9])
    day = rng.choice([0, 0, 30])
    return Scenario(seed, start, workers, profiles, events, resolve, answering, day)
