"""The people at the desk: what the web layer does for them, one transaction each (declare,
acknowledge, decline, change facts, resolve, publish, fire a stage by hand)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from incident import notices, paging, response
from incident.clock import FrozenClock
from incident.db import Database
from incident.errors import IncidentError
from incident.models import Incident, Page
from incident.playbook import Playbook
from incident.sim.ledger import Ledger, SimIncident
from incident.sim.world import Rig

OPEN = ("pending", "sent", "escalated", "unreachable")


def make_facts(
    playbook: Playbook, seed: int, now: datetime, *, partial: bool = False
) -> dict[str, Any]:
    """Facts for the playbook's inputs: every required one (unless ``partial``), some
    optional ones, values drawn from ``seed``."""
    rng = random.Random(seed)
    facts: dict[str, Any] = {}
    for name, spec in sorted(playbook.inputs.items()):
        if partial and rng.random() < 0.7:
            continue
        if not spec.required and not partial and rng.random() < 0.5:
            continue
        if spec.choices:
            facts[name] = rng.choice(spec.choices)
        elif spec.type == "int":
            low = int(spec.min or 0)
            facts[name] = rng.choice([low, low + 1, 20, 45, 60, 90, 130, 1500])
        elif spec.type == "float":
            facts[name] = rng.choice([0.0, 1.5, 60.0])
        elif spec.type == "bool":
            facts[name] = rng.random() < 0.5
        elif spec.type == "datetime":
            facts[name] = (now - timedelta(minutes=rng.choice([0, 20, 29, 45, 70]))).isoformat()
        else:
            facts[name] = rng.choice(["G", "D", "Beijing South", "other"])
    return facts


class Desk:
    def __init__(self, rig: Rig, db: Database, clock: FrozenClock, ledger: Ledger) -> None:
        self.rig = rig
        self.db = db
        self.clock = clock
        self.ledger = ledger

    def note(self, line: str) -> None:
        self.ledger.log(self.clock.now(), "  " + line)

    # -- incidents -----------------------------------------------------------------------------
    def declare(self, args: dict[str, Any]) -> None:
        playbook = self.rig.catalog.get(args["playbook"])
        facts = make_facts(playbook, args["facts"], self.clock.now())
        with self.db.transaction() as session:
            incident = response.declare(
                session=session,
                now=self.clock.now(),
                catalog=self.rig.catalog,
                playbook_id=playbook.id,
                severity=args["severity"],
                title=f"sim {playbook.id} {len(self.ledger.incidents) + 1}",
                facts=facts,
                mode=args["mode"],
                actor="sim",
                participants=args.get("participants"),
                zone=self.rig.settings.zone,
            )
            ident = incident.id
        self.ledger.incidents.append(
            SimIncident(
                ident,
                len(self.ledger.incidents),
                playbook.id,
                args["mode"],
                list(args.get("participants") or []),
            )
        )
        self.note(f"declared #{len(self.ledger.incidents) - 1} {ident} facts={facts}")

    def _change(self, pick: int, **changes: Any) -> None:
        found = self.ledger.incident(pick)
        if found is None:
            return
        try:
            with self.db.transaction() as session:
                incident = response.get_incident(found.id, session=session)
                response.change(
                    incident,
                    session=session,
                    now=self.clock.now(),
                    catalog=self.rig.catalog,
                    actor="sim",
                    **changes,
                )
        except IncidentError as exc:
            self.note(f"#{found.index} change refused: {exc}")
            return
        if changes.get("status") == "resolved":
            found.resolved_by_scenario = True
        self.note(f"#{found.index} changed {changes}")

    def change(self, args: dict[str, Any]) -> None:
        found = self.ledger.incident(args["incident"])
        if found is None:
            return
        playbook = self.rig.catalog.get(found.playbook)
        facts = make_facts(playbook, args["facts"], self.clock.now(), partial=True)
        self._change(args["incident"], severity=args["severity"], facts=facts or None)

    def drop_fact(self, args: dict[str, Any]) -> None:
        found = self.ledger.incident(args["incident"])
        if found is None:
            return
        playbook = self.rig.catalog.get(found.playbook)
        with self.db.reading() as session:
            incident = session.get(Incident, found.id)
            present = sorted(incident.facts) if incident is not None else []
        optional = [n for n in present if not playbook.inputs[n].required]
        if optional:
            name = optional[args["which"] % len(optional)]
            self._change(args["incident"], facts={name: None})

    def set_status(self, args: dict[str, Any], status: str) -> None:
        self._change(args["incident"], status=status)

    def resolve_all(self) -> None:
        with self.db.reading() as session:
            open_ids = set(
                session.scalars(
                    select(Incident.id).where(Incident.status.in_(("active", "contained")))
                )
            )
        for found in self.ledger.incidents:
            if found.id in open_ids:
                self._change(found.index, status="resolved")

    def publish(self, args: dict[str, Any]) -> None:
        found = self.ledger.incident(args["incident"])
        if found is None:
            return
        policy = notices.PublicationPolicy.from_settings(self.rig.settings)
        published = 0
        try:
            with self.db.transaction() as session:
                for notice in notices.reading.notices_of(found.id, session=session):
                    if notice.versions and notice.versions[-1].status == "draft":
                        notices.publish(
                            notice,
                            session=session,
                            now=self.clock.now(),
                            actor="sim",
                            policy=policy,
                        )
                        published += 1
        except IncidentError as exc:
            self.note(f"#{found.index} publish refused: {exc}")
            return
        self.note(f"#{found.index} ({found.mode}) published {published} notice(s)")

    def fire_manual(self, args: dict[str, Any]) -> None:
        found = self.ledger.incident(args["incident"])
        if found is None:
            return
        stages = [s.id for s in self.rig.catalog.get(found.playbook).stages]
        key = stages[args["stage"] % len(stages)]
        try:
            with self.db.transaction() as session:
                incident = response.get_incident(found.id, session=session)
                response.fire_manually(
                    incident, key, session=session, now=self.clock.now(), actor="sim"
                )
        except IncidentError as exc:
            self.note(f"#{found.index} fire {key} refused: {exc}")
            return
        self.note(f"#{found.index} fired {key} by hand")

    # -- pages ---------------------------------------------------------------------------------
    def open_pages(self, session: Session) -> list[Page]:
        order = {i.id: i.index for i in self.ledger.incidents}
        pages = session.scalars(
            select(Page).where(
                Page.incident_id.in_(list(order)),
                Page.status.in_(OPEN),
                Page.exhausted_at.is_(None),
            )
        ).all()
        return sorted(pages, key=lambda p: (order[p.incident_id], p.created_at, p.origin))

    def pick_page(self, pick: int, *, with_deadline: bool = False) -> Page | None:
        with self.db.reading() as session:
            pages = self.open_pages(session)
        if with_deadline:
            now = self.clock.now()
            pages = [p for p in pages if p.ack_deadline is not None and p.ack_deadline >= now]
        return pages[pick % len(pages)] if pages else None

    def ack(self, page_id: str, by: str, *, lock_wait_ms: int | None = None) -> bool:
        """Acknowledge as the web layer does; remember what was committed."""
        now = self.clock.now()
        links = self.rig.context.policy.links
        try:
            with self.db.transaction() as session:
                if lock_wait_ms is not None:
                    session.execute(text(f"SET LOCAL lock_timeout = '{int(lock_wait_ms)}ms'"))
                page = paging.get_page(page_id, session=session)
                level = sorted(
                    (r for r in page.recipients if r.level == page.level),
                    key=lambda r: r.person_id,
                )
                if by == "link" and level:
                    token = links.token(level[0].id, now=now)
                    page = paging.acknowledge_by_link(token, session=session, now=now, links=links)
                elif by == "recipient" and level:
                    page = paging.acknowledge_as(
                        page,
                        role="staff",
                        person_id=level[0].person_id,
                        actor=level[0].person_id,
                        via="api",
                        session=session,
                        now=now,
                    )
                else:
                    page = paging.acknowledge_as(
                        page,
                        role="duty_manager",
                        person_id=None,
                        actor="sim-duty",
                        via="console",
                        session=session,
                        now=now,
                    )
                session.flush()
                status, acked_at = page.status, page.acked_at
        except IncidentError as exc:
            self.note(f"ack {page_id} refused: {exc}")
            return False
        if status == "acked" and acked_at is not None and page_id not in self.ledger.acks:
            self.ledger.acks[page_id] = acked_at
            self.note(f"acked {page_id} by {by}")
        return True

    def decline(self, page_id: str) -> None:
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                page = paging.get_page(page_id, session=session)
                level = sorted(
                    (
                        r
                        for r in page.recipients
                        if r.level == page.level and r.status in ("pending", "sent")
                    ),
                    key=lambda r: r.person_id,
                )
                if not level:
                    return
                incident = response.get_incident(page.incident_id, session=session)
                paging.decline(
                    page,
                    person_id=level[0].person_id,
                    via="reply",
                    session=session,
                    now=now,
                    policy=self.rig.context.policy,
                    playbook=response.playbook_of(incident, self.rig.catalog),
                )
        except IncidentError as exc:
            self.note(f"decline {page_id} refused: {exc}")
            return
        self.note(f"declined {page_id} ({level[0].person_id})")
