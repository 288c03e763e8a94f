"""Reports up to the railway authority: drafted from the incident in the fields of the
accident reporting rules, required by a playbook stage with a due time, submitted by a duty
manager, supplemented when facts change."""

from __future__ import annotations

from typing import Any

from tests.command.conftest import Desk


def reports_of(desk: Desk, incident: str) -> list[dict[str, Any]]:
    return list(desk.get(f"/api/incidents/{incident}/authority-reports")["items"])


def test_a_playbook_requires_a_report_that_pages_the_commander_when_late(desk: Desk) -> None:
    incident = desk.declare(severity="II")  # mass-delay escalates at II: a report in 30m
    desk.worker.drain()
    (report,) = reports_of(desk, incident)
    assert (report["number"], report["kind"], report["status"]) == (1, "initial", "draft")
    assert report["reason"] == "playbook"
    fields = report["fields"]
    assert fields["place"] == "G" and fields["time"] == desk.clock.now().isoformat()
    assert "trains_affected=40" in fields["impact"] and fields["impact"].startswith("level II")
    assert "启动预案" in fields["measures_taken"]
    before = {p.id for p in desk.page_rows(incident)}

    desk.advance(minutes=30)
    late = [
        p for p in desk.page_rows(incident) if p.id not in before and p.origin.startswith("report:")
    ]
    assert [(p.target_kind, p.target_id) for p in late] == [("person", "wang.jianguo")]
    assert reports_of(desk, incident)[0]["overdue"] is True

    path = f"/api/authority-reports/{report['id']}"
    missing = desk.client.post(f"{path}/submit", json={"via": "pigeon"}, headers=desk.duty)
    assert missing.status_code == 422
    changed = desk.client.patch(
        path,
        json={"fields": {"casualties": "none", "help_requested": "buses from Tianjin"}},
        headers=desk.duty,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["fields"]["help_requested"] == "buses from Tianjin"
    bad = desk.client.patch(path, json={"fields": {"weather": "rain"}}, headers=desk.duty)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "fields.weather"
    sent = desk.client.post(
        f"{path}/submit", json={"to": "Beijing bureau dispatch", "via": "phone"}, headers=desk.duty
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "submitted"
    assert sent.json()["submitted_at"] == desk.clock.now().isoformat()
    text = desk.client.get(f"{path}?format=md", headers=desk.duty).text
    assert "| 请求支援 / Help requested | buses from Tianjin |" in text
    assert desk.client.patch(path, json={"fields": {}}, headers=desk.duty).status_code == 409

    # Facts change: a supplementary report is opened, once.
    for delay in (150, 180):
        changed = desk.client.patch(
            f"/api/incidents/{incident}",
            json={"facts": {"expected_delay_min": delay}},
            headers=desk.duty,
        )
        assert changed.status_code == 200
    (_, second) = reports_of(desk, incident)
    assert (second["number"], second["kind"], second["reason"]) == (
        2,
        "supplementary",
        "facts changed",
    )
    assert "expected_delay_min=180" in second["fields"]["impact"]
    events = desk.get(f"/api/incidents/{incident}/timeline")["items"]
    kinds = [e["kind"] for e in events if e["kind"].startswith("authority_report:")]
    assert kinds == [
        "authority_report:requested",
        "authority_report:drafted",
        "authority_report:overdue",
        "authority_report:changed",
        "authority_report:submitted",
        "authority_report:drafted",
    ]


def test_a_duty_manager_drafts_a_report_by_hand(desk: Desk) -> None:
    incident = desk.declare()
    path = f"/api/incidents/{incident}/authority-reports"
    key = {**desk.duty, "Idempotency-Key": "report-1"}
    body = {"fields": {"casualties": "none", "passengers": 300}}
    made = desk.client.post(path, json=body, headers=key)
    assert made.status_code == 201, made.text
    assert made.json()["fields"]["passengers"] == 300
    assert desk.client.post(path, json=body, headers=key).json()["id"] == made.json()["id"]
    second = desk.client.post(path, json=body, headers=desk.duty)
    assert second.status_code == 409  # one draft at a time
    assert desk.client.post(path, json={"extra": 1}, headers=desk.duty).status_code == 422
    assert desk.client.post(path, json=body, headers=desk.auth("staff")).status_code == 403
