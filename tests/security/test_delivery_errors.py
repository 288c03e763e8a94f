"""#16: phone numbers in delivery error texts (aiohttp quotes the gateway URL, the number
URL-encoded in it) are masked wherever errors are shown, and purged with the passengers."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from incident.models import Delivery, DeliveryAttempt
from incident.privacy import mask_error
from tests.passengers.conftest import Rig
from tests.passengers.test_broadcasts import PEOPLE, start
from tests.passengers.test_manifests import open_group, upload

NUMBER = "8613812340002"


@pytest.mark.parametrize(
    "error",
    [
        f"404, message='Not Found', url='http://sms.example/sms/%2B{NUMBER}'",
        f"Cannot connect to host sms.example:443 [url=http://sms.example/sms/%2B{NUMBER}?x=1]",
        "url=http://sms.example/sms/%2B86%20138%201234%200002",
        f"POST http://sms.example/send?to%3A{NUMBER}",
        f"http://sms.example/sms/{NUMBER}.json: 500",
        f"tel%3A%2B{NUMBER[:2]}-{NUMBER[2:5]}-{NUMBER[5:9]}-{NUMBER[9:]}",
        f"double-encoded %252B{NUMBER}",
    ],
)
def test_mask_error_masks_phone_numbers_even_url_encoded(error: str) -> None:
    masked = mask_error(error)
    assert "1234" not in masked and "02" in masked


@pytest.mark.parametrize("error", ["HTTP 503", "timeout after 10.0 s", "HTTP 404 on attempt 3"])
def test_mask_error_leaves_ordinary_errors_alone(error: str) -> None:
    assert mask_error(error) == error


def _aiohttp_error(rig: Rig, text: str | None = None) -> None:
    """Store errors as the sender made them before masking on storage (the canary check of
    the database at teardown finds any left)."""
    if text is None:
        text = f"404, message='Not Found', url='http://sms.example/sms/%2B{NUMBER}'"
    with rig.db.transaction() as session:
        session.execute(update(Delivery).values(last_error=text))
        session.execute(update(DeliveryAttempt).values(error=text))


def test_delivery_errors_shown_to_viewers_have_the_number_masked(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    incident = rig.declare()
    group = open_group(rig, incident, duty)
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    broadcast = start(rig, group, duty)
    rig.worker.drain()
    _aiohttp_error(rig)
    view = rig.client().get(f"/api/broadcasts/{broadcast}", headers=rig.auth("viewer"))
    assert view.status_code == 200
    errors = [i["last_error"] for i in view.json()["items"]]
    assert errors and all(e and NUMBER not in e and "%2B" not in e for e in errors)
    assert NUMBER[2:] not in view.text
    _aiohttp_error(rig, "HTTP 503")


def test_retention_purges_the_error_texts_and_addresses_of_broadcast_deliveries(
    rig: Rig,
) -> None:
    duty = rig.auth("duty_manager")
    incident = rig.declare()
    group = open_group(rig, incident, duty)
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    start(rig, group, duty)
    rig.worker.drain()
    _aiohttp_error(rig)
    for status in ("resolved", "closed"):
        changed = rig.client().patch(
            f"/api/incidents/{incident}", json={"status": status}, headers=duty
        )
        assert changed.status_code == 200, changed.text
    rig.worker.drain()
    rig.clock.advance(days=rig.settings.passenger_retention_days)
    rig.worker.drain()
    with rig.db.reading() as session:
        broadcast = select(Delivery.id).where(Delivery.purpose == "broadcast")
        rows = session.execute(
            select(Delivery.address, Delivery.last_error).where(Delivery.purpose == "broadcast")
        ).all()
        attempt_errors = session.scalars(
            select(DeliveryAttempt.error).where(
                DeliveryAttempt.delivery_id.in_(broadcast.scalar_subquery())
            )
        ).all()
    assert rows and {address for address, _ in rows} == {"sms://purged"}
    assert {error for _, error in rows} == {None}
    assert attempt_errors and set(attempt_errors) == {None}
