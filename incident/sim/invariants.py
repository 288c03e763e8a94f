"""What must hold after a scenario, whatever happened during it.

Each check has a name (the allow-list of known defects is keyed by it) and says what it saw.
``at_end_of_day`` runs while the incidents are still open, once settling found nothing more
to do; ``final`` runs after everything was resolved and settled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident.db import Database
from incident.models import (
    Delivery,
    Incident,
    Job,
    Page,
    PageRecipient,
    Person,
    Stage,
    TimelineEvent,
)
from incident.notices import reading
from incident.sim.gateway import Gateway
from incident.sim.ledger import Ledger
from incident.sim.world import PUBLIC_CHANNEL
from incident.timeline import Kind

LIVE_PAGE = "live_page_answered"
ACK_KEPT = "ack_never_lost"
ONCE = "delivery_accepted_at_most_once"
STAGE_ONCE = "stage_fires_once"
AFTER_RESOLVE = "no_stage_after_resolve"
NOTHING_LEFT = "nothing_left_pending"
REACHED = "paged_person_reached_or_failed_over"
NO_FAILED_JOB = "no_job_fails"
DRILL = "drill_stays_private"
ROUNDS = "worker_rounds_do_not_crash"
QUIET = "sender_goes_quiet"
NAMES: tuple[str, ...] = (LIVE_PAGE, ACK_KEPT, ONCE, STAGE_ONCE, AFTER_RESOLVE, NOTHING_LEFT)
NAMES += (REACHED, NO_FAILED_JOB, DRILL, ROUNDS, QUIET)


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


def _live_open(ledger: Ledger) -> list[str]:
    return [i.id for i in ledger.incidents if i.mode == "live" and not i.resolved_by_scenario]


def unanswered(session: Session, ledger: Ledger) -> list[Page]:
    """Pages of open live incidents neither acknowledged nor at the end of their chain.
    (Group pages, such as a stand-down's, have one level and no deadline: not counted.)"""
    return list(
        session.scalars(
            select(Page)
            .where(
                Page.incident_id.in_(_live_open(ledger)),
                Page.target_kind != "group",
                Page.status != "acked",
                Page.exhausted_at.is_(None),
            )
            .order_by(Page.created_at, Page.origin)
        )
    )


def _describe(page: Page) -> str:
    return (
        f"page {page.id} ({page.target_kind}:{page.target_id}, origin {page.origin}) is "
        f"{page.status} at level {page.level} of {len(page.chain)}"
    )


def at_end_of_day(db: Database, ledger: Ledger) -> list[Violation]:
    found: list[Violation] = []
    with db.reading() as session:
        for page in unanswered(session, ledger):
            found.append(Violation(LIVE_PAGE, _describe(page) + ", never answered nor exhausted"))
        exhausted = session.scalars(
            select(Page).where(
                Page.incident_id.in_(_live_open(ledger)),
                Page.target_kind.not_in(("group", "duty")),
                Page.status != "acked",
                Page.exhausted_at.is_not(None),
            )
        ).all()
        alerts = set(
            session.scalars(select(Page.origin).where(Page.incident_id.in_(_live_open(ledger))))
        )
        for page in exhausted:
            if f"duty:unanswered:{page.id}" not in alerts:
                found.append(Violation(LIVE_PAGE, _describe(page) + ": no duty director alert"))
    return found + acks_kept(db, ledger)


def acks_kept(db: Database, ledger: Ledger) -> list[Violation]:
    found: list[Violation] = []
    with db.reading() as session:
        for page_id, acked_at in sorted(ledger.acks.items()):
            page = session.get(Page, page_id)
            if page is None or page.status != "acked" or page.acked_at != acked_at:
                state = "gone" if page is None else f"{page.status}, acked_at {page.acked_at}"
                found.append(
                    Violation(ACK_KEPT, f"page {page_id} acked at {acked_at} is now {state}")
                )
    return found


def final(db: Database, ledger: Ledger, gateway: Gateway, now: datetime) -> list[Violation]:
    found = acks_kept(db, ledger)  # again: the end of the day must not undo one either
    with db.reading() as session:
        found += _accepted_once(session, ledger, gateway)
        found += _stages(session, ledger)
        found += _nothing_left(session, ledger, now)
        found += _drills(session, ledger, gateway, now)
    found += [Violation(ROUNDS, line) for line in ledger.errors]
    return found


def _accepted_once(session: Session, ledger: Ledger, gateway: Gateway) -> list[Violation]:
    counts = {key: n for key, n in gateway.accepted_counts().items() if n > 1}
    if not counts:
        return []
    rows = session.execute(
        select(Delivery.idempotency_key, Delivery.id, Delivery.status).where(
            Delivery.idempotency_key.in_(list(counts))
        )
    ).all()
    found = []
    for key, delivery_id, status in sorted(rows):
        allowed = 1 + ledger.uncertain[delivery_id]
        if counts[key] > allowed:
            seen = list(ledger.history.get(delivery_id, []))
            parked = gateway.parked_for.get(delivery_id)
            if parked is not None:
                seen.append(f"its attempts took {parked:.0f} s in all at the receiver")
            found.append(
                Violation(
                    ONCE,
                    f"{key} (delivery {delivery_id}, {status}) accepted {counts[key]} times; "
                    f"{allowed} allowed; while in flight: {'; '.join(seen) or 'nothing'}",
                )
            )
    return found


def _stages(session: Session, ledger: Ledger) -> list[Violation]:
    found = []
    for sim_incident in ledger.incidents:
        events = session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == sim_incident.id)
            .order_by(TimelineEvent.seq)
        ).all()
        stages = {
            s.key: s
            for s in session.scalars(select(Stage).where(Stage.incident_id == sim_incident.id))
        }
        fired = [e for e in events if e.kind == Kind.STAGE_FIRED]
        occurrences = Counter((e.data["stage"], str(e.data["occurrence"])) for e in fired)
        for (key, occurrence), n in sorted(occurrences.items()):
            if n > 1:
                found.append(
                    Violation(STAGE_ONCE, f"#{sim_incident.index} {key}:{occurrence} x{n}")
                )
        per_stage = Counter(e.data["stage"] for e in fired)
        for key, row in sorted(stages.items()):
            if row.fire_count != per_stage[key]:
                found.append(
                    Violation(
                        STAGE_ONCE,
                        f"#{sim_incident.index} {key}: fire_count {row.fire_count}, "
                        f"{per_stage[key]} fired events",
                    )
                )
            if row.trigger != "every" and per_stage[key] > 1:
                found.append(
                    Violation(STAGE_ONCE, f"#{sim_incident.index} {key} fired {per_stage[key]}x")
                )
        resolved = next(
            (
                e.seq
                for e in events
                if e.kind == Kind.STATUS_CHANGED and e.data.get("to") == "resolved"
            ),
            None,
        )
        if resolved is None:
            continue
        for e in fired:
            stage = stages.get(e.data["stage"])
            if e.seq > resolved and stage is not None and stage.trigger != "resolved":
                found.append(
                    Violation(
                        AFTER_RESOLVE,
                        f"#{sim_incident.index} {e.data['stage']}:{e.data['occurrence']} fired "
                        f"at {e.at} after the incident was resolved",
                    )
                )
    return found


