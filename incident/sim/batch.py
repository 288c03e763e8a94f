"""Many seeds in a row, their report, and shrinking a failing seed's schedule."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from incident.sim.runner import Result, Sim
from incident.sim.scenario import Event, Scenario, generate
from incident.sim.world import Rig, sim_roster


def scenario_for(rig: Rig, seed: int) -> Scenario:
    return generate(seed, rig.catalog.ids(), sim_roster())


def run_scenario(rig: Rig, scenario: Scenario) -> Result:
    return Sim(rig, scenario).run()


def run_seed(rig: Rig, seed: int) -> Result:
    return run_scenario(rig, scenario_for(rig, seed))


@dataclass
class Report:
    seeds: int = 0
    seconds: float = 0.0
    failed: list[Result] = field(default_factory=list)
    by_invariant: Counter[str] = field(default_factory=Counter)  # seeds failing each

    @property
    def rate(self) -> float:
        return self.seeds / self.seconds if self.seconds else 0.0

    def add(self, result: Result) -> None:
        self.seeds += 1
        names = {v.invariant for v in result.violations}
        self.by_invariant.update(names)
        if names:
            self.failed.append(result)

    def summary(self) -> str:
        lines = [
            f"{self.seeds} scenarios in {self.seconds:.1f} s: {self.rate:.1f} scenarios/s; "
            f"{len(self.failed)} with violations"
        ]
        for name, n in sorted(self.by_invariant.items()):
            first = next(r.seed for r in self.failed if name in {v.invariant for v in r.violations})
            lines.append(f"  {name}: {n} seed(s), first seed {first}")
        return "\n".join(lines)


def run_seeds(
    rig: Rig, seeds: Iterable[int], progress: Callable[[Result], None] | None = None
) -> Report:
    report = Report()
    started = time.perf_counter()
    for seed in seeds:
        result = run_seed(rig, seed)
        report.add(result)
        if progress is not None:
            progress(result)
    report.seconds = time.perf_counter() - started
    return report


def explain(result: Result, *, trace_lines: int = 40) -> str:
    """The seed, the violated invariants and the tail of its trace, to replay with
    ``python -m incident.sim --seed N -v``."""
    lines = [f"seed {result.seed}: replay with `python -m incident.sim --seed {result.seed} -v`"]
    lines += [f"  VIOLATED {v}" for v in result.violations[:10]]
    if len(result.violations) > 10:
        lines.append(f"  ... and {len(result.violations) - 10} more")
    shown = result.trace[-trace_lines:]
    if len(result.trace) > len(shown):
        lines.append(f"  (last {len(shown)} of {len(result.trace)} trace lines)")
    lines += [f"  | {line}" for line in shown]
    return "\n".join(lines)


def minimise(rig: Rig, scenario: Scenario, invariant: str, *, budget: int = 200) -> Scenario:
    """Drop events while the seed still violates ``invariant`` (one at a time, from the
    end, repeated until nothing more can go or the budget of runs is spent)."""

    def fails(events: list[Event]) -> bool:
        result = run_scenario(rig, scenario.with_events(events))
        return any(v.invariant == invariant for v in result.violations)

    events = list(scenario.events)
    runs = 0
    changed = True
    while changed and runs < budget:
        changed = False
        # halves first, then single events
        for size in (max(1, len(events) // 2), max(1, len(events) // 4), 1):
            i = len(events) - size
            while i >= 0 and runs < budget:
                candidate = events[:i] + events[i + size :]
                runs += 1
                if candidate and fails(candidate):
                    events = candidate
                    changed = True
                i -= size
    return scenario.with_events(events)
