"""Creating one page level for N people: pages, recipients, messages, deliveries, jobs.

    .venv/bin/python bench/paging_create.py [--people 1000] [--runs 7] [--profile]

In-process, no network, no worker: a migrated SQLite database in a temp dir with a department
of N people all on duty (bench/paging_common.roster_doc), the shipped `mass-delay` playbook's
pages aimed at it, and `paging.open_page` timed inside the transaction that a stage firing
uses (then rolled back, so every run starts alike). Target (issue #15): well under 100 ms for
1,000 people. Prints p50 / max and writes bench/results/paging_create-<UTC>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    args = parser.parse_args(argv)

    from paging_common import DEPARTMENT, roster_doc

    from incident import paging, response, roster
    from incident.catalog import Catalog
    from incident.clock import FrozenClock
    from incident.db import Database
    from incident.handlers import Context
    from incident.migrate import upgrade
    from incident.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        db = Database.from_url(url)
        upgrade(db.engine)
        with db.transaction() as session:
            doc = roster_doc(args.people, "json://127.0.0.1:9", "b", 0)
            roster.apply_roster(doc, session=session)
        settings = Settings(database_url=url, playbooks_dir=REPO / "playbooks")
        catalog = Catalog.from_paths([REPO / "playbooks"])
        ctx = Context.build(settings, catalog)
        clock = FrozenClock(datetime.now(UTC))
        with db.transaction() as session:
            incident = response.declare(
                session=session,
                now=clock.now(),
                catalog=catalog,
                playbook_id="mass-delay",
                severity="III",
                title="Line G signal fault",
                facts={"line": "G", "expected_delay_min": 90, "trains_affected": 40},
                actor="bench",
            )
            incident_id = incident.id
        playbook = catalog.get("mass-delay")
        times = []
        for run in range(args.runs + (1 if args.profile else 0)):
            clock.advance(timedelta(minutes=30))  # outside the flood window of the last run
            with db.transaction() as session:
                incident = response.get_incident(incident_id, session=session)
                chain = paging.chain_for("department", DEPARTMENT, session=session)
                profiler = cProfile.Profile() if args.profile and run == args.runs else None
                start = time.perf_counter()
                if profiler:
                    profiler.enable()
                page = paging.open_page(
                    incident,
                    playbook,
                    kind="department",
                    target=DEPARTMENT,
                    chain=chain,
                    template="activate",
                    ack_within=timedelta(minutes=5),
                    origin=f"bench:{run}",
                    stage_key="activate:0",
                    session=session,
                    now=clock.now(),
                    policy=ctx.policy,
                )
                session.flush()
                took = time.perf_counter() - start
                if profiler:
                    profiler.disable()
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
                else:
                    times.append(took * 1000)
                assert page is not None and len(page.recipients) == args.people
                session.rollback()
        db.dispose()
    result = {
        "name": "paging_create",
        "people": args.people,
        "runs": args.runs,
        "ms": {"p50": round(statistics.median(times), 1), "max": round(max(times), 1)},
        "target_ms": 100,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"{args.people} people: p50 {result['ms']['p50']} ms, max {result['ms']['max']} ms")
    out = REPO / "bench" / "results" / f"paging_create-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
