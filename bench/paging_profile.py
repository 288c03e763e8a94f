"""Where the worker's time goes while it sends and records N durable deliveries (py-spy).

    .venv/bin/python bench/paging_profile.py --peers-python $VENV/bin/python \
        [--kind pages|test|test1|broadcast] [--n 3000] [--delay-ms 0] [--rate 250] [--gil] [--keep]

Starts the bench-peers uvicorn sink and `incident worker` (subprocess, SQLite, production
defaults), attaches py-spy (from the bench-peers venv: `pip install py-spy`) to the idle
worker, then queues N deliveries as bench/paging_throughput.py does (pages of a department
of N people, or N "test" deliveries to N addresses, or with test1 to one address), or starts
a broadcast to N passengers as bench/passengers_broadcast.py does, and waits until all are
recorded. py-spy's raw stacks
are summarised: samples per thread, inclusive share of the functions that matter (claiming,
the send path, recording: record_sent, delivery.record_attempts, paging.on_delivery_outcome,
ORM flush and queries, SQLite), and the top self-time frames. The raw file is kept in
bench/results/. Sampling slows the worker; the shares, not the rate, are the result.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REPO,
    RESULTS,
    git_commit,
    machine,
    source_tree,
    utc_stamp,
    write_result,
)
from paging_common import Bench, Sink, WorkerProc, apply_roster, peers_python, roster_doc
from paging_throughput import create_pages, create_tests, max_delivery_id, wait_done

NAME = "paging_profile"

# (label, regex on one frame "Class.function (file:line)") -- inclusive: a sample counts once if any
# frame of its stack matches.
WATCH = [
    ("Worker.run_due", r"(^|\.)run_due \(incident/worker\.py"),
    ("  Worker.record_finished", r"(^|\.)record_finished \(incident/worker\.py"),
    ("    handlers.record_sent", r"(^|\.)record_sent \(incident/handlers\.py"),
    ("      delivery.record_attempts", r"(^|\.)record_attempts \(incident/delivery\.py"),
    ("      paging.on_delivery_outcome", r"(^|\.)on_delivery_outcome \(incident/paging[./]"),
    ("      Context.playbook_for", r"(^|\.)playbook_for \(incident/handlers\.py"),
    ("    session.get (in record_finished)", r"(^|\.)get \(sqlalchemy/orm/session\.py"),
    (
        "    jobs.still_ours / complete_many",
        r"(^|\.)(still_ours|complete_many) \(incident/jobs\.py",
    ),
    ("  jobs.claim", r"(^|\.)claim \(incident/jobs\.py"),
    ("  Worker._start_sends", r"(^|\.)_start_sends \(incident/worker\.py"),
    ("    Worker._address_for_sending", r"(^|\.)_address_for_sending \(incident/worker\.py"),
    ("broadcasts.prepare", r"(^|\.)prepare \(incident/passengers/broadcasts\.py"),
    ("  delivery.create_many", r"(^|\.)create_many \(incident/delivery\.py"),
    ("Fernet (any)", r"\(cryptography/"),
    ("Worker.seconds_until_next", r"(^|\.)seconds_until_next \(incident/worker\.py"),
    ("ORM flush (any)", r"(^|\.)flush \(sqlalchemy/orm/session\.py"),
    ("ORM autoflush (any)", r"(^|\.)_autoflush \(sqlalchemy/orm/session\.py"),
    ("session commit (any)", r"(^|\.)commit \(sqlalchemy/orm/session\.py"),
    ("sqlite3 execute (any)", r"(^|\.)do_execute(many)? \(sqlalchemy"),
    ("Sender.send (event loop)", r"(^|\.)send \(incident/channels\.py"),
    ("  tenacity", r"\(tenacity/"),
    ("  Sender._webhook", r"(^|\.)_webhook \(incident/channels\.py"),
    ("    Sender._parsed (apprise URL parse)", r"(^|\.)_parsed \(incident/channels\.py"),
    ("    aiohttp", r"\(aiohttp/"),
    ("  Sender._attempt logging", r"(^|\.)info \(structlog"),
    ("asyncio event loop (_run_once)", r"(^|\.)_run_once \(asyncio/base_events\.py"),
    ("structlog (any)", r"\(structlog/"),
]


def summarise(raw: Path, top: int = 25) -> dict[str, Any]:
    total = 0
    by_thread: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    compiled = [(label, re.compile(rx)) for label, rx in WATCH]
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        try:
            count = int(count_s)
        except ValueError:
            continue
        frames = stack.split(";")
        total += count
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"
        by_thread[thread] += count
        frames = [f for f in frames if not f.startswith(("thread", "process"))]
        for label, rx in compiled:
            if any(rx.search(f) for f in frames):
                inclusive[label] += count
        if frames:
            self_time[frames[-1]] += count
            m = re.search(r"\(([^/)]+)", frames[-1])
            by_package[m.group(1) if m else "?"] += count

    def pct(c: int) -> float:
        return round(100 * c / total, 1) if total else 0.0

    return {
        "samples": total,
        "by_thread_pct": {k: pct(v) for k, v in by_thread.most_common()},
        "inclusive_pct": {label: pct(inclusive[label]) for label, _ in WATCH},
        "self_top_pct": {k: pct(v) for k, v in self_time.most_common(top)},
        "self_by_top_level_package_pct": {k: pct(v) for k, v in by_package.most_common(15)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["pages", "test", "test1", "broadcast"], default="pages")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--peers-python", default=None, help="the bench-peers venv's python")
    parser.add_argument("--py-spy", default=None, help="py-spy binary (default: beside it)")
    parser.add_argument("--commit", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    python = peers_python(args.peers_python)
    pyspy = args.py_spy or str(Path(python).parent / "py-spy")
    if not Path(pyspy).exists():
        raise SystemExit(f"no py-spy at {pyspy}: pip install py-spy into the bench-peers venv")

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-profile-"))
    src = source_tree(args.commit, tmp)
    if src != REPO:
        sys.path.insert(0, str(src))
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    from sqlalchemy import create_engine

    from incident.logs import configure_logging

    configure_logging("console", "WARNING")
    sink = Sink(python, tmp / "sink.log")
    rig: Any = None
    if args.kind == "broadcast":
        from cryptography.fernet import Fernet
        from passengers_broadcast import Rig, gateway

        (tmp / "rig").mkdir()
        rig = Rig(tmp / "rig", src, Fernet.generate_key().decode())
        db, db_url, env = rig.db, rig.db_url, rig.env
    else:
        bench = Bench.prepare(tmp, src)
        db, db_url, env = bench.database(), bench.db_url, bench.env
    poll = create_engine(db_url)
    worker = WorkerProc(tmp, env, tmp / "worker.log")
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"{NAME}-{stamp}-{args.kind}-{args.delay_ms}ms.raw.txt"
    spy: subprocess.Popen[bytes] | None = None
    ok = False
    try:
        sink.start()
        if rig is not None:
            worker.env["INCIDENT_SMS_GATEWAY"] = gateway(sink, args.delay_ms)
        else:
            apply_roster(db, roster_doc(1, sink.base, "init", 0))
        if args.kind == "pages":  # the roster must be in place before the worker loads
            apply_roster(db, roster_doc(args.n, sink.base, "prof", args.delay_ms))
        worker.start()
        assert worker.pid is not None
        cmd = [
            pyspy,
            "record",
            "--pid",
            str(worker.pid),
            "-f",
            "raw",
            "-o",
            str(raw),
            "-r",
            str(args.rate),
            "-F",
            "-t",
            "-d",
            str(int(args.timeout)),
        ]
        if args.gil:
            cmd.append("--gil")
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # attached; the worker is idle (polling once a second)
        before = max_delivery_id(poll)
        t0 = time.time()
        if args.kind == "broadcast":
            rig.start_broadcast(rig.group_with_passengers(args.n, 1), "profile")
        elif args.kind == "pages":
            create_pages(bench, db, sink, args.n, "prof", args.delay_ms)
        else:
            create_tests(db, sink, args.n, "prof", args.delay_ms, one_address=args.kind == "test1")
        created = time.time()
        done, seen = wait_done(poll, before, args.n, args.timeout)
        print(
            f"created in {created - t0:.1f}s; all recorded {seen - created:.2f}s later"
            f" (profiled, slowed by sampling); complete: {done}",
            flush=True,
        )
        ok = done
    finally:
        if spy is not None and spy.poll() is None:
            os.kill(spy.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(spy.pid, signal.SIGKILL)
                spy.wait(10)
        worker.stop()
        sink.stop()
    db.dispose()
    poll.dispose()
    if not raw.exists():
        err = spy.stderr.read().decode() if spy and spy.stderr else ""
        print(f"py-spy wrote nothing: {err[-1000:]}", file=sys.stderr)
        return 1
    summary = summarise(raw)
    result = {
        "benchmark": NAME,
        "at": stamp,
        "source": source,
        "kind": args.kind,
        "n": args.n,
        "delay_ms": args.delay_ms,
        "rate": args.rate,
        "gil_only": args.gil,
        "raw": str(raw.relative_to(REPO)),
        **summary,
        "machine": machine(),
    }
    path = write_result(f"{NAME}-{args.kind}-{args.delay_ms}ms", stamp, result)
    print(
        f"\npy-spy on `incident worker` ({source}), {args.n} {args.kind} deliveries,"
        f" receiver {args.delay_ms} ms, {summary['samples']} samples"
        f"{' holding the GIL' if args.gil else ''}:"
    )
    print("  by thread:", summary["by_thread_pct"])
    print("  inclusive % of all samples:")
    for label, v in summary["inclusive_pct"].items():
        print(f"    {label:<40}{v:>6}")
    print("  top self frames %:")
    for k, v in list(summary["self_top_pct"].items())[:20]:
        print(f"    {v:>5}  {k}")
    print("  self by package %:", summary["self_by_top_level_package_pct"])
    print(f"  results: {path.relative_to(REPO)}; raw stacks: {raw.relative_to(REPO)}")
    if args.keep:
        print(f"  kept {tmp}")
    elif ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
