"""Declaration latency through HTTP: sequential POST /api/incidents on one keep-alive client.

    .venv/bin/python bench/declare_latency.py [--n 200] [--warmup 10]
        [--database-url postgresql+psycopg://user@127.0.0.1:5432/db] [--keep]

Makes a temp dir with a SQLite database (or uses --database-url), runs `incident db upgrade`
and `incident demo` there, starts `incident serve` (embedded worker on), waits for /readyz,
sends --warmup then --n declarations of mass-delay (severity III) with the duty user's token,
and reports p50/p90/p99/max in ms and requests/s. The server is stopped by its PID.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REPO,
    Server,
    bench_env,
    git_commit,
    log_summary,
    machine,
    prepare,
    redact_url,
    source_tree,
    stats_ms,
    utc_stamp,
    wait_for_quiet,
    write_result,
)

NAME = "declare_latency"
FACTS = {"line": "G", "trains_affected": 40, "expected_delay_min": 90}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="measured requests (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests first")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument(
        "--commit",
        default=None,
        help="benchmark this commit (git archive to the temp dir) instead of the working tree",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        help="wait up to this many seconds for other processes to go idle first (0: don't)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    parser.add_argument("--time-limit", type=float, default=240, help="give up after (s)")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="diagnosis only: serve without the embedded worker (INCIDENT_EMBEDDED_WORKER=false)",
    )
    args = parser.parse_args(argv)

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-declare-"))
    database_url = args.database_url or f"sqlite:///{tmp}/incident.db"
    backend = database_url.split(":", 1)[0].split("+", 1)[0]
    extra = {"INCIDENT_EMBEDDED_WORKER": "false"} if args.no_worker else {}
    src = source_tree(args.commit, tmp)
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    env = bench_env(database_url, src / "playbooks", src, **extra)
    server = Server(tmp, env, tmp / "server.log")
    latencies: list[float] = []
    failures: dict[str, int] = {}
    wall = 0.0
    cpu: float | None = None
    others: float | None = None
    ok = False
    quiet: dict[str, Any] = {}
    try:
        token = prepare(tmp, env)
        quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else {}
        server.start()
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + args.time_limit
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:

            def declare(i: int) -> httpx.Response:
                return client.post(
                    "/api/incidents",
                    json={
                        "playbook": "mass-delay",
                        "severity": "III",
                        "title": f"Line G signal fault (bench {i})",
                        "facts": FACTS,
                    },
                )

            for i in range(args.warmup):
                r = declare(-1 - i)
                if r.status_code != 201:
                    raise RuntimeError(f"warm-up declaration got {r.status_code}: {r.text[:500]}")
            start = time.perf_counter()
            start_epoch = time.time()
            for i in range(args.n):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"time limit of {args.time_limit}s reached after {i}")
                t0 = time.perf_counter()
                r = declare(i)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 201:
                    failures[str(r.status_code)] = failures.get(str(r.status_code), 0) + 1
            wall = time.perf_counter() - start
            if server.cpu is not None:
                cpu = server.cpu.percent(start_epoch, time.time())
                others = server.cpu.others_percent(start_epoch, time.time())
        ok = True
    finally:
        server.stop()
        log = log_summary(server.log_path)
        if not ok:
            print(f"server log tail ({server.log_path}):\n{server.log_tail()}", file=sys.stderr)

    stats = stats_ms(latencies)
    result: dict[str, Any] = {
        "benchmark": NAME,
        "at": stamp,
        "backend": backend,
        "source": source,
        "database_url": redact_url(database_url) if args.database_url else "sqlite (temp dir)",
        "n": args.n,
        "warmup": args.warmup,
        "latency_ms": stats,
        "requests_per_s": round(args.n / wall, 1) if wall else None,
        "wall_s": round(wall, 3),
        "server_cpu_percent": cpu,
        "other_processes_cpu_percent": others,
        "slowest": sorted(
            ({"request": i, "ms": round(ms, 2)} for i, ms in enumerate(latencies)),
            key=lambda x: -x["ms"],
        )[:5],
        "embedded_worker": not args.no_worker,
        "non_201": failures,
        "server_exit_code": server.exit_code,
        "server_stop_signal": server.stop_signal,
        "server_log": log,
        "machine": {**machine(), **quiet},
    }
    path = write_result(NAME, stamp, result)
    print(
        f"declare latency ({backend}, {source}, n={args.n} after {args.warmup} warm-up,"
        f" 1 keep-alive client,"
        f" embedded worker {'off' if args.no_worker else 'on'})\n"
        f"  p50 {stats['p50']} ms  p90 {stats['p90']} ms  p99 {stats['p99']} ms"
        f"  max {stats['max']} ms  mean {stats['mean']} ms\n"
        f"  {result['requests_per_s']} requests/s; CPU (100 = one core): server {cpu}%,"
        f" other processes {others}%;"
        f" non-201: {failures or 'none'}\n"
        f"  slowest (request #, ms): {[(x['request'], x['ms']) for x in result['slowest']]}\n"
        f"  server log: {log.get('lines_by_level')}, warnings/errors:"
        f" {log.get('warning_error_events') or 'none'}\n"
        f"  results: {path.relative_to(REPO)}"
    )
    if args.keep:
        print(f"  kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
