"""When chat and phones are down: the call tree of a playbook (numbers only for roles that may
see personal data) and people reached by hand."""

from __future__ import annotations

from typing import Any

from incident.command import calltree
from incident.db import Database
from incident.models import ContactMethod
from tests.command.conftest import Desk


def flatten(node: dict[str, Any], parent: str | None = None) -> list[tuple[str | None, str]]:
    out = [(parent, node["person"])]
    for child in node["calls"]:
        out += flatten(child, node["person"])
    return out


def test_the_call_tree_says_who_calls_whom_with_numbers_for_duty_managers(
    desk: Desk, seeded: Database
) -> None:
    with seeded.transaction() as session:  # a landline, as a real roster would have
        session.add(ContactMethod(person_id="feng.yu", position=3, url="tel://+861088886666"))
    tree = desk.get("/api/playbooks/network-outage/calltree")
    edges = flatten(tree["root"])
    assert edges[0] == (None, "wang.jianguo")  # the duty director on duty starts it
    heads = [person for parent, person in edges if parent == "wang.jianguo"]
    # The heads of the sections the playbook pages or gives tasks, then the roles it pages.
    assert heads[:4] == ["feng.yu", "luo.qing", "li.na", "lin.hui"]
    assert ("feng.yu", "cheng.kai") in edges  # IT's head calls IT's day shift
    assert ("li.na", "zhou.ting") in edges and ("li.na", "wang.fang") in edges
    assert "liu.min" in heads and "sun.hao" in heads  # deputy directors, paged on escalation
    it = next(n for n in tree["root"]["calls"] if n["person"] == "feng.yu")
    assert {"label": "#3", "address": "tel://+861088886666"} in it["contacts"]
    assert it["for"]["department"] == "it"

    masked = desk.get("/api/playbooks/network-outage/calltree", headers=desk.auth("viewer"))
    it = next(n for n in masked["root"]["calls"] if n["person"] == "feng.yu")
    assert masked["masked"] is True
    assert "tel://**********66" in [c["address"] for c in it["contacts"]]
    assert "88886666" not in str(masked)

    md = desk.client.get("/api/playbooks/network-outage/calltree?format=md", headers=desk.duty)
    assert md.headers["content-type"].startswith("text/markdown")
    assert "- [ ] **王建国** `wang.jianguo`" in md.text
    assert "  - [ ] **冯宇** `feng.yu` — 信息技术 IT" in md.text
    html = desk.client.get("/api/playbooks/network-outage/calltree?format=html", headers=desk.duty)
    assert html.status_code == 200 and "tel://+861088886666" in html.text
    assert desk.client.get("/api/playbooks/nope/calltree", headers=desk.duty).status_code == 404


def test_someone_reached_by_hand_is_recorded_and_their_pages_acknowledged(desk: Desk) -> None:
    incident = desk.declare(
        playbook="network-outage",
        title="Dispatch comms down",
        facts={"system": "dispatch_comms", "expected_restore_min": 90},
    )
    desk.worker.drain()
    it_page = next(p for p in desk.pages(incident) if p["target"]["id"] == "it")
    person = it_page["recipients"][0]["person"]
    staff = desk.auth("staff", "tang.jun")
    body = {"person": person, "by": "tang.jun", "note": "walked to the IT room"}
    made = desk.client.post(f"/api/incidents/{incident}/reached-by-hand", json=body, headers=staff)
    assert made.status_code == 201, made.text
    assert made.json()["pages"] == [it_page["id"]]
    page = next(p for p in desk.pages(incident) if p["id"] == it_page["id"])
    assert page["status"] == "acked" and page["acked_via"] == "hand"
    s = desk.get(f"/api/incidents/{incident}/sitrep")
    assert s["pages"]["reached_by_hand"] == [
        {"person": person, "by": "tang.jun", "at": desk.clock.now().isoformat()}
    ]
    events = desk.get(f"/api/incidents/{incident}/timeline")["items"]
    (hand,) = [e for e in events if e["kind"] == "contact:reached_by_hand"]
    assert hand["data"]["by"] == "tang.jun" and hand["data"]["pages"] == [it_page["id"]]
    wrong = desk.client.post(
        f"/api/incidents/{incident}/reached-by-hand", json={"person": person}, headers=staff
    )
    assert wrong.status_code == 422
    viewer = desk.auth("viewer")
    refused = desk.client.post(
        f"/api/incidents/{incident}/reached-by-hand", json=body, headers=viewer
    )
    assert refused.status_code == 403


def test_the_markdown_call_tree_notes_masking() -> None:
    tree = {
        "playbook": "p",
        "title": {"zh": "测", "en": "T"},
        "as_of": "2026-11-22T02:00:00+00:00",
        "masked": True,
        "root": None,
        "unplaced": [],
    }
    from zoneinfo import ZoneInfo

    text = calltree.markdown(tree, ZoneInfo("Asia/Shanghai"))
    assert "2026-11-22 10:00" in text and "masked for your role" in text
