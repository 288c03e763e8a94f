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

    def conditions(self, now: datetime) -> list[Condition]:
        """What is wrong now."""
        stale = self.settings.auditor_worker_stale_seconds
        late_by = timedelta(seconds=self.settings.auditor_late_seconds)
        found = []
        with self.db.reading() as session:
            workers = operations.workers(session=session, now=now)
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
        for worker in workers:
            if not worker.stopped and worker.age_s > stale:
                found.append(
                    Condition(
                        f"worker:{worker.owner}",
                        f"worker {worker.owner} on {worker.host} has been "
                        f"silent for {worker.age_s:.0f} s",
                    )
                )
        alive = [w for w in workers if not w.stopped and w.age_s <= stale]
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
        current = {c.key: c for c in self.conditions(now)}
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
            except Exception as exc:  # the database may be away: that is worth a log line
                log.error("audit_failed", error=str(exc))
            self._stop.wait(self.settings.auditor_interval_seconds)

    def stop(self) -> None:
        self._stop.set()