def _nothing_left(session: Session, ledger: Ledger, now: datetime) -> list[Violation]:
    """Settled: no job running or overdue (open incidents keep their future ones), no
    delivery waiting, no page whose messages never went."""
    found = []
    for kind, status, key, error, run_at in session.execute(
        select(Job.kind, Job.status, Job.key, Job.last_error, Job.run_at)
        .where(Job.status.in_(("queued", "running", "failed")))
        .order_by(Job.id)
    ):
        if status == "failed":
            found.append(Violation(NO_FAILED_JOB, f"{kind} {key} failed: {(error or '')[-200:]}"))
        elif status == "running" or run_at <= now:
            found.append(Violation(NOTHING_LEFT, f"job {kind} {key} is still {status}"))
    for delivery_id, status, purpose, key in session.execute(
        select(Delivery.id, Delivery.status, Delivery.purpose, Delivery.idempotency_key)
        .where(Delivery.status.in_(("queued", "sending", "retrying", "held")))
        .order_by(Delivery.id)
    ):
        found.append(
            Violation(NOTHING_LEFT, f"delivery {delivery_id} ({purpose}, {key}) is still {status}")
        )
    ours = [i.id for i in ledger.incidents]
    for page in session.scalars(
        select(Page).where(
            Page.incident_id.in_(ours), Page.status == "pending", Page.exhausted_at.is_(None)
        )
    ):
        found.append(Violation(NOTHING_LEFT, _describe(page) + " after settling"))
    # Someone paged on a page still waiting for an answer got the message, or every one of
    # their contact methods failed: "pending" means neither (acknowledged pages stop trying).
    for page_id, person_id, level in session.execute(
        select(PageRecipient.page_id, PageRecipient.person_id, PageRecipient.level)
        .join(Page, Page.id == PageRecipient.page_id)
        .where(
            Page.incident_id.in_(ours),
            Page.status != "acked",
            PageRecipient.status == "pending",
        )
        .order_by(PageRecipient.id)
    ):
        found.append(
            Violation(
                REACHED,
                f"{person_id} (level {level} of page {page_id}) neither reached nor failed over",
            )
        )
    return found


def _drills(session: Session, ledger: Ledger, gateway: Gateway, now: datetime) -> list[Violation]:
    drills = {i.id: i for i in ledger.incidents if i.mode == "drill"}
    if not drills:
        return []
    found = []
    public = {n.incident_id for n in reading.public_notices(session=session, now=now)}
    public |= {n.incident_id for n in reading.active_notices(session=session)}
    for incident_id in sorted(public & set(drills)):
        found.append(Violation(DRILL, f"drill #{drills[incident_id].index} has a public notice"))
    departments = {p: d for p, d in session.execute(select(Person.id, Person.department_id))}
    by_delivery = {a.delivery_id: a for a in gateway.accepted}
    for delivery in session.scalars(
        select(Delivery).where(Delivery.incident_id.in_(list(drills))).order_by(Delivery.id)
    ):
        drill = drills[str(delivery.incident_id)]
        if delivery.address == PUBLIC_CHANNEL:
            reached = "reached" if delivery.id in by_delivery else "queued for"
            found.append(Violation(DRILL, f"drill #{drill.index} {reached} the public channel"))
        elif delivery.purpose == "page" and drill.participants:
            allowed = set(drill.participants)
            person = delivery.person_id or ""
            if person not in allowed and departments.get(person) not in allowed:
                found.append(
                    Violation(DRILL, f"drill #{drill.index} paged {person}, not a participant")
                )
    modes = {
        i: m
        for i, m in session.execute(
            select(Incident.id, Incident.mode).where(Incident.id.in_(list(drills)))
        )
    }
    for incident_id, mode in sorted(modes.items()):
        if mode != "drill":
            found.append(Violation(DRILL, f"drill #{drills[incident_id].index} is {mode}"))
    return found
