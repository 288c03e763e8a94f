"""Stage-firing lateness with 1,000 active incidents on SQLite and the embedded worker.

    .venv/bin/python bench/stage_lateness.py [--incidents 1000] [--spread 20] [--clients 4]
        [--horizon 90] [--give-up 240] [--keep]

Writes a bench-only playbook (declared, after 20s, after 40s, every 30s and
`if minutes_since(stopped_since) >= 1`, each with one task action) into a temp playbooks
folder, starts `incident serve` on a SQLite database in the temp dir, declares --incidents
incidents over HTTP spread evenly over --spread seconds, waits until every job due up to
--horizon seconds after the last declaration has run (giving up --give-up seconds after the
first declaration), stops the server by its PID, then reads the database: lateness of each
`stage:fired` event = its `at` minus `data.due_at`. Target (issue): p99 under 1 s.
"""

from __future__ import annotations

import argparse
import json
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import (
    REPO,
    CpuSampler,
    Server,
    bench_env,
    git_commit,
    log_summary,
    machine,
    prepare,
    run_cli,
    source_tree,
    stats_ms,
    utc_stamp,
    wait_for_quiet,
    write_result,
)

NAME = "stage_lateness"
PLAYBOOK_ID = "bench-timers"
IF_THRESHOLD = timedelta(minutes=1)  # the `if` stage below: minutes_since(stopped_since) >= 1

PLAYBOOK = """\
# Bench only: timed stages that fall due within two minutes of declaration.
id: bench-timers
version: 1
title: {zh: 计时基准, en: Timer benchmark}
kind: bench
inputs:
  line: {type: str, required: true, title: {zh: 线路, en: Line}}
  stopped_since: {type: datetime, required: true, title: {zh: 停车时刻, en: Stopped since}}
stages:
  - id: at-declaration
    when: declared
    actions:
      - task: {department: coordination, title: {zh: 任务, en: Task}, due: 10m}
  - id: after-20s
    when: {after: 20s}
    actions:
      - task: {department: coordination, title: {zh: 任务, en: Task}, due: 10m}
  - id: after-40s
    when: {after: 40s}
    actions:
      - task: {department: inquiry, title: {zh: 任务, en: Task}, due: 10m}
  - id: every-30s
    when: {every: 30s}
    actions:
      - task: {department: operations, title: {zh: 任务, en: Task}, due: 10m}
  - id: stopped-1m
    when: {if: "minutes_since(stopped_since) >= 1"}
    actions:
      - task: {department: coordination, title: {zh: 任务, en: Task}, due: 10m}
"""
TRIGGERS = {
    "at-declaration": "declared",
    "after-20s": "after",
    "after-40s": "after",
    "every-30s": "every",
    "stopped-1m": "if",
}
EVERY = timedelta(seconds=30)


def parse_db_time(value: Any) -> datetime:
    """Times as the app stores them in SQLite: naive UTC text; return aware UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def db_time(moment: datetime) -> str:
    """An aware datetime as the app's SQLite text (comparable as a string)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def declare_all(
    base_url: str, token: str, n: int, spread: float, clients: int
) -> tuple[list[dict[str, Any]], datetime, datetime]:
    """Declare n incidents, incident i at start + i*spread/n, with a few concurrent clients."""
    todo: queue.Queue[int] = queue.Queue()
    for i in range(n):
        todo.put(i)
    records: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.5
    first_utc = datetime.now(UTC) + timedelta(seconds=0.5)
    errors: list[BaseException] = []

    def client_loop() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
                while True:
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    delay = start + i * spread / n - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    sent = datetime.now(UTC)
                    t0 = time.perf_counter()
                    r = client.post(
                        "/api/incidents",
                        json={
                            "playbook": PLAYBOOK_ID,
                            "severity": "III",
                            "title": f"Bench timers {i}",
                            "facts": {"line": "G", "stopped_since": sent.isoformat()},
                        },
                    )
                    ms = (time.perf_counter() - t0) * 1000
                    rec = {
                        "i": i,
                        "status": r.status_code,
                        "ms": ms,
                        "behind_schedule_ms": (t0 - (start + i * spread / n)) * 1000,
                        "id": r.json().get("id") if r.status_code == 201 else None,
                        "error": None if r.status_code == 201 else r.text[:300],
                    }
                    with lock:
                        records.append(rec)
        except BaseException as exc:  # report after the other clients finish
            errors.append(exc)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"a declaring client failed: {errors[0]!r}") from errors[0]
    return records, first_utc, datetime.now(UTC)


