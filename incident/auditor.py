"""The auditor: a process apart from the workers it watches. It alerts when a worker stops
beating, when no worker is alive while jobs wait, when escalations and stages run late, when
jobs failed for good or keep failing; and says so again when the condition clears. It sends
its alerts itself, not through the job queue, because the queue is what it watches."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from incident import operations
from incident.channels import Message, Sender
from incident.clock import Clock
from incident.db import Database
from incident.logs import get_logger
from incident.settings import Settings

log = get_logger(__name__)
WATCHED_KINDS = (
    "page.deadline",
    "stage.fire",
    "incident.evaluate",
    "drill.start",
    "delivery.send",
    "notice.check_due",
)
WORKER_LOOKBACK = timedelta(days=7)  # a silent worker is looked for this far back ...
# ... and, beyond that, by name while it is alerted (the auditor remembers what it alerted).
DATABASE_FAILED_CHECKS = 2  # failed checks in a row before the database is alerted
RETRYING_ATTEMPTS = 3  # a queued job that failed this often is reported as retrying
NAMED_FAILURES = 10  # failed jobs named in one alert (the count covers the rest)


@dataclass(frozen=True)
class Condition:
    key: str
    text: str
    version: str = ""  # a condition still present with another version is alerted again


def describe_job(job: operations.TroubledJob) -> str:
    """Which job, of which incident, and what it was for (stage, page, notice...)."""
    parts = [f"{job.kind} job {job.id}"]
    if job.incident_id:
        parts.append(f"of incident {job.incident_id}")
    for field, name in (
        ("stage_id", "stage"),
        ("page_id", "page"),
        ("notice_id", "notice"),
        ("task_id", "task"),
        ("report_id", "report"),
        ("schedule_id", "drill schedule"),
    ):
        if field in job.payload:
            parts.append(f"{name} {job.payload[field]}")
    return " ".join(parts)


class Auditor:
    def __init__(
        self, db: Database, settings: Settings, clock: Clock, sender: Sender | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.sender = sender
        self.urls = [u.strip() for u in str(settings.ops_alert_urls).split(",") if u.strip()]
        self.active: dict[str, Condition] = {}
        self._stop = threading.Event()
        self._sent = 0
        self._failed_checks = 0  # in a row

    def conditions(self, now: datetime) -> list[Condition]:
        """What is wrong now."""
        stale = self.settings.auditor_worker_stale_seconds
        late_by = timedelta(seconds=self.settings.auditor_late_seconds)
        found = []
        with self.db.reading() as session:
            alerted = [k.split(":", 1)[1] for k in self.active if k.startswith("worker:")]
            workers = operations.workers(
                session=session, now=now, within=WORKER_LOOKBACK, also=alerted
            )
            late = operations.late_jobs(
                session=session, now=now, kinds=WATCHED_KINDS, late_by=late_by
            )
            due = operations.queue_depth(session=session, now=now)
            window = timedelta(hours=self.settings.auditor_failed_job_hours)
            failed = operations.failed_jobs(
                session=session, now=now, within=window, limit=NAMED_FAILURES
            )
            failed_total = (
                sum(operations.failed_counts(session=session, now=now, within=window).values())
                if failed
                else 0
            )
            retrying = operations.retrying_jobs(session=session, min_attempts=RETRYING_ATTEMPTS)
        alive = [w for w in workers if not w.stopped and w.age_s <= stale]
        for worker in workers:
            if worker.stopped or worker.age_s <= stale:
                continue
            last_beat = now - timedelta(seconds=worker.age_s)
            successor = next(
                (
                    w
                    for w in alive
                    if w.host == worker.host and w.started_at and w.started_at >= last_beat
                ),
                None,
            )
            if successor is not None:  # restarted on its host: the new one does its work
                if f"worker:{worker.owner}" in self.active:
                    log.info("audit_worker_replaced", worker=worker.owner, by=successor.owner)
                continue
            if not worker.stopped and worker.age_s > stale:
                found.append(
                    Condition(
                        f"worker:{worker.owner}",
                        f"worker {worker.owner} on {worker.host} has been "
                        f"silent for {worker.age_s:.0f} s",
                    )
                )
        if not alive and due:
            waiting = sum(count for count, _ in due.values())
            found.append(
                Condition("no-worker", f"no worker is running and {waiting} job(s) are due")
            )
        kinds = sorted({job.kind for job in late})
        for kind in kinds:
            oldest = min(job.run_at for job in late if job.kind == kind)
            found.append(
                Condition(
                    f"late:{kind}",
                    f"{kind} jobs are running late: the oldest "
                    f"was due {(now - oldest).total_seconds():.0f}"
                    f" s ago",
                )
            )
        found.extend(self._job_conditions(failed, failed_total, retrying))
        return found

    def _job_conditions(
        self,
        failed: list[operations.TroubledJob],
        failed_total: int,
        retrying: list[operations.TroubledJob],
    ) -> list[Condition]:
        found = []
        if failed:
            named = "; ".join(f"{describe_job(j)} ({j.error})" for j in failed)
            more = f"; and {failed_total - len(failed)} more" if failed_total > len(failed) else ""
            found.append(
                Condition(
                    "failed-jobs",
                    f"{failed_total} job(s) failed for good in the last "
                    f"{self.settings.auditor_failed_job_hours:g} h and did not run: {named}{more}",
                    version=str(max(j.id for j in failed)),
                )
            )
        for kind in sorted({j.kind for j in retrying}):
            of_kind = [j for j in retrying if j.kind == kind]
            worst = of_kind[0]  # the most tried first
            found.append(
                Condition(
                    f"retrying:{kind}",
                    f"{len(of_kind)} {kind} job(s) keep failing and are being retried "
                    f"({describe_job(worst)} failed {worst.attempts} of "
                    f"{self.settings.job_max_attempts} attempts: {worst.error})",
                )
            )
        return found

    def check(self) -> list[str]:
        """Check once; alert what became wrong and what recovered. Return the texts sent."""
        now = self.clock.now()
        found: list[Condition] | None
        try:
            found = self.conditions(now)
        except Exception as exc:  # the database is away (or worse): that is an alert too
            found = self._database_failed(exc)
        else:
            if self._failed_checks:
                log.warning("audit_resumed", failed_checks=self._failed_checks)
                self._failed_checks = 0
        if found is None:  # a first failed check: wait for the next before alerting
            return []
        current = {c.key: c for c in found}
        texts = []
        for key, condition in current.items():
            before = self.active.get(key)
            if before is None or before.version != condition.version:
                log.error("audit_alert", condition=key, detail=condition.text)
                texts.append(f"[incident auditor] ALERT: {condition.text}")
        for key, condition in self.active.items():
            if key not in current:
                log.warning("audit_recovered", condition=key)
                texts.append(f"[incident auditor] recovered: {condition.text}")
        self.active = current
        for text in texts:
            self._send(text, now)
        return texts

    def _database_failed(self, exc: Exception) -> list[Condition] | None:
        """After DATABASE_FAILED_CHECKS failed checks in a row, the conditions to hold: those
        alerted before (unknown now, not cleared) and ``database``; None before that."""
        self._failed_checks += 1
        cause = getattr(exc, "orig", None) or exc  # not the SQL and its parameters
        log.error(
            "audit_failed",
            error_type=type(cause).__name__,
            error=(str(cause).splitlines() or [""])[0][:300],
            failed_checks=self._failed_checks,
        )
        if self._failed_checks < DATABASE_FAILED_CHECKS:
            return None
        held = [c for key, c in self.active.items() if key != "database"]
        database = self.active.get("database") or Condition(
            "database",
            f"the database does not answer the auditor ({type(cause).__name__}, "
            f"{self._failed_checks} checks in a row): workers, jobs and pages cannot be watched",
        )
        return [*held, database]

    def _send(self, text: str, now: datetime) -> None:
        if self.sender is None:
            return
        for url in self.urls:
            self._sent += 1
            key = f"audit:{now.strftime('%Y%m%dT%H%M%S')}:{self._sent}"
            outcome = self.sender.send_now(
                Message(0, url, "incident auditor", text, key), timeout=60
            )
            if not outcome.delivered:
                log.error("audit_alert_undelivered", attempts=len(outcome.tries))

    def run_forever(self) -> None:
        log.info("auditor_started", urls=len(self.urls))
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # sending failed: the next round tries again
                log.error("audit_round_failed", error_type=type(exc).__name__)
            self._stop.wait(self.settings.auditor_interval_seconds)

    def stop(self) -> None:
        self._stop.set()
