"""Groups: facts for the playbook, care log, summary, and purging after retention."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from incident.models import Delivery, Incident, Passenger
from tests.factories import stage_states
from tests.passengers.conftest import Rig
from tests.passengers.test_broadcasts import PEOPLE, start
from tests.passengers.test_manifests import open_group, upload


def facts(rig: Rig, incident_id: str) -> dict[str, object]:
    with rig.db.reading() as session:
        found = session.get(Incident, incident_id)
        assert found is not None
        return dict(found.facts)


def test_groups_keep_the_incident_facts_and_conditions_follow(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    incident = rig.declare()
    assert stage_states(rig.db, incident)["escalate"] == "pending"
    since = (rig.clock.now() - timedelta(minutes=20)).isoformat()
    first = open_group(rig, incident, duty, count=600, since=since)
    assert facts(rig, incident)["passengers_stranded"] == 600
    assert facts(rig, incident)["stopped_since"] == since
    assert stage_states(rig.db, incident)["escalate"] == "pending"
    open_group(rig, incident, duty, count=500, train="G99", station=None)
    assert facts(rig, incident)["passengers_stranded"] == 1100
    assert stage_states(rig.db, incident)["escalate"] == "due"  # passengers_stranded >= 1000
    later = rig.client().patch(
        f"/api/passenger-groups/{first}",
        json={"since": (rig.clock.now() - timedelta(minutes=5)).isoformat(), "count": 400},
        headers=duty,
    )
    assert later.status_code == 200, later.text
    assert facts(rig, incident)["passengers_stranded"] == 900
    assert facts(rig, incident)["stopped_since"] == since  # groups never delay care
    rig.clock.advance(minutes=40)  # 60 minutes after the earliest stranding
    rig.worker.drain()
    assert stage_states(rig.db, incident)["refreshments"] == "fired"
    rig.client().patch(f"/api/passenger-groups/{first}", json={"status": "cleared"}, headers=duty)
    assert facts(rig, incident)["passengers_stranded"] == 500


def test_care_is_logged_and_the_summary_shows_needs_messages_and_callbacks(rig: Rig) -> None:
    duty, staff = rig.auth("duty_manager"), rig.auth("staff")
    incident = rig.declare()
    group = open_group(
        rig,
        incident,
        duty,
        needs=["water", "food", "medical"],
        vulnerable={"elderly": 12, "children": 30},
    )
    care = rig.client().post(
        f"/api/passenger-groups/{group}/care",
        json={"need": "water", "what": "bottled water", "quantity": 300, "met": True},
        headers=staff,
    )
    assert care.status_code == 201, care.text
    assert care.json()["provided_by"].startswith("staff-")
    shown = rig.client().get(f"/api/passenger-groups/{group}", headers=staff).json()
    assert shown["needs"] == {"water": "met", "food": "open", "medical": "open"}
    assert [c["what"] for c in shown["care"]] == ["bottled water"]
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    start(rig, group, duty)
    rig.worker.drain()
    rig.client().post(
        f"/api/incidents/{incident}/inquiries",
        json={"phone": "13812340001", "question": "Food?", "callback_minutes": 5},
        headers=staff,
    )
    rig.client().post(
        f"/api/incidents/{incident}/inquiries",
        json={"phone": "13812340002", "question": "Hotel?", "callback_minutes": 60},
        headers=staff,
    )
    rig.clock.advance(minutes=10)
    summary = (
        rig.client()
        .get(f"/api/incidents/{incident}/passengers/summary", headers=rig.auth("viewer"))
        .json()
    )
    assert summary["stranded"] == 300 and summary["longest_minutes"] == 10
    assert summary["vulnerable"] == {"elderly": 12, "children": 30, "reduced_mobility": 0}
    assert summary["needs"]["water"] == {"open": 0, "met": 1}
    assert summary["needs"]["food"] == {"open": 1, "met": 0}
    assert summary["messages"]["sent"] == 3 and summary["messages"]["broadcasts"] == 1
    assert summary["callbacks"] == {"due": 1, "overdue": 1, "done": 0}
    assert summary["groups"][0]["needs_open"] == ["food", "medical"]


def test_personal_data_is_purged_after_retention_and_the_counts_stay(rig: Rig) -> None:
    duty, staff = rig.auth("duty_manager"), rig.auth("staff")
    incident = rig.declare()
    group = open_group(rig, incident, duty)
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    start(rig, group, duty)
    rig.worker.drain()
    made = (
        rig.client()
        .post(
            f"/api/incidents/{incident}/inquiries",
            json={"phone": "13812340001", "question": "Food?", "callback": False},
            headers=staff,
        )
        .json()
    )
    for status in ("resolved", "closed"):
        changed = rig.client().patch(
            f"/api/incidents/{incident}", json={"status": status}, headers=duty
        )
        assert changed.status_code == 200, changed.text
    rig.worker.drain()
    with rig.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Passenger)) == 5
    rig.clock.advance(days=rig.settings.passenger_retention_days)
    rig.worker.drain()
    with rig.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Passenger)) == 0
        addresses = set(
            session.scalars(select(Delivery.address).where(Delivery.purpose == "broadcast"))
        )
    assert addresses == {"sms://purged"}
    shown = rig.client().get(f"/api/inquiries/{made['id']}", headers=staff).json()
    assert shown["phone"] is None and shown["personal_data_purged"] is True
    summary = rig.client().get(f"/api/incidents/{incident}/passengers/summary", headers=duty).json()
    assert summary["groups"][0]["count"] == 300 and summary["messages"]["sent"] == 3
    group_view = rig.client().get(f"/api/passenger-groups/{group}", headers=duty).json()
    assert group_view["passengers_purged_at"] is not None
    assert group_view["manifest"]["stored"] == 5


def test_the_incident_lists_its_passenger_groups(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    incident = rig.declare()
    since = (rig.clock.now() - timedelta(minutes=30)).isoformat()
    first = open_group(rig, incident, duty, count=120, since=since)
    second = open_group(rig, incident, duty, count=45, train="G99", station=None)
    shown = rig.client().get(f"/api/incidents/{incident}", headers=rig.auth("viewer")).json()
    groups = {g["id"]: g for g in shown["passenger_groups"]}
    assert set(groups) == {first, second}
    assert groups[first]["count"] == 120
    assert groups[first]["minutes_stranded"] == 30
    assert groups[second]["train"] == "G99"