def pending_due(engine: Any, cutoff: datetime) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
                    " AND run_at <= :cutoff"
                ),
                {"cutoff": db_time(cutoff)},
            ).scalar_one()
        )


def logged_times(
    log_path: Path,
) -> tuple[dict[tuple[str, str, str], datetime], dict[str, datetime]]:
    """When the server logged each `stage_fired` and each `incident_declared`: both are
    logged after the work, just before the commit (the events' `at` is taken before the
    transaction starts, so before waiting for SQLite's write lock)."""
    fires: dict[tuple[str, str, str], datetime] = {}
    declared: dict[str, datetime] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return fires, declared
    for line in lines:
        if '"stage_fired"' not in line and '"incident_declared"' not in line:
            continue
        try:
            rec = json.loads(line)
            when = datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00"))
            if rec["event"] == "stage_fired":
                fires[(rec["incident_id"], rec["stage"], str(rec["occurrence"]))] = when
            elif rec["event"] == "incident_declared":
                declared[rec["incident_id"]] = when
        except (ValueError, KeyError):
            continue
    return fires, declared


def analyse(
    engine: Any, first: datetime, cutoff: datetime, log_path: Path, cpu: CpuSampler | None
) -> dict[str, Any]:
    """Read the database (after the server stopped) and the server log."""
    with engine.connect() as conn:
        incidents = {
            row.id: (parse_db_time(row.declared_at), json.loads(row.facts))
            for row in conn.execute(
                text("SELECT id, declared_at, facts FROM incidents WHERE playbook_id = :p"),
                {"p": PLAYBOOK_ID},
            )
        }
        fired = conn.execute(
            text(
                "SELECT incident_id, seq, at, data FROM timeline_events WHERE kind = 'stage:fired'"
            )
        ).all()
        all_events = conn.execute(
            text("SELECT incident_id, seq, at FROM timeline_events ORDER BY incident_id, seq")
        ).all()
        job_rows = conn.execute(
            text("SELECT kind, status, run_at, finished_at, attempts FROM jobs")
        ).all()

    logged, declared_logged = logged_times(log_path)
    declaration_wait: list[float] = []
    declared_stage_after_declaration: list[float] = []
    for incident_id, (declared_at, _) in incidents.items():
        if incident_id in declared_logged:
            wait = (declared_logged[incident_id] - declared_at).total_seconds() * 1000
            declaration_wait.append(wait)
    by_log: list[float] = []
    log_minus_at: list[float] = []
    seconds: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"declared": 0, "due": 0, "fired": 0, "max_late_ms": 0.0}
    )
    for declared_at, _ in incidents.values():
        seconds[int((declared_at - first).total_seconds())]["declared"] += 1
    by_kind: dict[str, list[float]] = defaultdict(list)
    by_stage: dict[str, list[float]] = defaultdict(list)
    overall: list[float] = []
    if_vs_threshold: list[float] = []
    buckets: dict[int, list[float]] = defaultdict(list)
    outliers: list[dict[str, Any]] = []
    fired_within: Counter[str] = Counter()
    no_due = 0
    for row in fired:
        data = json.loads(row.data)
        stage = data.get("stage")
        at = parse_db_time(row.at)
        if not data.get("due_at"):
            no_due += 1
            continue
        due = datetime.fromisoformat(data["due_at"])
        late = (at - due).total_seconds() * 1000
        kind = TRIGGERS.get(stage, "other")
        by_kind[kind].append(late)
        by_stage[stage].append(late)
        overall.append(late)
        buckets[int((due - first).total_seconds() // 10) * 10].append(late)
        sec = seconds[int((due - first).total_seconds())]
        sec["due"] += 1
        sec["max_late_ms"] = max(sec["max_late_ms"], round(late, 1))
        seconds[int((at - first).total_seconds())]["fired"] += 1
        seen = logged.get((row.incident_id, stage, str(data.get("occurrence"))))
        if seen is not None:
            by_log.append((seen - due).total_seconds() * 1000)
            log_minus_at.append((seen - at).total_seconds() * 1000)
            if kind == "declared" and row.incident_id in declared_logged:
                after = (seen - declared_logged[row.incident_id]).total_seconds() * 1000
                declared_stage_after_declaration.append(after)
        if due <= cutoff:
            fired_within[stage] += 1
        outliers.append(
            {
                "late_ms": round(late, 1),
                "stage": stage,
                "occurrence": data.get("occurrence"),
                "due_s_after_first_declaration": round((due - first).total_seconds(), 3),
                "incident": row.incident_id,
            }
        )
        if kind == "if" and row.incident_id in incidents:
            stopped = datetime.fromisoformat(incidents[row.incident_id][1]["stopped_since"])
            if_vs_threshold.append((at - (stopped + IF_THRESHOLD)).total_seconds() * 1000)
    outliers.sort(key=lambda o: -o["late_ms"])

    # What should have fired by the cutoff, from each incident's declaration time.
    expected: Counter[str] = Counter()
    for declared_at, facts in incidents.values():
        expected["at-declaration"] += 1
        for stage, delay in (("after-20s", 20), ("after-40s", 40)):
            expected[stage] += declared_at + timedelta(seconds=delay) <= cutoff
        expected["every-30s"] += max(0, int((cutoff - declared_at) / EVERY))
        stopped = datetime.fromisoformat(facts["stopped_since"])
        expected["stopped-1m"] += stopped + IF_THRESHOLD <= cutoff

    # Timeline `at` going backwards within an incident (events appended out of time order).
    backwards = 0
    worst_backwards_ms = 0.0
    prev_id, prev_at = None, None
    for row in all_events:
        at = parse_db_time(row.at)
        if row.incident_id == prev_id and prev_at is not None and at < prev_at:
            backwards += 1
            worst_backwards_ms = max(worst_backwards_ms, (prev_at - at).total_seconds() * 1000)
        prev_id, prev_at = row.incident_id, at

    job_status: Counter[str] = Counter()
    job_kind_status: Counter[str] = Counter()
    job_run_late: dict[str, list[float]] = defaultdict(list)
    retried = 0
    for job in job_rows:
        job_status[job.status] += 1
        job_kind_status[f"{job.kind}:{job.status}"] += 1
        retried += job.attempts > 1
        if job.status == "done" and job.finished_at is not None:
            late = (parse_db_time(job.finished_at) - parse_db_time(job.run_at)).total_seconds()
            job_run_late[job.kind].append(late * 1000)

    return {
        "incidents_in_db": len(incidents),
        "stage_fired_events": len(fired),
        "stage_fired_without_due_at": no_due,
        "lateness_ms": {
            "overall": stats_ms(overall),
            **{f"trigger:{k}": stats_ms(v) for k, v in sorted(by_kind.items())},
            "if_vs_condition_threshold": stats_ms(if_vs_threshold),
            "overall_by_log_timestamp": stats_ms(by_log),
        },
        "log_timestamp_minus_at_ms": stats_ms(log_minus_at),
        "declaration_logged_minus_declared_at_ms": stats_ms(declaration_wait),
        "declared_stage_fire_logged_minus_declaration_logged_ms": stats_ms(
            declared_stage_after_declaration
        ),
        "lateness_ms_by_stage": {k: stats_ms(v) for k, v in sorted(by_stage.items())},
        "lateness_ms_by_due_window_s": {
            f"{k}-{k + 10}": stats_ms(v) for k, v in sorted(buckets.items())
        },
        "fired_due_by_cutoff": dict(fired_within),
        "expected_due_by_cutoff": dict(expected),
        "missing_by_cutoff": {
            k: expected[k] - fired_within.get(k, 0)
            for k in expected
            if expected[k] != fired_within.get(k, 0)
        },
        "worst": outliers[:10],
        "timeline_at_backwards": {"events": backwards, "worst_ms": round(worst_backwards_ms, 1)},
        "jobs_by_status": dict(job_status),
        "jobs_by_kind_status": dict(sorted(job_kind_status.items())),
        "jobs_retried": retried,
        "job_finish_minus_run_at_ms": {k: stats_ms(v) for k, v in sorted(job_run_late.items())},
        "per_second": [
            {
                "s": k,
                **seconds[k],
                "cpu_server": cpu.percent(first.timestamp() + k - 0.3, first.timestamp() + k + 1.3)
                if cpu
                else None,
                "cpu_others": cpu.others_percent(
                    first.timestamp() + k - 0.3, first.timestamp() + k + 1.3
                )
                if cpu
                else None,
            }
            for k in sorted(seconds)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=20.0, help="seconds to declare over")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--horizon", type=float, default=90.0, help="wait for stages due this long after the last"
    )
    parser.add_argument(
        "--give-up", type=float, default=240.0, help="seconds after the first declaration"
    )
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
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, log)")
    args = parser.parse_args(argv)

    stamp = utc_stamp()
    tmp = Path(tempfile.mkdtemp(prefix="incident-bench-timers-"))
    playbooks = tmp / "playbooks"
    playbooks.mkdir()
    (playbooks / f"{PLAYBOOK_ID}.yaml").write_text(PLAYBOOK, encoding="utf-8")
    db_path = tmp / "incident.db"
    src = source_tree(args.commit, tmp)
    source = f"commit {git_commit(args.commit)}" if args.commit else "working tree"
    env = bench_env(f"sqlite:///{db_path}", playbooks, src)
    server = Server(tmp, env, tmp / "server.log")
    engine = create_engine(f"sqlite:///{db_path}")
    ok = False
    quiet: dict[str, Any] = {}
    gave_up = False
    records: list[dict[str, Any]] = []
    try:
        token = prepare(tmp, env)
        run_cli(["playbooks", "check"], cwd=tmp, env=env)
        quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else {}
        server.start()
        print(
            f"declaring {args.incidents} incidents over {args.spread:g}s"
            f" with {args.clients} clients ...",
            flush=True,
        )
        records, first, last = declare_all(
            server.base_url, token, args.incidents, args.spread, args.clients
        )
        cutoff = last + timedelta(seconds=args.horizon)
        give_up_at = first + timedelta(seconds=args.give_up)
        print(
            f"declared in {(last - first).total_seconds():.1f}s; waiting for every job due by"
            f" last+{args.horizon:g}s ({cutoff:%H:%M:%S} UTC) ...",
            flush=True,
        )
        left = -1
        while True:
            now = datetime.now(UTC)
            if server.proc is not None and server.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {server.proc.returncode}")
            if now >= cutoff:
                left = pending_due(engine, cutoff)
                if left == 0:
                    break
            if now >= give_up_at:
                gave_up = True
                print(f"giving up: {left} job(s) due by the cutoff still pending", flush=True)
                break
            time.sleep(1)
        ok = True
    finally:
        server.stop()
        log = log_summary(server.log_path)
        if not ok:
            print(f"server log tail ({server.log_path}):\n{server.log_tail()}", file=sys.stderr)
            print(f"kept {tmp}", file=sys.stderr)

    stopped_at = datetime.now(UTC)
    analysis = analyse(engine, first, cutoff, server.log_path, server.cpu)
    cpu = server.cpu
    cpu_declaring = cpu.percent(first.timestamp(), last.timestamp()) if cpu else None
    cpu_after = cpu.percent(last.timestamp(), stopped_at.timestamp()) if cpu else None
    others_declaring = cpu.others_percent(first.timestamp(), last.timestamp()) if cpu else None
    others_after = cpu.others_percent(last.timestamp(), stopped_at.timestamp()) if cpu else None
    engine.dispose()
    declared_ok = [r for r in records if r["status"] == 201]
    statuses = Counter(str(r["status"]) for r in records)
    result: dict[str, Any] = {
        "benchmark": NAME,
        "at": stamp,
        "backend": "sqlite",
        "source": source,
        "incidents": args.incidents,
        "spread_s": args.spread,
        "clients": args.clients,
        "horizon_s": args.horizon,
        "declaring_took_s": round((last - first).total_seconds(), 2),
        "declare_status": dict(statuses),
        "declare_latency_ms": stats_ms(r["ms"] for r in declared_ok),
        "declare_behind_schedule_ms": stats_ms(r["behind_schedule_ms"] for r in records),
        "server_cpu_percent": {"declaring": cpu_declaring, "after_declaring": cpu_after},
        "other_processes_cpu_percent": {
            "declaring": others_declaring,
            "after_declaring": others_after,
        },
        "gave_up": gave_up,
        "ran_s_after_first_declaration": round((stopped_at - first).total_seconds(), 1),
        **analysis,
        "server_exit_code": server.exit_code,
        "server_stop_signal": server.stop_signal,
        "server_log": log,
        "machine": {**machine(), **quiet},
        "target": "p99 lateness < 1000 ms",
    }
    path = write_result(NAME, stamp, result)

    lat = result["lateness_ms"]
    print(
        f"stage lateness (sqlite, {source}, {args.incidents} incidents, embedded worker):"
        f" {result['stage_fired_events']} stage:fired events"
    )
    print(f"  {'trigger':<28}{'count':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for key, s in lat.items():
        if s.get("count"):
            print(f"  {key:<28}{s['count']:>7}{s['p50']:>10}{s['p99']:>10}{s['max']:>10}")
    print("  by due time (s after first declaration):")
    for key, s in result["lateness_ms_by_due_window_s"].items():
        print(
            f"    {key:<10} n={s['count']:<5} p50 {s['p50']:>9}"
            f"  p99 {s['p99']:>9}  max {s['max']:>9}"
        )
    verdict = "meets" if lat["overall"].get("p99", 1e9) < 1000 else "MISSES"
    print(f"  target p99 < 1 s: {verdict}")
    print(f"  jobs by status: {result['jobs_by_status']}; retried: {result['jobs_retried']}")
    print(f"  missing by cutoff: {result['missing_by_cutoff'] or 'none'}; gave up: {gave_up}")
    print(
        f"  declarations: {dict(statuses)}, latency {result['declare_latency_ms'].get('p50')} ms"
        f" p50 / {result['declare_latency_ms'].get('p99')} ms p99"
    )
    print(
        f"  CPU (100 = one core): server {cpu_declaring}% while declaring, {cpu_after}% after;"
        f" other processes {others_declaring}% / {others_after}%\n"
        f"  fire logged {result['log_timestamp_minus_at_ms'].get('p50')} ms"
        f" p50 / {result['log_timestamp_minus_at_ms'].get('max')} ms max after its `at`"
    )
    print(
        "  declarations: work logged"
        f" {result['declaration_logged_minus_declared_at_ms'].get('p99')} ms p99 /"
        f" {result['declaration_logged_minus_declared_at_ms'].get('max')} ms max after"
        " their declared_at; declared stage fired"
        f" {result['declared_stage_fire_logged_minus_declaration_logged_ms'].get('p99')} ms p99"
        f" / {result['declared_stage_fire_logged_minus_declaration_logged_ms'].get('max')}"
        " ms max after the declaration was logged"
    )
    print(f"  timeline `at` going backwards: {result['timeline_at_backwards']}")
    print(
        f"  server log: {log.get('lines_by_level')}, warnings/errors:"
        f" {log.get('warning_error_events') or 'none'}"
    )
    print(f"  results: {path.relative_to(REPO)}")
    if args.keep:
        print(f"  kept {tmp}")
    elif ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok and not gave_up else 1


if __name__ == "__main__":
    raise SystemExit(main())
