"""The situation report of a scripted incident reports exactly what happened: pages
acknowledged at known times, two passenger groups, a notice published."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.command.conftest import Desk


def page_for(desk: Desk, incident: str, target: str) -> dict[str, Any]:
    (page,) = [
        p
        for p in desk.pages(incident)
        if f"{p['target']['kind']}:{p['target']['id']}" == target and p["stage"] == "activate"
    ]
    return page


def ack(desk: Desk, page: dict[str, Any]) -> None:
    done = desk.client.post(f"/api/pages/{page['id']}/ack", headers=desk.duty)
    assert done.status_code == 200, done.text


def test_the_sitrep_of_a_scripted_incident_reports_exactly_those_numbers(desk: Desk) -> None:
    t0 = desk.clock.now()
    incident = desk.declare()
    desk.worker.drain()  # activate: coordination, inquiry, duty director paged and delivered
    staff = desk.auth("staff", "zhou.ting")

    desk.advance(minutes=1)
    groups = [
        {
            "train": "G1234",
            "station": "Langfang",
            "location": "Langfang station, platform 3",
            "count": 120,
            "since": (t0 - timedelta(minutes=5)).isoformat(),
            "needs": ["water", "food"],
        },
        {
            "train": "G5678",
            "location": "between Langfang and Tianjin",
            "count": 80,
            "since": (t0 + timedelta(minutes=1)).isoformat(),
            "needs": ["water"],
        },
    ]
    for group in groups:
        made = desk.client.post(
            f"/api/incidents/{incident}/passenger-groups", json=group, headers=desk.duty
        )
        assert made.status_code == 201, made.text
    call = desk.client.post(
        f"/api/incidents/{incident}/inquiries",
        json={"phone": "13812340002", "question": "When does G1234 leave?", "callback_minutes": 30},
        headers=staff,
    )
    assert call.status_code == 201, call.text

    desk.advance(minutes=1)  # t0 + 2 min: the duty director acknowledges
    ack(desk, page_for(desk, incident, "role:duty_director"))
    desk.advance(minutes=2)  # t0 + 4 min: coordination acknowledges
    ack(desk, page_for(desk, incident, "department:coordination"))
    desk.advance(minutes=1)  # t0 + 5 min: nobody in inquiry did: escalated; first notice drafted
    (notice,) = desk.get(f"/api/incidents/{incident}/notices")["items"]
    desk.advance(minutes=1)  # t0 + 6 min: published
    published = desk.client.post(f"/api/notices/{notice['id']}/publish", headers=desk.duty)
    assert published.status_code == 200, published.text
    desk.advance(minutes=2)  # t0 + 8 min

    s = desk.get(f"/api/incidents/{incident}/sitrep", headers=desk.auth("viewer"))
    assert s["as_of"] == (t0 + timedelta(minutes=8)).isoformat()
    assert s["what_happened"]["level"] == "III"
    assert s["what_happened"]["minutes_since_declared"] == 8.0
    assert s["what_happened"]["facts"]["passengers_stranded"] == 200
    assert s["affected"] == {
        "lines": ["G"],
        "stations": ["Langfang"],
        "trains": ["G1234", "G5678"],
    }
    assert {r["role"]: r["person"] for r in s["roles"]}["commander"] == "wang.jianguo"

    pages = s["pages"]
    assert {k: pages[k] for k in ("total", "sent", "acknowledged", "awaiting", "escalated")} == {
        "total": 3,
        "sent": 3,
        "acknowledged": 2,
        "awaiting": 1,
        "escalated": 1,
    }
    assert pages["unreachable"] == 0
    by_target = {p["target"]: p for p in pages["items"]}
    assert by_target["role:duty_director"]["minutes_to_ack"] == 2.0
    assert by_target["department:coordination"]["minutes_to_ack"] == 4.0
    assert (
        by_target["department:coordination"]["acked_at"] == (t0 + timedelta(minutes=4)).isoformat()
    )
    assert by_target["department:inquiry"]["status"] == "escalated"
    assert by_target["department:inquiry"]["level"] == 1

    notices = s["notices"]
    assert (notices["total"], notices["published"], notices["drafts_awaiting"]) == (1, 1, 0)
    assert notices["next_update_due"] == (t0 + timedelta(minutes=26)).isoformat()
    assert notices["update_overdue"] is False

    p = s["passengers"]
    assert p["stranded"] == 200
    assert p["longest_minutes"] == 13
    assert [(g["train"], g["count"], g["minutes"], g["needs_open"]) for g in p["groups"]] == [
        ("G1234", 120, 13, ["food", "water"]),
        ("G5678", 80, 7, ["water"]),
    ]
    assert p["callbacks"] == {"due": 1, "overdue": 0, "done": 0}
    assert p["messages"]["sent"] == 0  # no SMS gateway in this rig

    tasks = s["tasks"]
    assert (tasks["open"], tasks["overdue"], tasks["done"]) == (2, 0, 0)
    assert sorted(t["owner"]["department"] for t in tasks["items"]) == ["inquiry", "ticketing"]

    events = s["events"]
    assert len(events) == 10
    timeline = desk.get(f"/api/incidents/{incident}/timeline")["items"]
    assert [e["seq"] for e in events] == [e["seq"] for e in timeline[-10:]]

    md = desk.client.get(f"/api/incidents/{incident}/sitrep.md", headers=desk.duty)
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert "3 pages: 3 delivered, 2 acknowledged, 1 awaiting, 1 escalated" in md.text
    assert "200 stranded, the longest for 13 min" in md.text
    html = desk.client.get(f"/api/incidents/{incident}/sitrep?format=html", headers=desk.duty)
    assert html.status_code == 200 and "Situation report" in html.text
    assert "13812340002" not in md.text + html.text + str(s)


def test_the_sitrep_needs_a_known_incident_and_a_known_format(desk: Desk) -> None:
    assert desk.client.get("/api/incidents/nope/sitrep", headers=desk.duty).status_code == 404
    incident = desk.declare()
    wrong = desk.client.get(f"/api/incidents/{incident}/sitrep?format=pdf", headers=desk.duty)
    assert wrong.status_code == 400
    assert desk.client.get(f"/api/incidents/{incident}/sitrep").status_code == 401
