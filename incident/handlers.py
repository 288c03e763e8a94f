"""Job handlers: one thin function per job kind.

A handler runs inside the transaction that also completes its job, so its effects and the
job's completion commit together. Sending (``delivery.send``) is the worker's concurrent path:
it sends between transactions and records outcomes through :func:`record_sent`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from incident import command, delivery, drills, notices, paging, passengers, response
from incident.catalog import Catalog
from incident.channel_limits import Rate, host_of, parse_rules
from incident.channels import Outcome, SendPolicy
from incident.errors import ConfigError
from incident.jobs import Claimed
from incident.models import Delivery, InboxMessage, Incident, Page
from incident.playbook import Playbook
from incident.security import AckLinks
from incident.settings import Settings


def gateway_rates(settings: Settings) -> dict[str, Rate]:
    """The rate rules of INCIDENT_CHANNEL_RATES, and the SMS gateway's own rate."""
    rules = parse_rules(settings.channel_rates, setting="INCIDENT_CHANNEL_RATES")
    if settings.sms_gateway_rate.strip():
        host = host_of(str(settings.sms_gateway).replace("{phone}", "0"))
        if not host:
            raise ConfigError("INCIDENT_SMS_GATEWAY_RATE: INCIDENT_SMS_GATEWAY names no host")
        rules[host] = Rate.parse(settings.sms_gateway_rate, setting="INCIDENT_SMS_GATEWAY_RATE")
    return rules


@dataclass(frozen=True)
class Context:
    """What every handler may use besides its session."""

    settings: Settings
    catalog: Catalog
    policy: paging.PagingPolicy

    @classmethod
    def build(cls, settings: Settings, catalog: Catalog) -> Context:
        links = AckLinks(
            settings.secret_key, settings.public_url, timedelta(minutes=settings.ack_link_minutes)
        )
        policy = paging.PagingPolicy(
            links=links,
            zone=settings.zone,
            flood_limit=settings.page_flood_limit,
            flood_window=timedelta(minutes=settings.page_flood_window_minutes),
        )
        return cls(settings=settings, catalog=catalog, policy=policy)

    def send_policy(self) -> SendPolicy:
        s = self.settings
        return SendPolicy(
            attempts=s.delivery_attempts,
            attempt_timeout=s.delivery_attempt_timeout_seconds,
            total_seconds=s.delivery_total_seconds,
            backoff_seconds=s.delivery_backoff_seconds,
            in_flight=s.delivery_in_flight,
            rates=tuple(gateway_rates(s).items()),
        )

    def playbook_for(self, incident_id: str | None, *, session: Session) -> Playbook | None:
        incident = session.get(Incident, incident_id) if incident_id else None
        return None if incident is None else response.playbook_of(incident, self.catalog)


Handler = Callable[[Claimed, Session, datetime, Context], None]


