"""Broadcasts to stranded passengers through a loopback SMS gateway."""

from __future__ import annotations

from datetime import timedelta

from tests.passengers.conftest import DRILL_NUMBERS, Rig, manifest
from tests.passengers.test_manifests import open_group, upload

PEOPLE = manifest(
    [
        ("张三", "13812340001", "01A", "01", "zh", "T1"),
        ("Ann Lee", "13812340002", "01B", "01", "en", "T2"),
        ("李四", "13812340003", "01C", "01", "zh", "T3"),
        ("李小四", "13812340003", "01D", "01", "zh", "T4"),  # shares the phone of T3
        ("王五", "", "01E", "01", "zh", "T5"),  # no phone: no message
    ]
)
TEXTS = {"zh": "列车预计晚点90分钟，可免费退票。", "en": "The train is 90 min late; free refunds."}


def start(rig: Rig, group: str, headers: dict[str, str], **body: object) -> str:
    made = rig.client().post(
        f"/api/passenger-groups/{group}/broadcasts", json=body or {"texts": TEXTS}, headers=headers
    )
    assert made.status_code == 202, made.text
    return str(made.json()["id"])


def test_a_broadcast_reaches_each_phone_once_in_the_passengers_language(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    broadcast = start(rig, group, duty)
    rig.worker.drain()
    got = {sms.to: sms for sms in rig.gateway.received}
    assert sorted(rig.gateway.numbers()) == ["+8613812340001", "+8613812340002", "+8613812340003"]
    assert got["+8613812340001"].message == TEXTS["zh"]
    assert got["+8613812340002"].message == TEXTS["en"]
    assert len({sms.key for sms in rig.gateway.received}) == 3
    view = rig.client().get(f"/api/broadcasts/{broadcast}", headers=rig.auth("viewer")).json()
    assert view["counts"] == {"queued": 0, "sent": 3, "failed": 0}
    assert view["status"] == "done" and view["recipients"] == 3
    assert {i["phone"] for i in view["items"]} == {"138****0001", "138****0002", "138****0003"}
    rig.worker.drain()  # nothing left to send: still once each
    assert len(rig.gateway.received) == 3


def test_failures_are_retried_and_shown_and_a_resend_touches_only_the_failed(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    rig.gateway.flaky = {"+8613812340001"}  # 503 once, then fine
    rig.gateway.down = {"+8613812340002"}  # 503 every time
    broadcast = start(rig, group, duty)
    rig.worker.drain()
    assert len(rig.gateway.to("+8613812340001")) == 2
    assert len(rig.gateway.to("+8613812340002")) == 3  # every attempt of the delivery
    view = rig.client().get(f"/api/broadcasts/{broadcast}", headers=duty).json()
    assert view["counts"] == {"queued": 0, "sent": 2, "failed": 1}
    by_phone = {i["phone"]: i for i in view["items"]}
    assert by_phone["138****0002"]["status"] == "failed"
    assert by_phone["138****0002"]["last_error"] == "HTTP 503"
    assert by_phone["138****0001"]["attempts"] == 2
    rig.gateway.down.clear()
    before = len(rig.gateway.received)
    resent = rig.client().post(f"/api/broadcasts/{broadcast}/resend", headers=duty)
    assert resent.status_code == 202 and resent.json()["resent"] == 1
    rig.worker.drain()
    assert [s.to for s in rig.gateway.received[before:]] == ["+8613812340002"]
    view = rig.client().get(f"/api/broadcasts/{broadcast}", headers=duty).json()
    assert view["counts"] == {"queued": 0, "sent": 3, "failed": 0}
    again = rig.client().post(f"/api/broadcasts/{broadcast}/resend", headers=duty)
    assert again.json()["resent"] == 0


def test_a_drill_broadcast_goes_only_to_the_drill_test_numbers(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(mode="drill"), duty)
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    start(rig, group, duty)
    rig.worker.drain()
    assert sorted(rig.gateway.numbers()) == sorted(DRILL_NUMBERS)
    assert all(sms.message.startswith("【演练 DRILL】") for sms in rig.gateway.received)


def test_a_playbook_passenger_message_broadcasts_when_its_condition_comes_true(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    stopped = rig.clock.now() - timedelta(minutes=10)
    incident = rig.declare(
        facts={
            "station": "Langfang",
            "passengers_stranded": 1,
            "stopped_since": stopped.isoformat(),
        }
    )
    group = open_group(rig, incident, duty)
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    rig.worker.drain()
    assert rig.gateway.received == []
    rig.clock.advance(minutes=50)
    rig.worker.drain()
    got = {sms.to: sms.message for sms in rig.gateway.received}
    assert len(rig.gateway.received) == 3
    assert "Langfang" in got["+8613812340002"] and "60 min" in got["+8613812340002"]
    assert "滞留超过60分钟" in got["+8613812340001"]
    listed = rig.client().get(f"/api/incidents/{incident}/broadcasts", headers=duty).json()
    assert [b["offer"] for b in listed["items"]] == ["refreshments"]


def test_without_a_gateway_a_broadcast_is_recorded_as_unsent(rig: Rig) -> None:
    from dataclasses import replace

    from incident.settings import Secret

    rig.worker = rig.make_worker(replace(rig.settings, sms_gateway=Secret("")))
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    broadcast = start(rig, group, duty)
    rig.worker.drain()
    view = rig.client().get(f"/api/broadcasts/{broadcast}", headers=duty).json()
    assert view["status"] == "unsent" and "INCIDENT_SMS_GATEWAY" in view["error"]
    assert rig.gateway.received == []
