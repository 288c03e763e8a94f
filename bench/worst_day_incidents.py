"""Worst day (#15): six live incidents within a minute paging the same on-duty people.

    PYTHONPATH=$PWD /work/main/.venv/bin/python bench/worst_day_incidents.py --commit REV \
        [--incidents 6] [--every 10] [--wait-last 20] [--keep]

Starts the real service (`incident serve`, embedded worker) on a SQLite file with the demo
roster, and through the API declares --incidents live `mass-delay` incidents, one every
--every seconds (severity III, 45 min: each one's `activate` stage pages the coordination and
inquiry sections and the duty director, the same people every time, through the demo
roster's `inbox://` contacts, which deliver at once). For each incident: its first page
delivered, min(`deliveries.finished_at`) − `declared_at`, and its pages by status (a page held
back by the flood limit, 5 pages per address per 15 minutes, is `held` until a bundle goes).
It waits at most --wait-last seconds after the last declaration. Target: every incident's
first page within 2 s of its declaration.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REPO,
    Server,
    bench_env,
    git_commit,
    log_summary,
    machine,
    prepare,
    source_tree,
    stats_ms,
    utc_stamp,
    wait_for_quiet,
    write_result,
)
from worst_day_common import declare, delay_facts, first_pages_delivered, incident_pages, load_now

NAME = "worst_day_incidents"
TARGET_MS = 2000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=6)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between declarations")
    parser.add_argument(
        "--wait-last", type=float, default=20.0, help="wait for pages after the last, at most"
    )
    parser.add_argument("--commit", default=None, help="benchmark this commit (git archive)")
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, log)")
    args = parser.parse_args(argv)

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-incidents-"))
    src = source_tree(args.commit, tmp)
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    env = bench_env(f"sqlite:///{tmp / 'incident.db'}", src / "playbooks", src)
    engine = create_engine(f"sqlite:///{tmp / 'incident.db'}")
    server = Server(tmp, env, tmp / "server.log")
    ok = False
    declared: list[dict[str, Any]] = []
    quiet: dict[str, Any] = {}
    load_before = load_now()
    t0 = t_end = 0.0
    try:
        token = prepare(tmp, env)
        quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else {}
        load_before = load_now()
        server.start()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
            t0 = time.time() + 0.5
            deadline = t0 + (args.incidents - 1) * args.every + args.wait_last
            n = 0
            while True:
                now = time.time()
                if server.proc is not None and server.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {server.proc.returncode}")
                if n < args.incidents and now >= t0 + n * args.every:
                    d = declare(http, "mass-delay", "III", f"Same people {n}", delay_facts(n))
                    d["at_s"] = round(d["sent"] - t0, 2)
                    declared.append(d)
                    n += 1
                pending = [d["id"] for d in declared if "seen" not in d]
                if pending:
                    seen = first_pages_delivered(engine, pending)
                    stamp_now = time.time()
                    for d in declared:
                        if d["id"] in seen and "seen" not in d:
                            d["seen"] = stamp_now
                            print(
                                f"  incident {len([x for x in declared if 'seen' in x])}"
                                f" ({d['id']}): first page seen committed"
                                f" {(stamp_now - d['answered_201']) * 1000:,.0f} ms after the 201",
                                flush=True,
                            )
                if n == args.incidents and all("seen" in d for d in declared):
                    break
                if now >= deadline:
                    print(f"stopped waiting {args.wait_last:g} s after the last", flush=True)
                    break
                time.sleep(0.05)
            time.sleep(1.0)  # the rest of the last incident's pages
            t_end = time.time()
        ok = True
    finally:
        server.stop()
        log = log_summary(server.log_path)
        if not ok:
            print(f"server log tail ({server.log_path}):\n{server.log_tail()}", file=sys.stderr)
            print(f"kept {tmp}", file=sys.stderr)

    pages = incident_pages(engine, declared)
    engine.dispose()
    for p, d in zip(pages, declared, strict=True):
        p["at_s"] = d["at_s"]
    firsts = [p["first_page_ms"] for p in pages if p["first_page_ms"] is not None]
    cpu = server.cpu
    result: dict[str, Any] = {
        "benchmark": NAME,
        "at": stamp,
        "backend": "sqlite",
        "source": source,
        "incidents_declared": len(declared),
        "every_s": args.every,
        "incidents": pages,
        "first_page_ms": stats_ms(firsts),
        "first_page_missing": sum(1 for p in pages if p["first_page_ms"] is None),
        "within_target": sum(1 for x in firsts if x < TARGET_MS),
        "meets_target": len(firsts) == len(declared) == args.incidents
        and all(x < TARGET_MS for x in firsts),
        "server_cpu_percent": cpu.percent(t0, t_end) if cpu else None,
        "other_processes_cpu_percent": cpu.others_percent(t0, t_end) if cpu else None,
        "load_before": load_before,
        "load_after": load_now(),
        "server_exit_code": server.exit_code,
        "server_log": log,
        "machine": {**machine(), **quiet},
        "target": "each incident's first page delivered < 2 s after its declaration",
    }
    path = write_result(NAME, stamp, result)
    print(f"\n{len(declared)} live incidents, one every {args.every:g} s, same people ({source}):")
    for i, p in enumerate(pages):
        print(
            f"  #{i + 1} at +{p['at_s']:g} s: first page {p['first_page_ms']} ms after"
            f" declared_at ({p['first_page_after_201_ms']} ms after the 201), last"
            f" {p['last_page_ms']} ms; pages {p['pages_by_status']}"
        )
    verdict = "meets" if result["meets_target"] else "MISSES"
    print(
        f"  first page p50 {result['first_page_ms'].get('p50')} ms, max"
        f" {result['first_page_ms'].get('max')} ms, {result['within_target']}/{args.incidents}"
        f" within 2 s; target: {verdict}"
    )
    print(
        f"  CPU: server {result['server_cpu_percent']}%, other processes"
        f" {result['other_processes_cpu_percent']}%; load {load_before} -> {result['load_after']}"
    )
    print(
        f"  server log: {log.get('lines_by_level')}, warnings/errors:"
        f" {log.get('warning_error_events') or 'none'}"
    )
    print(f"  results: {path.relative_to(REPO)}")
    if args.keep or not ok:
        print(f"  kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
