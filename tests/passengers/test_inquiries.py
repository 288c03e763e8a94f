"""Inquiries, call-back deadlines that page the inquiry section, complaints."""

from __future__ import annotations

from sqlalchemy import select

from incident import paging
from incident.models import Delivery, Page
from tests.passengers.conftest import Rig
from tests.passengers.test_broadcasts import PEOPLE
from tests.passengers.test_manifests import open_group, upload

QUESTION = {"phone": "138 1234 0002", "name": "Ann Lee", "question": "When do we move?"}


def inquiry_pages(rig: Rig, incident: str) -> list[Page]:
    with rig.db.reading() as session:
        pages = paging.pages_of(incident, session=session)
        return [p for p in pages if p.target_kind == "department" and p.target_id == "inquiry"]


def test_an_overdue_call_back_pages_the_inquiry_section_at_its_deadline(rig: Rig) -> None:
    staff = rig.auth("staff")
    incident = rig.declare()
    made = rig.client().post(f"/api/incidents/{incident}/inquiries", json=QUESTION, headers=staff)
    assert made.status_code == 201, made.text
    inquiry = made.json()
    assert inquiry["callback"]["status"] == "pending"
    rig.clock.advance(minutes=rig.settings.callback_minutes, seconds=-1)
    rig.worker.drain()
    assert inquiry_pages(rig, incident) == []
    rig.clock.advance(seconds=1)
    rig.worker.drain()
    (page,) = inquiry_pages(rig, incident)
    assert page.origin == f"callback:{inquiry['id']}"
    assert page.text is not None and "138****0002" in page.text["en"]
    assert "13812340002" not in page.text["en"] + page.text["zh"]
    with rig.db.reading() as session:
        sent = session.scalars(select(Delivery).where(Delivery.recipient_id.is_not(None))).all()
    assert [d.address for d in sent if d.status == "delivered"] == ["inbox://agent1"]
    shown = rig.client().get(f"/api/inquiries/{inquiry['id']}", headers=staff).json()
    assert shown["callback"]["overdue"] is True and shown["callback"]["page"] == page.id
    rig.clock.advance(minutes=30)
    rig.worker.drain()
    assert len(inquiry_pages(rig, incident)) == 1  # paged once


def test_a_call_back_done_in_time_records_who_and_pages_no_one(rig: Rig) -> None:
    staff = rig.auth("staff")
    incident = rig.declare()
    made = (
        rig.client()
        .post(
            f"/api/incidents/{incident}/inquiries",
            json={**QUESTION, "callback_minutes": 10},
            headers=staff,
        )
        .json()
    )
    rig.clock.advance(minutes=5)
    missing = rig.client().patch(
        f"/api/inquiries/{made['id']}", json={"callback_status": "done"}, headers=staff
    )
    assert missing.status_code == 422
    done = rig.client().patch(
        f"/api/inquiries/{made['id']}",
        json={"callback_status": "done", "outcome": "Told her the bus leaves at 11:00"},
        headers=staff,
    )
    assert done.status_code == 200, done.text
    assert done.json()["callback"]["status"] == "done"
    assert done.json()["callback"]["completed_by"].startswith("staff-")
    assert done.json()["outcome"] == "Told her the bus leaves at 11:00"
    rig.clock.advance(minutes=30)
    rig.worker.drain()
    assert inquiry_pages(rig, incident) == []


def test_an_inquiry_is_matched_to_its_group_by_phone(rig: Rig) -> None:
    duty, staff = rig.auth("duty_manager"), rig.auth("staff")
    incident = rig.declare()
    group = open_group(rig, incident, duty)
    assert upload(rig, group, PEOPLE, duty).status_code == 201
    made = rig.client().post(f"/api/incidents/{incident}/inquiries", json=QUESTION, headers=staff)
    assert made.json()["group"] == group and made.json()["matched_by"] == "phone"
    stranger = rig.client().post(
        f"/api/incidents/{incident}/inquiries",
        json={"phone": "13912345678", "question": "Is G1234 late?", "callback": False},
        headers=staff,
    )
    assert stranger.json()["group"] is None and stranger.json()["callback"]["status"] == "none"
    direct = rig.client().post(
        f"/api/passenger-groups/{group}/inquiries",
        json={"question": "Is there water?", "callback": False},
        headers=staff,
    )
    assert direct.status_code == 201 and direct.json()["matched_by"] == "given"


def test_complaints_are_listed_for_the_complaints_section(rig: Rig) -> None:
    staff = rig.auth("staff")
    incident = rig.declare()
    rig.client().post(
        f"/api/incidents/{incident}/inquiries",
        json={**QUESTION, "kind": "complaint", "question": "Nobody told us anything"},
        headers=staff,
    )
    rig.client().post(f"/api/incidents/{incident}/inquiries", json=QUESTION, headers=staff)
    complaints = rig.client().get("/api/complaints", headers=staff).json()["items"]
    assert [c["question"] for c in complaints] == ["Nobody told us anything"]
    listed = (
        rig.client()
        .get(f"/api/incidents/{incident}/inquiries?kind=complaint", headers=staff)
        .json()
    )
    assert len(listed["items"]) == 1
    masked = rig.client().get(f"/api/incidents/{incident}/inquiries", headers=rig.auth("viewer"))
    assert {i["phone"] for i in masked.json()["items"]} == {"138****0002"}
    assert {i["name"] for i in masked.json()["items"]} == {"A******"}
    typed = (
        rig.client()
        .post(
            f"/api/incidents/{incident}/inquiries",
            json={"question": "Call my son on 139 1234 5678", "callback": False},
            headers=staff,
        )
        .json()["id"]
    )
    shown = rig.client().get(f"/api/inquiries/{typed}", headers=rig.auth("viewer")).json()
    assert "5678" not in shown["question"] and shown["question"].startswith("Call my son on")
