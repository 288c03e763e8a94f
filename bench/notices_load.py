"""Public notice surfaces under load: 64 keep-alive connections against `incident serve`.

    .venv/bin/python bench/notices_load.py [--notices 50] [--connections 64] [--duration 20]
        [--warmup 3] [--client httpx|wrk] [--database-url URL] [--commit REV] [--keep]

Makes a temp dir with a SQLite database (or uses --database-url), runs `incident db upgrade`
and `incident demo`, starts `incident serve` (embedded worker on), and through the API
declares --notices live incidents, drafts one notice each and publishes it (so the feeds carry
that many active notices). Then, for each of /notices, /notices.atom and /gtfs-rt/alerts.pb in
turn, it opens --connections keep-alive connections from 127.0.0.1 and sends GETs as fast as
they are answered for --duration seconds (after --warmup seconds unmeasured), and reports
requests/s and the latency distribution (p50/p90/p99/max, ms) with the CPU the server, the
client and other processes used. Clients: bare asyncio streams in this process (default),
httpx.AsyncClient in this process (it saturates its core long before the server does, so its
latencies measure its own queue), or `wrk` when installed. Everything talks to 127.0.0.1;
the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    CpuSampler,
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

NAME = "notices_load"
HOST = "127.0.0.1"
PATHS = ("/notices", "/notices.atom", "/gtfs-rt/alerts.pb")
TARGET_P99_MS = 50.0


def publish_notices(base_url: str, token: str, count: int) -> list[str]:
    """Declare ``count`` live incidents, draft a bilingual notice for each and publish it."""
    headers = {"Authorization": f"Bearer {token}"}
    ids: list[str] = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for i in range(count):
            line = f"L{i + 1}"
            declared = client.post(
                "/api/incidents",
                json={
                    "playbook": "mass-delay",
                    "severity": ("I", "II", "III", "IV")[i % 4],
                    "title": f"Line {line} signal fault",
                    "facts": {"line": line, "trains_affected": 10 + i, "expected_delay_min": 45},
                },
            )
            declared.raise_for_status()
            incident_id = declared.json()["id"]
            drafted = client.post(
                f"/api/incidents/{incident_id}/notices",
                json={
                    "languages": {
                        "zh": {
                            "headline": f"{line}线列车晚点",
                            "body": f"{line}线有{10 + i}趟列车晚点，预计约45分钟。\n"
                            "对您的影响：列车可能晚点。\n请您：出行前查询车次状态。",
                        },
                        "en": {
                            "headline": f"Delays on line {line}",
                            "body": f"{10 + i} trains on {line} are about 45 minutes late.\n"
                            "What to do: check your train before you travel.",
                        },
                    },
                    "stations": [f"S{i + 1}"],
                    "trains": [f"G{1000 + i}"],
                },
            )
            drafted.raise_for_status()
            notice_id = drafted.json()["id"]
            client.post(f"/api/notices/{notice_id}/publish").raise_for_status()
            ids.append(notice_id)
    return ids


async def _hammer(
    url: str, connections: int, warmup: float, duration: float
) -> tuple[list[float], dict[str, int], float, int]:
    """GET ``url`` on ``connections`` keep-alive connections; latencies (ms) after warm-up."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    failures: dict[str, int] = {}
    size = 0
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one_connection() -> None:
            nonlocal size
            while True:
                sent = time.monotonic()
                if sent >= stop_at:
                    return
                try:
                    response = await client.get(url)
                    outcome = str(response.status_code)
                    size = len(response.content)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                done = time.monotonic()
                if sent >= measure_from:
                    if outcome == "200":
                        latencies.append((done - sent) * 1000)
                    else:
                        failures[outcome] = failures.get(outcome, 0) + 1

        await asyncio.gather(*(one_connection() for _ in range(connections)))
    return latencies, failures, max(time.monotonic() - measure_from, 1e-9), size


async def _hammer_raw(
    url: str, connections: int, warmup: float, duration: float
) -> tuple[list[float], dict[str, int], float, int]:
    """The same load from bare asyncio streams speaking HTTP/1.1 keep-alive (GET only,
    Content-Length bodies): a Python client light enough not to be the bottleneck."""
    parts = urlsplit(url)
    host, port = parts.hostname or HOST, parts.port or 80
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    failures: dict[str, int] = {}
    size = 0
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def one_connection() -> None:
        nonlocal size
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                sent = time.monotonic()
                if sent >= stop_at:
                    return
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                body = await reader.readexactly(int(length.group(1)) if length else 0)
                done = time.monotonic()
                status = head[9:12].decode()
                size = len(body)
                if sent >= measure_from:
                    if status == "200":
                        latencies.append((done - sent) * 1000)
                    else:
                        failures[status] = failures.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return latencies, failures, max(time.monotonic() - measure_from, 1e-9), size