def fire_stage(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    response.fire_stage(
        int(job.payload["stage_id"]),
        job.payload["occurrence"],
        session=session,
        now=now,
        catalog=ctx.catalog,
        policy=ctx.policy,
    )


def evaluate_incident(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    incident = session.get(Incident, job.payload["incident_id"])
    if incident is not None:
        response.evaluate_conditions(
            incident,
            response.playbook_of(incident, ctx.catalog),
            session=session,
            now=now,
            checked_for=job.run_at,
        )


def page_deadline(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    page = session.get(Page, job.payload["page_id"])
    if page is not None:
        paging.on_deadline(
            page.id,
            int(job.payload["level"]),
            session=session,
            now=now,
            policy=ctx.policy,
            playbook=ctx.playbook_for(page.incident_id, session=session),
        )


def send_bundle(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    paging.send_bundle(str(job.payload["address_hash"]), session=session, now=now)


def attempts_of(outcome: Outcome) -> list[delivery.Attempt]:
    """The attempts a send made, as the delivery records them."""
    return [
        delivery.Attempt(t.started_at, t.duration_ms, t.outcome, t.status_code, t.error)
        for t in outcome.tries
    ]


def record_sent(
    outcomes: list[Outcome], *, session: Session, now: datetime, ctx: Context
) -> list[delivery.Recorded]:
    """Store what sending did for many deliveries at once, and move their pages on. Sends
    that were deferred or handed back keep their delivery queued (attempts stored)."""

    delivery.record_outcomes(
        {o.delivery_id: attempts_of(o) for o in outcomes if not o.final},
        session=session,
        now=now,
        final=False,
    )
    recorded = delivery.record_outcomes(
        {o.delivery_id: attempts_of(o) for o in outcomes if o.final},
        session=session,
        now=now,
        notes={o.delivery_id: o.note for o in outcomes if o.final and o.note},
    )
    # Only pages and the demo inbox need more than the status: load just those, as stored now.
    wanted = [r.id for r in recorded if r.purpose == "page" or r.channel == "inbox"]
    loaded = (
        session.scalars(
            select(Delivery)
            .where(Delivery.id.in_(wanted))
            .order_by(Delivery.id)
            .execution_options(populate_existing=True)
        ).all()
        if wanted
        else []
    )
    file_in_inbox(
        [d for d in loaded if d.status == "delivered" and d.channel == "inbox"],
        session=session,
        now=now,
    )
    pages = [d for d in loaded if d.purpose == "page"]
    paging.mark_delivered([d for d in pages if d.status == "delivered"], session=session)
    for sent in pages:
        if sent.status != "delivered":  # failures move the page on, one by one
            paging.on_delivery_outcome(
                sent,
                session=session,
                now=now,
                policy=ctx.policy,
                playbook=ctx.playbook_for(sent.incident_id, session=session),
            )
    return recorded


def file_in_inbox(made: list[Delivery], *, session: Session, now: datetime) -> None:
    """The demo channel's receiver: keep each message (once) for the demo inbox."""
    if not made:
        return
    rows = [
        {
            "address": d.address,
            "subject": d.subject,
            "body": d.body,
            "idempotency_key": d.idempotency_key,
            "received_at": now,
        }
        for d in made
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(InboxMessage).on_conflict_do_nothing(index_elements=["idempotency_key"]), rows
    )


def check_notice_due(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    notices.check_due(
        str(job.payload["notice_id"]),
        int(job.payload["version"]),
        session=session,
        now=now,
        policy=ctx.policy,
    )


def start_scheduled_drill(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    drills.start_scheduled(
        str(job.payload["schedule_id"]),
        job.run_at,
        session=session,
        now=now,
        zone=ctx.settings.zone,
        catalog=ctx.catalog,
    )


def corrective_action_due(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    drills.on_action_due(str(job.payload["action_id"]), session=session, now=now, policy=ctx.policy)


# -- stranded passengers (#5) -----------------------------------------------------------------
def prepare_broadcast(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    passengers.broadcasts.prepare(
        str(job.payload["broadcast_id"]),
        int(job.payload["after"]),
        session=session,
        now=now,
        settings=ctx.settings,
    )


def discard_manifest(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    passengers.manifests.discard_rows(
        str(job.payload["upload_id"]), int(job.payload["round"]), session=session, now=now
    )


def callback_due(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    passengers.inquiries.on_deadline(
        str(job.payload["inquiry_id"]),
        session=session,
        now=now,
        policy=ctx.policy,
        vault=passengers.Vault.from_settings(ctx.settings),
    )


def purge_passengers(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    passengers.retention.run_purge_job(
        str(job.payload["incident_id"]),
        int(job.payload["round"]),
        session=session,
        now=now,
        retention=timedelta(days=ctx.settings.passenger_retention_days),
    )


# -- command (#10) -----------------------------------------------------------------------------
def task_due(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    command.tasks.on_due(str(job.payload["task_id"]), session=session, now=now, policy=ctx.policy)


def authority_report_due(job: Claimed, session: Session, now: datetime, ctx: Context) -> None:
    command.reports.on_due(
        str(job.payload["report_id"]), session=session, now=now, policy=ctx.policy
    )


HANDLERS: dict[str, Handler] = {
    "stage.fire": fire_stage,
    "incident.evaluate": evaluate_incident,
    paging.DEADLINE_JOB: page_deadline,
    paging.BUNDLE_JOB: send_bundle,
    drills.START_JOB: start_scheduled_drill,
    drills.ACTION_DUE_JOB: corrective_action_due,
    notices.CHECK_DUE_JOB: check_notice_due,
    passengers.PREPARE_JOB: prepare_broadcast,
    passengers.DISCARD_JOB: discard_manifest,
    passengers.CALLBACK_JOB: callback_due,
    passengers.PURGE_JOB: purge_passengers,
    command.TASK_DUE_JOB: task_due,
    command.REPORT_DUE_JOB: authority_report_due,
}
