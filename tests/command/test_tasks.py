"""Tasks: from playbook ``task`` actions and by hand; acknowledged, updated, done; overdue
tasks page their owner once; follow-ups after resolution carry into the after-action report."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from incident.models import Page
from tests.command.conftest import Desk

SCRIPT = "Publish the hotline script"


def tasks_of(desk: Desk, incident: str) -> list[dict[str, Any]]:
    return list(desk.get(f"/api/incidents/{incident}/tasks")["items"])


def hotline_task(desk: Desk, incident: str) -> dict[str, Any]:
    (task,) = [t for t in tasks_of(desk, incident) if t["title"]["en"] == SCRIPT]
    return task


def task_pages(desk: Desk, incident: str) -> list[Page]:
    return [p for p in desk.page_rows(incident) if p.origin.startswith("task:")]


def test_a_playbook_task_appears_with_its_due_time_becomes_overdue_and_pages_its_owner(
    desk: Desk,
) -> None:
    declared = desk.clock.now()
    incident = desk.declare()
    desk.worker.drain()  # the activate stage fires: "inquiry: publish the hotline script", 15m
    task = hotline_task(desk, incident)
    assert task["owner"] == {"department": "inquiry", "person": None}
    assert task["status"] == "open" and task["overdue"] is False
    assert datetime.fromisoformat(task["due_at"]) == declared + timedelta(minutes=15)
    assert task["stage"] == "activate" and task["follow_up"] is False
    events = desk.get(f"/api/incidents/{incident}/timeline")["items"]
    assert any(e["kind"] == "task:requested" and e["data"]["task"] == task["id"] for e in events)

    desk.advance(minutes=15, seconds=-1)
    assert hotline_task(desk, incident)["overdue"] is False
    assert task_pages(desk, incident) == []

    desk.advance(seconds=1)
    task = hotline_task(desk, incident)
    assert task["overdue"] is True
    overdue = desk.get("/api/tasks?overdue=true")["items"]
    assert task["id"] in [t["id"] for t in overdue]
    pages = {p.target_id: p for p in task_pages(desk, incident)}
    assert pages["inquiry"].target_kind == "department"  # the owner is paged
    assert task["page"] == pages["inquiry"].id
    assert pages["inquiry"].text is not None and SCRIPT in pages["inquiry"].text["en"]
    events = desk.get(f"/api/incidents/{incident}/timeline")["items"]
    assert [e["data"]["task"] for e in events if e["kind"] == "task:overdue"].count(task["id"]) == 1

    desk.advance(hours=1)
    assert len([p for p in task_pages(desk, incident) if p.target_id == "inquiry"]) == 1


def test_completing_a_task_records_who_and_when_and_stops_its_deadline(desk: Desk) -> None:
    incident = desk.declare()
    desk.worker.drain()
    task = hotline_task(desk, incident)
    agent = desk.auth("staff", "zhou.ting")  # on duty in the inquiry section
    outsider = desk.auth("staff", "xu.lei")  # the complaints section
    path = f"/api/tasks/{task['id']}"
    assert (
        desk.client.patch(path, json={"status": "acknowledged"}, headers=outsider).status_code
        == 403
    )

    desk.clock.advance(minutes=3)
    acked = desk.client.patch(path, json={"status": "acknowledged"}, headers=agent)
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_at"] == desk.clock.now().isoformat()
    moved = desk.client.patch(path, json={"due_at": "2030-01-01T00:00:00+08:00"}, headers=agent)
    assert moved.status_code == 422  # staff may not move the due time
    noted = desk.client.patch(path, json={"note": "draft sent to the section head"}, headers=agent)
    assert noted.json()["note"] == "draft sent to the section head"

    desk.clock.advance(minutes=7)
    done = desk.client.patch(path, json={"status": "done"}, headers=agent)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "done" and body["overdue"] is False
    assert body["done_at"] == desk.clock.now().isoformat()
    assert body["done_by"].startswith("staff-")
    events = desk.get(f"/api/incidents/{incident}/timeline")["items"]
    (finished,) = [e for e in events if e["kind"] == "task:done"]
    assert finished["data"] == {"task": task["id"], "late": False}
    assert finished["actor"] == body["done_by"]
    again = desk.client.patch(path, json={"status": "done"}, headers=agent)
    assert again.status_code == 200 and again.json()["done_at"] == body["done_at"]
    reopened = desk.client.patch(path, json={"status": "acknowledged"}, headers=agent)
    assert reopened.status_code == 409

    desk.advance(hours=1)  # past the due time: a done task pages no one
    assert [p for p in task_pages(desk, incident) if p.target_id == "inquiry"] == []


def test_a_duty_manager_gives_a_task_by_hand_once_per_idempotency_key(desk: Desk) -> None:
    incident = desk.declare()
    path = f"/api/incidents/{incident}/tasks"
    body = {
        "title": {"zh": "为受影响车次开通免费退票", "en": "Open fee-free refunds for the trains"},
        "department": "ticketing",
        "due_minutes": 20,
    }
    key = {**desk.duty, "Idempotency-Key": "refunds-1"}
    first = desk.client.post(path, json=body, headers=key)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/api/tasks/{first.json()['id']}"
    again = desk.client.post(path, json=body, headers=key)
    assert again.json()["id"] == first.json()["id"]
    other = desk.client.post(path, json={**body, "due_minutes": 30}, headers=key)
    assert other.status_code == 422
    made = first.json()
    assert made["due_at"] == (desk.clock.now() + timedelta(minutes=20)).isoformat()
    assert made["created_by"].startswith("duty_manager-")
    for wrong, field in (
        ({**body, "owner": "x"}, "owner"),
        ({**body, "department": "nowhere"}, "department"),
        ({**body, "person": "zhu.yan"}, "department"),
        ({"title": "", "department": "ticketing"}, "title"),
        ({**body, "due_at": "2020-01-01T00:00:00+08:00", "due_minutes": None}, "due_at"),
    ):
        refused = desk.client.post(path, json=wrong, headers=desk.duty)
        assert refused.status_code == 422, wrong
        assert field in [e["field"] for e in refused.json()["errors"]]
    staff = desk.auth("staff", "zhu.yan")
    assert desk.client.post(path, json=body, headers=staff).status_code == 403
    # The ticketing agent on duty may finish it.
    done = desk.client.patch(f"/api/tasks/{made['id']}", json={"status": "done"}, headers=staff)
    assert done.status_code == 200 and done.json()["status"] == "done"


def test_follow_up_tasks_after_resolution_carry_into_the_after_action_report(desk: Desk) -> None:
    incident = desk.declare(mode="drill")
    desk.worker.drain()
    desk.clock.advance(minutes=30)
    resolved = desk.client.patch(
        f"/api/incidents/{incident}", json={"status": "resolved"}, headers=desk.duty
    )
    assert resolved.status_code == 200, resolved.text
    desk.worker.drain()  # the stand-down stage: complaints follow up within 2 days
    (follow_up,) = [t for t in tasks_of(desk, incident) if t["follow_up"]]
    assert follow_up["owner"]["department"] == "complaints"
    assert follow_up["stage"] == "stand-down"
    report = desk.client.get(f"/api/drills/{incident}/report?format=md", headers=desk.duty)
    assert report.status_code == 200
    section = report.text.split("## Follow-up tasks")[1].split("## Timeline")[0]
    assert "Follow up complaints about these delays" in section
    assert "| complaints |" in section and "| open |" in section
    html = desk.client.get(f"/api/drills/{incident}/report", headers=desk.duty).text
    assert "Follow-up tasks" in html
    # Tasks from before the resolution no longer page when their time passes.
    desk.advance(hours=1)
    assert task_pages(desk, incident) == []
