"""Manifest import: 100,000 rows through HTTP into the running service; seconds and memory.

    .venv/bin/python bench/passengers_import.py [--rows 100000] [--reps 3]
        [--encoding utf-8|gb18030] [--bad 500] [--duplicates 500] [--commit HEAD] [--keep]

Starts the service as a user runs it (`incident serve`, embedded worker on, SQLite file in a
temp dir, `INCIDENT_DATA_KEYS` set), declares an incident of the shipped
`passenger-stranding` playbook and, for each repetition, opens a fresh passenger group and
uploads a CSV manifest to `POST /api/passenger-groups/{id}/passengers`, streamed from a file
(chunked, never whole in this process either). Every row has its own phone number; --bad rows
have an invalid one and --duplicates rows repeat an earlier ticket (merged).

Reported per upload: seconds (client wall time of the request), rows/s, the server's peak
resident memory (VmHWM of the server process, and how much the upload added to it), the
server's CPU, and what the upload report says (stored, merged, rejected). Meanwhile a probe
records a small write every 50 ms (a care entry on another group): its latency shows whether
the import holds the database long enough to make escalations wait (the import commits
batches of 2,000 rows, one short transaction each).

Targets (issue #5): < 10 s and < 200 MB for 100,000 rows.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
    source_tree,
    stats_ms,
    utc_stamp,
    wait_for_quiet,
    write_result,
)

NAME = "passengers_import"


def vm(pid: int, field: str) -> float | None:
    """VmHWM / VmRSS of a process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_manifest(
    path: Path, rows: int, bad: int, duplicates: int, rep: int, encoding: str
) -> dict[str, int]:
    """A manifest of `rows` data rows: bad ones spread through, duplicates near the end."""
    good = rows - bad - duplicates
    every_bad = max(rows // max(bad, 1), 1)
    written = {"good": 0, "bad": 0, "duplicates": 0}
    with path.open("w", encoding=encoding, newline="") as out:
        out.write("姓名,手机号,座位号,车厢,语言,票号\n")
        n = 0
        for i in range(rows):
            if written["bad"] < bad and i % every_bad == every_bad - 1:
                out.write(f"旅客{i},12345,{i % 100:02d}A,{i % 16 + 1:02d},zh,B{rep}-{i}\n")
                written["bad"] += 1
            elif written["good"] < good:
                lang = "en" if n % 5 == 0 else "zh"
                phone = f"1{39 - rep % 3}{n:08d}"
                out.write(f"旅客{n},{phone},{n % 100:02d}A,{n % 16 + 1:02d},{lang},T{rep}-{n}\n")
                written["good"] += 1
                n += 1
            else:
                k = written["duplicates"] * 7 % max(n, 1)
                out.write(f"旅客{k},1{39 - rep % 3}{k:08d},,,,T{rep}-{k}\n")
                written["duplicates"] += 1
    return written


def chunks(path: Path, size: int = 65536) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(size):
            yield block


class Probe(threading.Thread):
    """A small write every 50 ms; records each one's latency."""

    def __init__(self, base: str, group: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.group, self.headers = base, group, headers
        self.latencies_ms: list[float] = []
        self.failures = 0
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while not self._halt.is_set():
                t = time.perf_counter()
                r = http.post(
                    f"/api/passenger-groups/{self.group}/care",
                    json={"need": "water", "what": "probe", "quantity": 1},
                    headers=self.headers,
                )
                self.latencies_ms.append((time.perf_counter() - t) * 1000)
                self.failures += r.status_code != 201
                self._halt.wait(0.05)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--bad", type=int, default=500)
    parser.add_argument("--duplicates", type=int, default=500)
    parser.add_argument("--encoding", default="utf-8", choices=["utf-8", "gb18030"])
    parser.add_argument("--commit", default=None, help="benchmark this commit (git archive)")
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    from cryptography.fernet import Fernet

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-import-"))
    src = source_tree(args.commit, tmp)
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    env = bench_env(
        f"sqlite:///{tmp / 'incident.db'}",
        src / "playbooks",
        src,
        INCIDENT_DATA_KEYS=Fernet.generate_key().decode(),
    )
    quiet = wait_for_quiet(args.quiet_wait)
    token = prepare(tmp, env)
    headers = {"Authorization": f"Bearer {token}"}
    rows: list[dict[str, Any]] = []
    ok = False
    server = Server(tmp, env, tmp / "server.log")
    try:
        server.start()
        pid = server.pid
        assert pid is not None
        with httpx.Client(base_url=server.base_url, timeout=600) as http:
            stopped = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            incident = http.post(
                "/api/incidents",
                json={
                    "playbook": "passenger-stranding",
                    "severity": "III",
                    "title": "Bench import",
                    "facts": {
                        "station": "Langfang",
                        "passengers_stranded": 1,
                        "stopped_since": stopped,
                    },
                },
                headers=headers,
            ).json()["id"]
            probe_group = http.post(
                f"/api/incidents/{incident}/passenger-groups",
                json={"station": "Langfang", "count": 1},
                headers=headers,
            ).json()["id"]
            for rep in range(args.reps):
                path = tmp / f"manifest-{rep}.csv"
                made = write_manifest(
                    path, args.rows, args.bad, args.duplicates, rep, args.encoding
                )
                group = http.post(
                    f"/api/incidents/{incident}/passenger-groups",
                    json={"train": f"G{rep}", "station": "Langfang", "count": args.rows},
                    headers=headers,
                ).json()["id"]
                time.sleep(0.5)
                hwm0, rss0, cpu0 = vm(pid, "VmHWM"), vm(pid, "VmRSS"), cpu_s(pid)
                probe = Probe(server.base_url, probe_group, headers)
                probe.start()
                t0 = time.perf_counter()
                r = http.post(
                    f"/api/passenger-groups/{group}/passengers",
                    content=chunks(path),
                    headers={**headers, "Content-Type": f"text/csv; charset={args.encoding}"},
                )
                wall = time.perf_counter() - t0
                probe.stop()
                cpu = cpu_s(pid) - cpu0
                hwm1 = vm(pid, "VmHWM")
                report = r.json()
                row = {
                    "rep": rep,
                    "rows": args.rows,
                    "bytes": path.stat().st_size,
                    "status": r.status_code,
                    "seconds": round(wall, 2),
                    "rows_per_s": round(args.rows / wall, 0),
                    "server_peak_rss_mb": hwm1,
                    "server_rss_before_mb": rss0,
                    "server_peak_before_mb": hwm0,
                    "server_peak_added_mb": round((hwm1 or 0) - (rss0 or 0), 1),
                    "server_cpu_s": round(cpu, 2),
                    "stored": report.get("stored"),
                    "merged": report.get("merged"),
                    "rejected": report.get("rejected_count"),
                    "expected": made,
                    "verified": r.status_code == 201
                    and report.get("stored") == made["good"]
                    and report.get("rejected_count") == made["bad"]
                    and report.get("merged") == made["duplicates"],
                    "probe_write_ms": stats_ms(probe.latencies_ms),
                    "probe_failures": probe.failures,
                }
                rows.append(row)
                path.unlink()
                probe_ms = row["probe_write_ms"]
                print(
                    f"[rep {rep}] {args.rows:,} rows ({row['bytes'] / 2**20:.1f} MiB"
                    f" {args.encoding}): {row['seconds']} s, {row['rows_per_s']:,.0f} rows/s,"
                    f" server peak RSS {hwm1} MB (+{row['server_peak_added_mb']} over {rss0} MB),"
                    f" cpu {row['server_cpu_s']} s; stored {row['stored']}, merged"
                    f" {row['merged']}, rejected {row['rejected']}, verified={row['verified']};"
                    f" probe writes p99 {probe_ms.get('p99')} ms, max {probe_ms.get('max')} ms",
                    flush=True,
                )
        ok = all(r["verified"] for r in rows)
    finally:
        server.stop()
        log = log_summary(tmp / "server.log")
    summary = {
        "seconds": statistics.median(r["seconds"] for r in rows) if rows else None,
        "seconds_range": [min(r["seconds"] for r in rows), max(r["seconds"] for r in rows)]
        if rows
        else None,
        "server_peak_rss_mb": max((r["server_peak_rss_mb"] or 0) for r in rows) if rows else None,
        "probe_write_p99_ms": statistics.median(r["probe_write_ms"].get("p99", 0) for r in rows)
        if rows
        else None,
        "probe_write_max_ms": max(r["probe_write_ms"].get("max", 0) for r in rows)
        if rows
        else None,
        "meets_10s": bool(rows) and statistics.median(r["seconds"] for r in rows) < 10,
        "meets_200mb": bool(rows) and max((r["server_peak_rss_mb"] or 0) for r in rows) < 200,
        "verified": ok,
    }
    result = {
        "benchmark": NAME,
        "at": stamp,
        "source": source,
        "backend": "sqlite",
        "encoding": args.encoding,
        "rows": args.rows,
        "reps": args.reps,
        "summary": summary,
        "runs": rows,
        "server_log": log,
        "machine": {**machine(), **quiet},
        "target": "100,000 rows < 10 s, < 200 MB",
    }
    path = write_result(NAME, stamp, result)
    print(
        f"\nmanifest import ({source}, sqlite, {args.encoding}): median {summary['seconds']} s"
        f" (range {summary['seconds_range']}), server peak RSS {summary['server_peak_rss_mb']} MB;"
        f" targets < 10 s: {'meets' if summary['meets_10s'] else 'MISSES'},"
        f" < 200 MB: {'meets' if summary['meets_200mb'] else 'MISSES'}; probe writes p99"
        f" {summary['probe_write_p99_ms']} ms, max {summary['probe_write_max_ms']} ms;"
        f" verified {ok}"
    )
    events = log.get("warning_error_events") or "none"
    print(f"  server log: {log.get('lines_by_level')}, warnings/errors {events}")
    print(f"  results: {path.relative_to(REPO)}")
    if args.keep or not ok:
        print(f"  kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