def run_python(url: str, args: argparse.Namespace) -> dict[str, Any]:
    hammer = _hammer if args.client == "httpx" else _hammer_raw
    cpu_before = time.process_time()
    wall_before = time.monotonic()
    latencies, failures, wall, size = asyncio.run(
        hammer(url, args.connections, args.warmup, args.duration)
    )
    client_cpu = (time.process_time() - cpu_before) / (time.monotonic() - wall_before) * 100
    return {
        "client": args.client,
        "client_cpu_percent": round(client_cpu, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / wall, 1),
        "latency_ms": stats_ms(latencies),
        "failures": failures,
        "body_bytes": size,
    }


def _wrk_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, args: argparse.Namespace) -> dict[str, Any]:
    common = ["-t2", f"-c{args.connections}", "--latency", "--timeout", "30s", url]
    subprocess.run(["wrk", f"-d{max(1, int(args.warmup))}s", *common], capture_output=True)
    out = subprocess.run(
        ["wrk", f"-d{int(args.duration)}s", *common], capture_output=True, text=True, check=True
    ).stdout
    found = {p: _wrk_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M)}
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    maximum = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out)
    return {
        "client": "wrk",
        "requests": int(total.group(1)) if total else 0,
        "requests_per_s": float(rps.group(1)) if rps else 0.0,
        "latency_ms": {
            "p50": found.get("50"),
            "p90": found.get("90"),
            "p99": found.get("99"),
            "max": _wrk_ms(maximum.group(1)) if maximum else None,
        },
        "failures": {"non_2xx": int(errors.group(1))} if errors else {},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=50, help="active notices (default 50)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per path")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds first")
    parser.add_argument(
        "--client",
        choices=("asyncio", "httpx", "wrk"),
        default="asyncio",
        help="asyncio streams (default), httpx.AsyncClient, or wrk (apt-get install wrk)",
    )
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--commit", default=None, help="benchmark this commit, not the tree")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    args = parser.parse_args(argv)
    if args.client == "wrk" and shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk), or use --client httpx")

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-notices-"))
    database_url = args.database_url or f"sqlite:///{tmp}/incident.db"
    src = source_tree(git_commit(args.commit) if args.commit else None, tmp)
    env = bench_env(database_url, src / "playbooks", src, INCIDENT_LOG_LEVEL="WARNING")
    server = Server(tmp, env, tmp / "server.log")
    results: dict[str, Any] = {}
    notice_ids: list[str] = []
    quiet: dict[str, Any] = {}
    ok = False
    try:
        token = prepare(tmp, env)
        server.start()
        notice_ids = publish_notices(server.base_url, token, args.notices)
        gtfs = httpx.get(f"{server.base_url}/gtfs-rt/alerts.pb?format=json").json()
        carried = len(gtfs.get("entity", []))
        if carried != args.notices:
            raise RuntimeError(f"GTFS-RT carries {carried} alerts, expected {args.notices}")
        quiet = wait_for_quiet(30)
        assert server.pid is not None
        sampler = CpuSampler(server.pid)
        sampler.start()
        for path in PATHS:
            url = f"{server.base_url}{path}"
            began = time.time()
            print(f"{path}: {args.connections} connections, {args.duration:g} s ...", flush=True)
            figures = run_wrk(url, args) if args.client == "wrk" else run_python(url, args)
            ended = time.time()
            measured_from = ended - args.duration
            figures["server_cpu_percent"] = sampler.percent(measured_from, ended)
            figures["others_cpu_percent"] = sampler.others_percent(measured_from, ended)
            figures["wall_s"] = round(ended - began, 1)
            results[path] = figures
        sampler.stop()
        ok = all(r["latency_ms"].get("p99") is not None for r in results.values())
    finally:
        server.stop()
    summary = {
        "benchmark": NAME,
        "stamp": stamp,
        "ok": ok,
        "notices": args.notices,
        "notice_ids_sample": notice_ids[:3] if ok else [],
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "client": args.client,
        "database": redact_url(database_url).split(":", 1)[0],
        "target_p99_ms": TARGET_P99_MS,
        "machine": {**machine(), **quiet},
        "results": results,
        "server_log": log_summary(tmp / "server.log"),
        "server_exit": server.exit_code,
    }
    path = write_result(NAME, stamp, summary)
    print()
    print(
        f"{'path':<22}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'errors':>8}{'srv cpu%':>10}{'client%':>9}{'other%':>8}  p99 < {TARGET_P99_MS:g} ms"
    )
    for name, r in results.items():
        lat = r["latency_ms"]
        errors = sum(r["failures"].values())
        verdict = "yes" if lat.get("p99") is not None and lat["p99"] < TARGET_P99_MS else "NO"
        print(
            f"{name:<22}{r['requests_per_s']:>9}{lat.get('p50')!s:>9}{lat.get('p90')!s:>9}"
            f"{lat.get('p99')!s:>9}{lat.get('max')!s:>9}{errors:>8}"
            f"{r['server_cpu_percent']!s:>10}{r.get('client_cpu_percent', '-')!s:>9}"
            f"{r['others_cpu_percent']!s:>8}  {verdict}"
        )
    print(f"results: {path}")
    if args.keep:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
