"""``/metrics`` in the Prometheus text format, read from the database on each scrape, so every
instance reports the same shared state: deliveries by channel and outcome, job queue depth and
lateness, jobs that failed or keep failing, pages awaiting acknowledgement, acknowledgement
times, worker heartbeat ages."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from incident import operations
from incident.errors import AuthError, Forbidden
from incident.web.state import state_of

ACK_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
FAILED_WINDOW = timedelta(hours=24)
RETRIED_ATTEMPTS = 2


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def _histogram(values: Iterable[float]) -> HistogramMetricFamily:
    data = sorted(values)
    buckets = [(str(bound), float(sum(1 for v in data if v <= bound))) for bound in ACK_BUCKETS]
    buckets.append(("+Inf", float(len(data))))
    return HistogramMetricFamily(
        "incident_page_ack_seconds",
        "Seconds from a page to its acknowledgement",
        buckets=buckets,
        sum_value=sum(data),
    )


def families(session: Session, now: Any) -> list[Metric]:
    deliveries = GaugeMetricFamily(
        "incident_deliveries",
        "Deliveries by purpose, channel and status (all time)",
        labels=["purpose", "channel", "status"],
    )
    for (purpose, channel, status), count in sorted(
        operations.delivery_counts(session=session).items()
    ):
        deliveries.add_metric([purpose, channel, status], count)
    depth = GaugeMetricFamily(
        "incident_jobs_due", "Jobs due now and not yet run, by kind", labels=["kind"]
    )
    lateness = GaugeMetricFamily(
        "incident_jobs_oldest_due_seconds",
        "How long the oldest due job of each kind has waited",
        labels=["kind"],
    )
    for kind, (count, late) in sorted(operations.queue_depth(session=session, now=now).items()):
        depth.add_metric([kind], count)
        lateness.add_metric([kind], late)
    failed = GaugeMetricFamily(
        "incident_jobs_failed",
        "Jobs that failed for good (and did not run) in the last 24 h, by kind",
        labels=["kind"],
    )
    counts = operations.failed_counts(session=session, now=now, within=FAILED_WINDOW)
    for kind, count in sorted(counts.items()):
        failed.add_metric([kind], count)
    retrying = GaugeMetricFamily(
        "incident_jobs_retrying",
        f"Queued jobs that failed {RETRIED_ATTEMPTS} or more attempts and wait to be retried, "
        "by kind",
        labels=["kind"],
    )
    counts = operations.retrying_counts(session=session, min_attempts=RETRIED_ATTEMPTS)
    for kind, count in sorted(counts.items()):
        retrying.add_metric([kind], count)
    awaiting = GaugeMetricFamily(
        "incident_pages_awaiting_ack", "Pages sent or escalated and not yet acknowledged"
    )
    awaiting.add_metric([], operations.pages_awaiting_ack(session=session))
    beats = GaugeMetricFamily(
        "incident_worker_heartbeat_age_seconds",
        "Seconds since each worker last recorded it was alive",
        labels=["worker", "host"],
    )
    for worker in operations.workers(session=session, now=now):
        if not worker.stopped:
            beats.add_metric([worker.owner, worker.host], worker.age_s)
    return [
        deliveries,
        depth,
        lateness,
        failed,
        retrying,
        awaiting,
        beats,
        _histogram(operations.ack_seconds(session=session)),
    ]


def _check_access(request: Request) -> None:
    """With ``INCIDENT_METRICS_TOKEN``: that bearer token; without: loopback peers only."""
    token = str(state_of(request).settings.metrics_token)
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise AuthError("send Authorization: Bearer <INCIDENT_METRICS_TOKEN>")
        return
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise Forbidden("/metrics answers loopback only; set INCIDENT_METRICS_TOKEN to scrape it")


async def metrics(request: Request) -> Response:
    """Prometheus metrics of the shared state (a bearer token, or loopback only)."""
    _check_access(request)
    state = state_of(request)

    def run() -> bytes:
        with state.db.reading() as session:
            found = families(session, state.clock.now())
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(found))
        return generate_latest(registry)

    return Response(await run_in_threadpool(run), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
