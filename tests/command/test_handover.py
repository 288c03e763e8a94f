"""Shift handover: exactly what is open on every incident not closed; the incoming duty
manager's acknowledgement is recorded with it."""

from __future__ import annotations

from typing import Any

from tests.command.conftest import Desk


def test_a_handover_lists_exactly_what_is_open_and_its_acknowledgement_is_recorded(
    desk: Desk,
) -> None:
    incident = desk.declare()
    closed = desk.declare(title="Over already")
    desk.worker.drain()
    for status in ("resolved", "closed"):
        changed = desk.client.patch(
            f"/api/incidents/{closed}", json={"status": status}, headers=desk.duty
        )
        assert changed.status_code == 200, changed.text
    staff = desk.auth("staff", "zhou.ting")
    late = desk.client.post(
        f"/api/incidents/{incident}/inquiries",
        json={"phone": "13812340002", "question": "Refund?", "callback_minutes": 2},
        headers=staff,
    ).json()
    desk.client.post(
        f"/api/incidents/{incident}/inquiries",
        json={"phone": "13812340003", "question": "Water?", "callback_minutes": 60},
        headers=staff,
    )
    coordination = next(
        p
        for p in desk.pages(incident)
        if p["target"] == {"kind": "department", "id": "coordination"}
    )
    desk.client.post(f"/api/pages/{coordination['id']}/ack", headers=desk.duty)
    by_hand = desk.client.post(
        f"/api/incidents/{incident}/tasks",
        json={"title": "Call the bureau", "person": "zhou.min", "due_minutes": 30},
        headers=desk.duty,
    ).json()
    finished = desk.client.post(
        f"/api/incidents/{incident}/tasks",
        json={"title": "Print the call tree", "department": "coordination"},
        headers=desk.duty,
    ).json()
    desk.client.patch(f"/api/tasks/{finished['id']}", json={"status": "done"}, headers=desk.duty)
    desk.advance(minutes=6)  # the call-back is late (and pages inquiry); the first notice drafted

    listing = desk.get("/api/handover")
    (item,) = listing["incidents"]
    assert item["id"] == incident
    awaiting = {p["id"] for p in desk.pages(incident) if p["status"] != "acked"}
    assert {p["id"] for p in item["pending_acks"]} == awaiting
    assert coordination["id"] not in awaiting
    (notice,) = desk.get(f"/api/incidents/{incident}/notices")["items"]
    assert item["notices_due"] == [
        {
            "id": notice["id"],
            "status": "draft",
            "next_update_due": notice["next_update_due"],
            "overdue": False,
            "draft_awaiting_approval": True,
        }
    ]
    assert [c["id"] for c in item["callbacks_overdue"]] == [late["id"]]
    open_tasks = {t["id"] for t in item["tasks_open"]}
    playbook_tasks = {
        t["id"]
        for t in desk.get(f"/api/incidents/{incident}/tasks")["items"]
        if t["stage"] is not None
    }
    assert open_tasks == playbook_tasks | {by_hand["id"]}
    assert finished["id"] not in open_tasks
    assert item["reports_due"] == []
    counts = listing["counts"]
    assert counts == {
        "incidents": 1,
        "pending_acks": len(awaiting),
        "notices_due": 1,
        "callbacks_overdue": 1,
        "tasks_open": len(open_tasks),
        "reports_due": 0,
    }

    incoming = desk.auth("duty_manager")
    key = {**incoming, "Idempotency-Key": "shift-2026-11-22"}
    body = {"outgoing": "zhou.min", "note": "bureau expects a call at 11:00"}
    made = desk.client.post("/api/handovers", json=body, headers=key)
    assert made.status_code == 201, made.text
    record: dict[str, Any] = made.json()
    assert record["incoming"].startswith("duty_manager-") and record["outgoing"] == "zhou.min"
    assert record["acknowledged_at"] == desk.clock.now().isoformat()
    assert record["open_items"] == sum(v for k, v in counts.items() if k != "incidents")
    assert record["snapshot"]["incidents"] == listing["incidents"]
    assert desk.client.post("/api/handovers", json=body, headers=key).json()["id"] == record["id"]
    recorded = desk.get("/api/handovers")["items"]
    assert [h["id"] for h in recorded] == [record["id"]]
    assert desk.get(f"/api/handovers/{record['id']}")["note"] == body["note"]
    assert desk.get("/api/handover")["last_handover"]["id"] == record["id"]
    events = desk.get(f"/api/incidents/{incident}/timeline")["items"]
    (taken,) = [e for e in events if e["kind"] == "handover:acknowledged"]
    assert taken["data"]["handover"] == record["id"] and taken["actor"] == record["incoming"]
    closed_events = desk.get(f"/api/incidents/{closed}/timeline")["items"]
    assert not any(e["kind"] == "handover:acknowledged" for e in closed_events)


def test_only_a_duty_manager_takes_over_a_shift(desk: Desk) -> None:
    staff = desk.auth("staff")
    assert desk.client.post("/api/handovers", json={}, headers=staff).status_code == 403
    assert desk.client.get("/api/handover", headers=desk.auth("viewer")).status_code == 200
    wrong = desk.client.post("/api/handovers", json={"incoming": "me"}, headers=desk.duty)
    assert wrong.status_code == 422
