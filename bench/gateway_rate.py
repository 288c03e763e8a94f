"""Worst day (#15): an SMS gateway limited to 50 messages a second, shared by two incidents'
broadcasts and by pages.

    PYTHONPATH=$PWD /work/main/.venv/bin/python bench/gateway_rate.py --commit REV \
        [--n 500] [--rate 50/s] [--stagger 3] [--page-at 3] [--max-seconds 120] [--keep]

Starts the real service (`incident serve`, embedded worker) on a SQLite file with
``INCIDENT_SMS_GATEWAY=json://127.0.0.1:PORT/sms?:to={phone}`` and
``INCIDENT_SMS_GATEWAY_RATE=--rate``; the gateway is a loopback receiver in this process that
answers at once. The roster is the demo roster with every `inbox://` contact replaced by a
webhook on the same host (``json://127.0.0.1:PORT/page/<person>``, loaded with
`incident roster load`), so pages share the gateway host, and its rate rule, with the
broadcasts.

Through the API: declares two `passenger-stranding` incidents (A and B; their declarations
page through the gateway), gives each a passenger group with a manifest of --n passengers
(distinct numbers), starts A's broadcast, B's --stagger seconds later, and --page-at seconds
after that declares a live `mass-delay` incident C whose pages go through the gateway too.
Waits until both broadcasts are finished (bounded by --max-seconds).

Measured at the receiver (arrival times): the most messages in any sliding 1-second window
(target: no more than the rate), messages per second and per 5 s of each broadcast and of
pages, how far B had got when A finished (the two take turns, or B waits for A), and C's first
page (at the gateway and in the database). Every passenger once (by Idempotency-Key).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
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
    run_cli,
    source_tree,
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
    max_in_window,
    start_broadcast,
    stranding_facts,
)

NAME = "gateway_rate"


def roster_on_gateway(demo_roster: Path, host: str, dest: Path) -> int:
    """The demo roster with each inbox:// contact a JSON webhook on the gateway's host."""
    text, n = re.subn(
        r"inbox://([A-Za-z0-9._/-]+)",
        lambda m: f'"json://{host}/page/{m.group(1)}"',
        demo_roster.read_text(encoding="utf-8"),
    )
    dest.write_text(text, encoding="utf-8")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="passengers per broadcast")
    parser.add_argument("--rate", default="50/s", help="INCIDENT_SMS_GATEWAY_RATE")
    parser.add_argument("--stagger", type=float, default=3.0, help="B's broadcast after A's")
    parser.add_argument("--page-at", type=float, default=3.0, help="incident C after B's start")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="bound of the run")
    parser.add_argument("--commit", default=None, help="benchmark this commit (git archive)")
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, log)")
    args = parser.parse_args(argv)
    count, _, unit = args.rate.partition("/")
    limit = int(count)
    window = {"s": 1.0, "min": 60.0}[unit]
    if window != 1.0:
        raise SystemExit("--rate: this script measures per-second rates (N/s)")

    from cryptography.fernet import Fernet

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-gwrate-"))
    src = source_tree(args.commit, tmp)
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    gateway = Gateway({})
    env = bench_env(
        f"sqlite:///{tmp / 'incident.db'}",
        src / "playbooks",
        src,
        INCIDENT_DATA_KEYS=Fernet.generate_key().decode(),
        INCIDENT_SMS_GATEWAY=f"json://{gateway.host}/sms?:to={{phone}}",
        INCIDENT_SMS_GATEWAY_RATE=args.rate,
    )
    engine = create_engine(f"sqlite:///{tmp / 'incident.db'}")
    server = Server(tmp, env, tmp / "server.log")
    ok = False
    timed_out = False
    quiet: dict[str, Any] = {}
    load_before = load_now()
    bcs: dict[str, dict[str, Any]] = {}
    c_incident: dict[str, Any] = {}
    try:
        token = prepare(tmp, env)
        roster = tmp / "roster-on-gateway.yaml"
        contacts = roster_on_gateway(
            src / "incident" / "demo" / "roster.yaml", gateway.host, roster
        )
        run_cli(["roster", "load", str(roster)], cwd=tmp, env=env)
        quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else {}
        load_before = load_now()
        gateway.start()
        server.start()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as http:
            groups = {}
            for name, prefix in (("A", "39"), ("B", "38")):
                d = declare(
                    http, "passenger-stranding", "III", f"Stranding {name}", stranding_facts(args.n)
                )
                groups[name] = group_with_manifest(http, d["id"], args.n, prefix)
            time.sleep(2.0)  # the declarations' pages go out before the broadcasts start
            bcs["A"] = start_broadcast(http, groups["A"])
            t0 = bcs["A"]["answered_202"]
            time.sleep(max(0.0, t0 + args.stagger - time.time()))
            bcs["B"] = start_broadcast(http, groups["B"])
            time.sleep(max(0.0, bcs["B"]["answered_202"] + args.page_at - time.time()))
            c_incident = declare(http, "mass-delay", "III", "Live C", delay_facts(0))
            print(
                f"broadcasts A {bcs['A']['id']} and B {bcs['B']['id']} ({args.n} each, B"
                f" +{args.stagger:g} s), incident C declared; gateway rate {args.rate} ...",
                flush=True,
            )
            deadline = t0 + args.max_seconds
            while True:
                now = time.time()
                if server.proc is not None and server.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {server.proc.returncode}")
                if "seen" not in c_incident and first_pages_delivered(engine, [c_incident["id"]]):
                    c_incident["seen"] = time.time()
                done = [broadcast_progress(engine, b["id"]) for b in bcs.values()]
                if all(n == args.n and f >= args.n for n, f, _ in done) and "seen" in c_incident:
                    break
                if now >= deadline:
                    timed_out = True
                    print(f"giving up after {args.max_seconds:g} s", flush=True)
                    break
                time.sleep(0.25)
            time.sleep(0.5)
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
    t0 = bcs["A"]["answered_202"]
    kind_of: dict[str, str] = {f"bc:{b['id']}:": name for name, b in bcs.items()}

    def kind(h: Any) -> str:
        if h.path.startswith("/page"):
            return "page"
        for prefix, name in kind_of.items():
            if h.key and h.key.startswith(prefix):
                return name
        return "other"

    by_kind: dict[str, list[float]] = defaultdict(list)
    for h in hits:
        by_kind[kind(h)].append(h.arrived)
    for v in by_kind.values():
        v.sort()
    busiest, busiest_at = max_in_window([h.arrived for h in hits], 1.0)
    bc_times = by_kind["A"] + by_kind["B"]
    busiest_bc, _ = max_in_window(bc_times, 1.0)
    end = max((h.arrived for h in hits), default=t0)
    per_5s = []
    k = 0
    while t0 + k * 5 <= end + 5:
        lo, hi = t0 + k * 5, t0 + (k + 1) * 5
        per_5s.append(
            {
                "t_s": f"{k * 5}-{k * 5 + 5}",
                **{
                    name: sum(1 for t in by_kind[name] if lo <= t < hi)
                    for name in ("A", "B", "page")
                },
            }
        )
        k += 1
    per_s = []
    for s in range(int(end - t0) + 2):
        lo, hi = t0 + s, t0 + s + 1
        per_s.append(
            {"s": s, **{n: sum(1 for t in by_kind[n] if lo <= t < hi) for n in ("A", "B", "page")}}
        )
    last = {name: (by_kind[name][-1] if by_kind[name] else None) for name in ("A", "B")}
    first_done = min(
        (name for name in last if last[name]), key=lambda n: last[n] or 0, default=None
    )
    other = "B" if first_done == "A" else "A"
    at_first_done: dict[str, Any] = {}
    if first_done and last[first_done]:
        cut = last[first_done]
        a_n = sum(1 for t in by_kind["A"] if t <= cut)
        b_n = sum(1 for t in by_kind["B"] if t <= cut)
        at_first_done = {
            "first_finished": first_done,
            "at_s": round(cut - t0, 2),
            "A_sent": a_n,
            "B_sent": b_n,
            f"{other}_share_of_its_messages": round((b_n if other == "B" else a_n) / args.n, 3),
            "ratio_B_to_A": round(b_n / a_n, 3) if a_n else None,
        }
    b_start = bcs["B"]["answered_202"]
    cut_at = last[first_done] if first_done else end
    both = sum(1 for t in bc_times if b_start <= t <= cut_at)
    of_b = sum(1 for t in by_kind["B"] if b_start <= t <= cut_at)
    overlap_share_b = round(of_b / both, 3) if both else None
    totals = {}
    for name, b in bcs.items():
        _n, finished, delivered = broadcast_progress(engine, b["id"])
        once = exactly_once(hits, f"bc:{b['id']}:", args.n)
        attempts = broadcast_attempts(engine, b["id"])
        times = by_kind[name]
        totals[name] = {
            "id": b["id"],
            "started_s": round(b["answered_202"] - t0, 2),
            "first_message_after_its_202_s": round(times[0] - b["answered_202"], 2)
            if times
            else None,
            "last_message_after_its_202_s": round(times[-1] - b["answered_202"], 2)
            if times
            else None,
            "delivered": delivered,
            "finished": finished,
            "attempt_rows": attempts,
            "gateway": once,
            "exactly_once": once["ok"] and delivered == args.n and attempts == args.n,
        }
    pages_c = incident_pages(engine, [c_incident]) if c_incident else []
    engine.dispose()
    c_at_gateway = [t for t in by_kind["page"] if c_incident and t >= c_incident["sent"]]
    cpu = server.cpu
    result: dict[str, Any] = {
        "benchmark": NAME,
        "at": stamp,
        "backend": "sqlite",
        "source": source,
        "n_per_broadcast": args.n,
        "rate": args.rate,
        "stagger_s": args.stagger,
        "roster_contacts_on_gateway": contacts,
        "timed_out": timed_out,
        "gateway_messages": {name: len(v) for name, v in by_kind.items()},
        "max_in_any_1s_window": busiest,
        "max_in_any_1s_window_starts_s": round(busiest_at - t0, 2) if busiest_at else None,
        "max_in_any_1s_window_broadcasts_only": busiest_bc,
        "meets_rate": busiest <= limit,
        "broadcasts": totals,
        "at_first_finished": at_first_done,
        "B_share_while_both_ran": overlap_share_b,
        "per_5s": per_5s,
        "per_s": per_s,
        "incident_c": {
            **(pages_c[0] if pages_c else {}),
            "first_page_at_gateway_after_201_ms": round(
                (c_at_gateway[0] - c_incident["answered_201"]) * 1000, 1
            )
            if c_at_gateway
            else None,
            "pages_at_gateway_after_declaration": len(c_at_gateway),
        },
        "server_cpu_percent": cpu.percent(t0, end) if cpu else None,
        "other_processes_cpu_percent": cpu.others_percent(t0, end) if cpu else None,
        "load_before": load_before,
        "load_after": load_now(),
        "server_exit_code": server.exit_code,
        "server_log": log,
        "machine": {**machine(), **quiet},
        "target": f"no more than {limit} messages in any 1 s at the gateway; broadcasts take turns",
    }
    path = write_result(NAME, stamp, result)
    print(f"\ngateway rate ({source}, {args.rate}, 2 x {args.n} passengers + pages on the host):")
    print(
        f"  most messages in any 1 s window: {busiest} (broadcasts only {busiest_bc});"
        f" target <= {limit}: {'meets' if busiest <= limit else 'MISSES'}"
    )
    print("  per 5 s since A started (A / B / pages):")
    for row in per_5s:
        print(f"    {row['t_s']:>8} s: {row['A']:>4} {row['B']:>4} {row['page']:>4}")
    for name, t in totals.items():
        print(
            f"  broadcast {name}: started +{t['started_s']} s, first message"
            f" +{t['first_message_after_its_202_s']} s, last +{t['last_message_after_its_202_s']} s"
            f" after its 202; exactly once {t['exactly_once']} ({t['gateway']})"
        )
    print(f"  when the first finished: {at_first_done}; B's share while both ran {overlap_share_b}")
    c = result["incident_c"]
    print(
        f"  incident C: first page {c.get('first_page_ms')} ms after declared_at (at the gateway"
        f" {c.get('first_page_at_gateway_after_201_ms')} ms after the 201); pages"
        f" {c.get('pages_by_status')}"
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
    return 0 if ok and not timed_out else 1


if __name__ == "__main__":
    raise SystemExit(main())
