"""The simulator (#14) over many seeds: scenarios per second and violations by invariant.

    .venv/bin/python bench/sim.py [--seeds 10000] [--start 0] [--database URL]
        [--quiet-wait 60] [--every 500]

Runs ``incident.sim`` in this process (it drives the engine itself: no server), on a SQLite
file in a temporary folder (on /dev/shm when there is one) unless ``--database`` names a
throwaway database (PostgreSQL: its scenario tables are emptied before each seed). Prints a
line every ``--every`` seeds, then the summary: scenarios/s, seeds failing each invariant
(with the first such seed: replay it with ``python -m incident.sim --seed N -v``), and which
of those the test's allow-list (tests/sim/test_simulator.py) knows. Writes one JSON line to
``bench/results/sim-<UTC timestamp>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _server import git_commit, machine, utc_stamp, wait_for_quiet, write_result

from incident.logs import configure_logging
from incident.sim.batch import Report, run_seed
from incident.sim.world import Rig
from tests.sim.test_simulator import KNOWN_DEFECTS

NAME = "sim"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, default=10_000)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--database", help="a throwaway database URL (default: a SQLite file)")
    p.add_argument("--quiet-wait", type=float, default=60.0)
    p.add_argument("--every", type=int, default=500, help="print progress every N seeds")
    args = p.parse_args()
    configure_logging("console", "ERROR")
    quiet = wait_for_quiet(args.quiet_wait)
    shm = Path("/dev/shm")
    scratch = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="incident-bench-sim-", dir=scratch) as folder:
        url = args.database or f"sqlite:///{Path(folder) / 'sim.db'}"
        rig = Rig.build(url)
        report = Report()
        cpu0, t0 = time.process_time(), time.perf_counter()
        try:
            for seed in range(args.start, args.start + args.seeds):
                report.add(run_seed(rig, seed))
                report.seconds = time.perf_counter() - t0
                if report.seeds % args.every == 0:
                    print(
                        f"{report.seeds} seeds, {report.rate:.1f}/s, "
                        f"{len(report.failed)} with violations",
                        flush=True,
                    )
        finally:
            dialect = rig.store.engine.dialect.name if rig.store.engine else "sqlite"
            rig.close()
    cpu = time.process_time() - cpu0
    print(report.summary())
    for name in sorted(report.by_invariant):
        known = KNOWN_DEFECTS.get(name)
        print(f"  {name}: {'known: ' + known if known else 'NOT in the allow-list'}")
    first: dict[str, int] = {}
    for result in report.failed:
        for v in result.violations:
            first.setdefault(v.invariant, result.seed)
    result: dict[str, Any] = {
        "name": NAME,
        "commit": git_commit("HEAD"),
        "database": dialect,
        "seeds": report.seeds,
        "start": args.start,
        "seconds": round(report.seconds, 1),
        "scenarios_per_second": round(report.rate, 2),
        "cpu_seconds": round(cpu, 1),
        "failed_seeds": len(report.failed),
        "seeds_by_invariant": dict(report.by_invariant),
        "first_seed_by_invariant": first,
        "machine": {**machine(), "quiet": quiet},
    }
    print(f"result: {write_result(NAME, utc_stamp(), result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
