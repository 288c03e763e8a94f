"""Worst-day delivery (#15): a new incident's pages never wait behind broadcasts, floods or
slow gateways.

- Six live incidents in a minute paging the same people: no first page is held back by the
  flood limit (it may bundle reminders, never the first page of an incident).
- A broadcast draining through a gateway that takes a second per message fills the worker's
  sends: a new incident's stage still fires and its first page still goes out at once (the
  engine's jobs and pages are lanes of their own, with capacity the low lanes cannot take).
(The gateway's rate limit: tests/passengers/test_gateway_rate.py.)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from incident import delivery, jobs
from incident.catalog import Catalog
from incident.channels import Message, Sender
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.models import Delivery, Incident
from incident.settings import Settings
from incident.worker import Worker
from tests.factories import declare


def test_six_live_incidents_in_a_minute_page_the_same_people_and_no_first_page_is_held(
    worker: Worker, seeded: Database, catalog: Catalog, clock: FrozenClock
) -> None:
    declared = []
    for _ in range(6):
        declared.append(declare(seeded, catalog, clock, severity="II"))
        worker.drain()
        clock.advance(timedelta(seconds=10))
    with seeded.reading() as session:
        pages = session.scalars(select(Delivery).where(Delivery.purpose == "page")).all()
        at = {i: when for i, when in session.execute(select(Incident.id, Incident.declared_at))}
    assert {d.status for d in pages} == {"delivered"}, "nothing held, bundled or failed"
    for incident_id in declared:
        mine = [d for d in pages if d.incident_id == incident_id]
        assert mine, incident_id
        assert all(
            d.finished_at is not None and d.finished_at - at[incident_id] <= timedelta(seconds=2)
            for d in mine
        )
    people = {d.person_id for d in pages}
    assert max(sum(1 for d in pages if d.person_id == p) for p in people) == 6


class SlowGateway:
    """A gateway that takes a second per message."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.taken = 0

    async def attempt(self, message: Message) -> Exception | None:
        self.taken += 1
        await asyncio.sleep(self.seconds)
        return None


def test_a_new_incidents_first_page_goes_out_while_a_broadcast_drains_through_a_slow_gateway(
    seeded: Database, settings: Settings, catalog: Catalog, clock: FrozenClock
) -> None:
    gateway = SlowGateway(1.0)
    limited = replace(settings, delivery_in_flight=40)
    ctx = Context.build(limited, catalog)
    sender = Sender(ctx.send_policy(), channels={"slowgw": gateway})
    worker = Worker(seeded, ctx, clock, sender=sender, owner="surge")
    with seeded.transaction() as session:  # 400 passengers' messages, queued first
        delivery.insert_many(
            [
                delivery.Spec(
                    purpose="notice",
                    address=f"slowgw://gateway/{n}",
                    subject="broadcast",
                    body="the train is 90 minutes late",
                    idempotency_key=f"surge:{n}",
                    lane=jobs.Lane.PASSENGERS,
                )
                for n in range(400)
            ],
            session=session,
            now=clock.now(),
        )
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while gateway.taken < 25 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gateway.taken >= 25, "the broadcast fills its share of the sends"
        declared_at = time.monotonic()
        incident_id = declare(seeded, catalog, clock, severity="II")
        first_page = None
        while time.monotonic() - declared_at < 10:
            with seeded.reading() as session:
                first_page = session.scalar(
                    select(Delivery.id).where(
                        Delivery.incident_id == incident_id,
                        Delivery.purpose == "page",
                        Delivery.status == "delivered",
                    )
                )
            if first_page is not None:
                break
            time.sleep(0.02)
        waited = time.monotonic() - declared_at
        sent_so_far = gateway.taken
    finally:
        worker.stop(timeout=2)
    assert first_page is not None
    assert waited < 2.0, f"the first page went {waited:.2f} s after the declaration"
    assert sent_so_far < 400, "the broadcast was still draining"
