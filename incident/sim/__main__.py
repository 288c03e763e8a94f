"""``python -m incident.sim --seeds 1000 [--start N] [--database URL]``: run scenarios.

``--seed N -v`` replays one seed and prints its whole trace; ``--minimise`` shrinks each
failing seed's schedule to the events that still break the same invariant.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from incident.logs import configure_logging
from incident.sim.batch import explain, minimise, run_scenario, run_seeds, scenario_for
from incident.sim.runner import Result
from incident.sim.world import Rig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m incident.sim", description=__doc__)
    p.add_argument("--seeds", type=int, default=100, help="how many scenarios (default 100)")
    p.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seed", type=int, help="run this one seed only")
    p.add_argument(
        "--database",
        help="a throwaway database URL (its scenario tables are emptied before every seed); "
        "default: a SQLite file in a temporary folder",
    )
    p.add_argument("--strategy", choices=["auto", "copy", "wipe"], default="auto")
    p.add_argument("--minimise", action="store_true", help="shrink each failing seed's events")
    p.add_argument("-v", "--verbose", action="store_true", help="print every trace in full")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging("console", "ERROR")
    shm = Path("/dev/shm")
    scratch = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="incident-sim-", dir=scratch) as folder:
        url = args.database or f"sqlite:///{Path(folder) / 'sim.db'}"
        rig = Rig.build(url, strategy=args.strategy)
        try:
            return _run(rig, args)
        finally:
            rig.close()


def _show(result: Result, verbose: bool) -> None:
    if verbose:
        print(f"seed {result.seed}: {result.stats}")
        for line in result.trace:
            print(f"  | {line}")
        for violation in result.violations:
            print(f"  VIOLATED {violation}")
    elif result.violations:
        print(explain(result), flush=True)


def _run(rig: Rig, args: argparse.Namespace) -> int:
    seeds = [args.seed] if args.seed is not None else range(args.start, args.start + args.seeds)
    report = run_seeds(rig, seeds, lambda r: _show(r, args.verbose))
    print(report.summary())
    if args.minimise:
        for result in report.failed:
            scenario = scenario_for(rig, result.seed)
            for name in sorted({v.invariant for v in result.violations}):
                small = minimise(rig, scenario, name)
                print(
                    f"seed {result.seed}, {name}: {len(small.events)} of "
                    f"{len(scenario.events)} events suffice:"
                )
                for event in small.events:
                    print(f"    {event}")
                replay = run_scenario(rig, small)
                print(explain(replay, trace_lines=60))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
