"""Worst day (#15): a new incident's first page while a broadcast drains through a slow gateway.

    PYTHONPATH=$PWD /work/main/.venv/bin/python bench/worst_day_surge.py --commit REV \
        [--n 6000] [--gateway-ms 2000] [--declare-at 10,25,40] [--max-seconds 240] [--keep]

Starts the real service (`incident serve`, embedded worker, production defaults: 256 sends in
flight) on a SQLite file, with ``INCIDENT_SMS_GATEWAY`` pointing at a loopback receiver in
this process that answers each message after --gateway-ms. Through the API: declares a
`passenger-stranding` incident, opens a passenger group, uploads a manifest of --n passengers
(each with their own number) and starts a broadcast to it. Then, at each --declare-at second
after the broadcast's 202, declares a new live `mass-delay` incident (severity III, 45 min:
it pages the coordination and inquiry sections and the duty director through the demo
roster's `inbox://` contacts, which deliver at once) and measures, from the database, its first
page delivered: min(`deliveries.finished_at`) of its pages − its `declared_at` (also after the
API's 201, and when this process first saw it committed, polling every 50 ms). Target: < 2 s.

It waits for the broadcast to finish (bounded by --max-seconds) and checks at the receiver
that every passenger got exactly one message (by ``Idempotency-Key``), and in the database that
every recipient's delivery is delivered with one attempt. Also reported: the broadcast's
messages per 5 s, the most messages the receiver held at once (the sends the worker gave the
broadcast), the server's CPU and the server log's warnings.
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
from worst_day_common import (
    Gateway,
    broadcast_attempts,
    broadcast_progress,
    declare,
    delay_facts,
    exactly_once,
    first_pages_delivered,
    group_with_manifest,
    incident_pages,
    load_now,
    max_concurrent,
    start_broadcast,
    stranding_facts,
)

NAME = "worst_day_surge"
TARGET_MS = 2000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000, help="passengers in the broadcast")
    parser.add_argument("--gateway-ms", type=float, default=2000.0, help="gateway answers after")
    parser.add_argument(
        "--declare-at",
        default="10,25,40",
        help="seconds after the broadcast started to declare a new incident, comma-separated",
    )
    parser.add_argument("--max-seconds", type=float, default=240.0, help="bound of the run")
    parser.add_argument("--commit", default=None, help="benchmark this commit (git archive)")
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, log)")
    args = parser.parse_args(argv)
    declare_at = sorted(float(x) for x in args.declare_at.split(",") if x.strip())

    from cryptography.fernet import Fernet

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-surge-"))
    src = source_tree(args.commit, tmp)
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    gateway = Gateway({"/sms": args.gateway_ms / 1000})
    env = bench_env(
        f"sqlite:///{tmp / 'incident.db'}",
        src / "playbooks",
        src,
        INCIDENT_DATA_KEYS=Fernet.generate_key().decode(),
        INCIDENT_SMS_GATEWAY=f"json://{gateway.host}/sms?:to={{phone}}",
    )
    engine = create_engine(f"sqlite:///{tmp / 'incident.db'}")
    server = Server(tmp, env, tmp / "server.log")
    ok = False
    timed_out = False
    declared: list[dict[str, Any]] = []
    progress_5s: list[dict[str, Any]] = []
    load_before = load_now()
    quiet: dict[str, Any] = {}
    bc: dict[str, Any] = {}
    t_done: float | None = None
    try:
        token = prepare(tmp, env)
        quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else {}
        load_before = load_now()
        gateway.start()
        server.start()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as http:
            host = declare(
                http, "passenger-stranding", "III", "Bench stranding", stranding_facts(args.n)
            )
            group = group_with_manifest(http, host["id"], args.n, "39")
            time.sleep(1.0)  # let the declaration's own pages and jobs settle
            bc = start_broadcast(http, group)
            t0 = bc["answered_202"]
            print(
                f"broadcast {bc['id']} to {args.n} passengers started; gateway answers after"
                f" {args.gateway_ms:g} ms; declaring at +{args.declare_at} s ...",
                flush=True,
            )
            deadline = t0 + args.max_seconds
            todo = list(declare_at)
            next_bin = t0 + 5
            last_poll_db = 0.0
            finished = 0
            while True:
                now = time.time()
                if server.proc is not None and server.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {server.proc.returncode}")
                if todo and now >= t0 + todo[0]:
                    at = todo.pop(0)
                    _got, distinct = gateway.count(f"bc:{bc['id']}:")
                    d = declare(
                        http,
                        "mass-delay",
                        "III",
                        f"Surge {len(declared)}",
                        delay_facts(len(declared)),
                    )
                    d.update(at_s=at, broadcast_received_before=distinct)
                    declared.append(d)
                pending = [d["id"] for d in declared if "seen" not in d]
                if pending:
                    seen = first_pages_delivered(engine, pending)
                    stamp_now = time.time()
                    for d in declared:
                        if d["id"] in seen and "seen" not in d:
                            d["seen"] = stamp_now
                            print(
                                f"  +{d['at_s']:g} s: first page of {d['id']} seen"
                                f" {(stamp_now - d['answered_201']) * 1000:,.0f} ms after the 201"
                                f" (broadcast: {d['broadcast_received_before']} of {args.n}"
                                " at the gateway when declared)",
                                flush=True,
                            )
                if now >= next_bin:
                    _got, distinct = gateway.count(f"bc:{bc['id']}:")
                    progress_5s.append({"t_s": round(now - t0, 1), "gateway_distinct": distinct})
                    next_bin += 5
                if now - last_poll_db >= 1.0:
                    last_poll_db = now
                    total, finished, _ = broadcast_progress(engine, bc["id"])
                    if (
                        total == args.n
                        and finished >= args.n
                        and not todo
                        and all("seen" in d for d in declared)
                    ):
                        t_done = now
                        break
                if now >= deadline:
                    timed_out = True
                    print(f"giving up after {args.max_seconds:g} s", flush=True)
                    break
                time.sleep(0.05)
        ok = True
    finally:
        server.stop()
        time.sleep(0.2)
        gateway.stop()
        log = log_summary(server.log_path)
        if not ok:
            print(f"server log tail ({server.log_path}):\n{server.log_tail()}", file=sys.stderr)
            print(f"kept {tmp}", file=sys.stderr)

    hits = gateway.snapshot()
    bc_hits = [h for h in hits if h.key and h.key.startswith(f"bc:{bc['id']}:")]
    once = exactly_once(hits, f"bc:{bc['id']}:", args.n)
    total, finished, delivered = broadcast_progress(engine, bc["id"])
    attempts = broadcast_attempts(engine, bc["id"])
    pages = incident_pages(engine, declared)
    engine.dispose()
    for p, d in zip(pages, declared, strict=True):
        p.update(at_s=d["at_s"], broadcast_received_before=d["broadcast_received_before"])
    firsts = [p["first_page_ms"] for p in pages if p["first_page_ms"] is not None]
    t0 = bc["answered_202"]
    t_last = max((h.arrived for h in bc_hits), default=None)
    cpu = server.cpu
    end = t_done or time.time()
    result: dict[str, Any] = {
        "benchmark": NAME,
        "at": stamp,
        "backend": "sqlite",
        "source": source,
        "n": args.n,
        "gateway_ms": args.gateway_ms,
        "declare_at_s": declare_at,
        "timed_out": timed_out,
        "incidents": pages,
        "first_page_ms": stats_ms(firsts),
        "first_page_missing": sum(1 for p in pages if p["first_page_ms"] is None),
        "meets_target": bool(pages)
        and all(p["first_page_ms"] is not None and p["first_page_ms"] < TARGET_MS for p in pages),
        "broadcast": {
            "id": bc["id"],
            "recipients": total,
            "finished": finished,
            "delivered": delivered,
            "attempt_rows": attempts,
            "gateway": once,
            "exactly_once": once["ok"] and delivered == args.n and attempts == args.n,
            "first_message_after_202_s": round(min(h.arrived for h in bc_hits) - t0, 2)
            if bc_hits
            else None,
            "last_message_after_202_s": round(t_last - t0, 2) if t_last else None,
            "messages_per_s": round(len(bc_hits) / (t_last - t0), 1) if t_last else None,
            "gateway_max_concurrent": max_concurrent(bc_hits),
            "gateway_distinct_every_5s": progress_5s,
        },
        "server_cpu_percent": cpu.percent(t0, end) if cpu else None,
        "other_processes_cpu_percent": cpu.others_percent(t0, end) if cpu else None,
        "load_before": load_before,
        "load_after": load_now(),
        "server_exit_code": server.exit_code,
        "server_stop_signal": server.stop_signal,
        "server_log": log,
        "machine": {**machine(), **quiet},
        "target": "first page delivered < 2 s after the declaration; broadcast exactly once",
    }
    path = write_result(NAME, stamp, result)

    b = result["broadcast"]
    print(
        f"\nworst-day surge ({source}, sqlite, embedded worker), {args.n} passengers,"
        f" gateway {args.gateway_ms:g} ms:"
    )
    for p in pages:
        print(
            f"  declared at +{p['at_s']:g} s ({p['broadcast_received_before']} broadcast messages"
            f" at the gateway): first page {p['first_page_ms']} ms after declared_at"
            f" ({p['first_page_after_201_ms']} ms after the 201, seen committed"
            f" {p['first_page_seen_committed_after_201_ms']} ms), last {p['last_page_ms']} ms;"
            f" pages {p['pages_by_status']}"
        )
    verdict = "meets" if result["meets_target"] else "MISSES"
    print(f"  first page: {result['first_page_ms']}; target < 2 s: {verdict}")
    print(
        f"  broadcast: {b['delivered']}/{args.n} delivered, {b['attempt_rows']} attempts,"
        f" gateway {b['gateway']}; exactly once: {b['exactly_once']};"
        f" last message +{b['last_message_after_202_s']} s ({b['messages_per_s']} msg/s),"
        f" at most {b['gateway_max_concurrent']} held at the gateway at once"
    )
    print(
        f"  CPU (100 = one core): server {result['server_cpu_percent']}%, other processes"
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
    return 0 if ok and not timed_out else 1


if __name__ == "__main__":
    raise SystemExit(main())
