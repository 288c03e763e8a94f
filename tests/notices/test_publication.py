"""A notice's life on every surface: drafted by the playbook, approved, updated, cleared."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import xmlschema
from sqlalchemy import select
from starlette.testclient import TestClient

from incident.clock import FrozenClock
from incident.db import Database
from incident.models import Delivery, Page
from incident.worker import Worker
from tests.notices.desk import CAP, Desk, cap_value, translations
from tests.peers import HttpReceiver

Auth = Callable[..., dict[str, str]]


@pytest.fixture
def desk(
    client: TestClient,
    worker: Worker,
    clock: FrozenClock,
    auth: Auth,
    cap_schema: xmlschema.XMLSchema,
) -> Desk:
    return Desk(client, worker, clock, auth("duty_manager"), cap_schema)


def test_a_playbook_stage_drafts_a_bilingual_notice_that_approval_publishes(
    desk: Desk, seeded: Database, receiver: HttpReceiver
) -> None:
    incident_id = desk.declare(station="南京南")
    desk.run()
    assert desk.notices(incident_id) == []
    desk.run(minutes=5)  # the first-notice stage fires
    (summary,) = desk.notices(incident_id)
    assert summary["status"] == "draft" and summary["draft_pending"] is True
    assert summary["headline"] == {"zh": "G部分列车晚点", "en": "Delays on G"}
    # Target: the first notice within 15 minutes of declaration.
    declared = desk.clock.now() - timedelta(minutes=5)
    assert summary["next_update_due"] == (declared + timedelta(minutes=15)).isoformat()
    (version,) = desk.notice(summary["id"])["versions"]
    assert version["kind"] == "initial" and version["status"] == "draft"
    assert version["template"] == "notice-initial"
    zh, en = version["languages"]["zh"], version["languages"]["en"]
    assert "受影响车站：南京南" in zh["body"] and "40趟列车晚点" in zh["body"]
    assert "40 trains on G are running late" in en["body"]
    assert version["lines"] == ["G"] and version["stations"] == ["南京南"]
    assert version["cause"] == "OTHER_CAUSE" and version["effect"] == "SIGNIFICANT_DELAYS"
    assert version["level"] == "III"

    # A draft is public nowhere.
    assert "G部分列车晚点" not in desk.page()
    assert len(desk.gtfs().entity) == 0
    assert desk.atom()[1].entries == []
    assert desk.client.get(f"/notices/{summary['id']}.cap").status_code == 404

    desk.run(minutes=2)
    published = desk.publish(summary["id"])
    now = desk.clock.now()
    assert published["status"] == "current" and published["published_version"] == 1
    assert published["versions"][0]["approved_by"].startswith("duty_manager-")
    assert published["next_update_due"] == (now + timedelta(minutes=20)).isoformat()
    kinds = [(e["kind"], e["actor"]) for e in desk.events(incident_id)]
    assert [k for k, _ in kinds] == [
        "notice:requested",
        "notice:drafted",
        "notice:approved",
        "notice:published",
    ]
    assert kinds[2][1] == kinds[3][1] == published["versions"][0]["approved_by"]

    page = desk.page()
    assert "G部分列车晚点" in page and "Delays on G" in page and 'lang="en"' in page
    assert "南京南" in desk.page(f"/notices/{summary['id']}")
    _, atom = desk.atom()
    (entry,) = atom.entries
    assert entry.title == "G部分列车晚点 / Delays on G"
    assert entry.link.endswith(f"/notices/{summary['id']}")
    alert = desk.cap(summary["id"])
    assert cap_value(alert, "status") == ["Actual"] and cap_value(alert, "msgType") == ["Alert"]
    assert cap_value(alert, "references") == []
    assert cap_value(alert, "info/language") == ["zh-CN", "en"]
    assert cap_value(alert, "info/severity") == ["Moderate", "Moderate"]
    assert cap_value(alert, "info/category") == ["Transport", "Transport"]
    assert cap_value(alert, "info/event") == ["大面积列车晚点", "Mass train delays"]
    assert cap_value(alert, "sent")[0].endswith("-00:00")
    assert cap_value(alert, "info/instruction")[0].startswith("请您：")
    (indexed,) = desk.cap_index().entries
    (cap_link,) = [link for link in indexed.links if link.type == "application/cap+xml"]
    assert cap_link.rel == "alternate" and cap_link.href.endswith(f"/notices/{summary['id']}.cap")
    (entity,) = desk.gtfs().entity
    assert entity.id == summary["id"]
    assert translations(entity.alert.header_text) == {"zh-CN": "G部分列车晚点", "en": "Delays on G"}
    assert set(translations(entity.alert.description_text)) == {"zh-CN", "en"}
    assert [e.route_id for e in entity.alert.informed_entity if e.route_id] == ["G"]
    assert [e.stop_id for e in entity.alert.informed_entity if e.stop_id] == ["南京南"]
    assert entity.alert.severity_level == entity.alert.WARNING
    assert entity.alert.effect == entity.alert.SIGNIFICANT_DELAYS
    assert entity.alert.communication_period[0].start <= int(now.timestamp())

    desk.run()  # the public channel gets it through the durable delivery
    with seeded.reading() as session:
        (sent,) = session.scalars(select(Delivery).where(Delivery.purpose == "notice"))
    assert sent.status == "delivered" and sent.idempotency_key.startswith("notice:")
    (hook,) = [r for r in receiver.received if r.path == "/ok/public"]
    assert "G部分列车晚点" in hook.body["message"] and "Delays on G" in hook.body["message"]


def test_an_update_supersedes_everywhere_and_the_all_clear_closes_the_notice(
    desk: Desk,
) -> None:
    incident_id = desk.declare()
    desk.run(minutes=5)
    (summary,) = desk.notices(incident_id)
    notice_id = summary["id"]
    desk.publish(notice_id)
    first_alert = desk.cap(notice_id)
    desk.run(minutes=15)  # 20 minutes after declaration: the update stage drafts version 2
    notice = desk.notice(notice_id)
    assert [(v["number"], v["kind"], v["status"]) for v in notice["versions"]] == [
        (1, "initial", "published"),
        (2, "update", "draft"),
    ]
    # Until it is approved, the public still sees version 1.
    assert "列车晚点情况更新" not in desk.page()
    desk.publish(notice_id)
    notice = desk.notice(notice_id)
    assert [v["status"] for v in notice["versions"]] == ["superseded", "published"]
    superseded = [e for e in desk.events(incident_id) if e["kind"] == "notice:superseded"]
    assert superseded[-1]["data"] == {"notice": notice_id, "version": 1, "by": 2}

    page = desk.page()
    assert "G列车晚点情况更新" in page and "G部分列车晚点" not in page
    history = desk.page(f"/notices/{notice_id}")
    assert "此前版本" in history and "G部分列车晚点" in history
    _, atom = desk.atom()
    (entry,) = atom.entries
    assert entry.title.startswith("G列车晚点情况更新") and "Update on delays on G" in entry.title
    update = desk.cap(notice_id)
    assert cap_value(update, "msgType") == ["Update"]
    first_ref = ",".join(
        [
            cap_value(first_alert, "sender")[0],
            cap_value(first_alert, "identifier")[0],
            cap_value(first_alert, "sent")[0],
        ]
    )
    assert cap_value(update, "references") == [first_ref]
    (entity,) = desk.gtfs().entity
    assert translations(entity.alert.header_text)["en"].startswith("Update on delays on G")

    resolved = desk.client.patch(
        f"/api/incidents/{incident_id}", json={"status": "resolved"}, headers=desk.headers
    )
    assert resolved.status_code == 200
    desk.run(minutes=1)  # stand-down drafts the all-clear
    notice = desk.notice(notice_id)
    assert notice["versions"][-1]["kind"] == "all_clear"
    desk.publish(notice_id)
    closed = desk.notice(notice_id)
    assert closed["status"] == "closed"
    cleared = closed["versions"][-1]
    assert cleared["impact_end"] == cleared["published_at"]  # the impact ended when cleared

    assert len(desk.gtfs().entity) == 0  # gone from GTFS-Realtime
    page = desk.page()
    assert "G列车运行恢复正常" in page and "已解除" in page and "Closed" in page
    assert "当前公告" in page and "No notices are in force" in page
    _, atom = desk.atom()
    (entry,) = atom.entries
    assert entry.title.startswith("【已解除】G列车运行恢复正常")
    assert {t.term for t in entry.tags} >= {"closed"}
    clear = desk.cap(notice_id)
    assert cap_value(clear, "msgType") == ["Update"]
    assert cap_value(clear, "info/responseType") == ["AllClear", "AllClear"]
    assert cap_value(clear, "info/urgency") == ["Past", "Past"]
    assert len(cap_value(clear, "references")[0].split()) == 2
    (indexed,) = desk.cap_index().entries
    assert indexed.title.startswith("【已解除】")


def test_edits_after_approval_are_a_new_draft_and_never_change_what_was_published(
    desk: Desk,
) -> None:
    incident_id = desk.declare()
    notice_id = desk.draft(incident_id, "G线晚点", "Delays on line G")
    desk.publish(notice_id)
    edited = desk.client.post(
        f"/api/notices/{notice_id}/versions",
        json={
            "kind": "update",
            "languages": {"zh": {"headline": "G线晚点加剧", "body": "晚点约120分钟。"}},
        },
        headers=desk.headers,
    )
    assert edited.status_code == 201, edited.text
    versions = edited.json()["versions"]
    assert versions[0]["status"] == "published"
    assert versions[0]["languages"]["zh"]["headline"] == "G线晚点"
    assert versions[1]["status"] == "draft"
    assert "G线晚点加剧" not in desk.page() and "G线晚点" in desk.page()
    # A second edit replaces the unpublished draft; the published version stays.
    again = desk.client.post(
        f"/api/notices/{notice_id}/versions",
        json={"kind": "update", "template": "notice-update"},
        headers=desk.headers,
    )
    assert [v["status"] for v in again.json()["versions"]] == [
        "published",
        "superseded",
        "draft",
    ]
    # Publishing twice: the second finds no draft.
    desk.publish(notice_id)
    second = desk.client.post(f"/api/notices/{notice_id}/publish", headers=desk.headers)
    assert second.status_code == 409
    assert second.headers["content-type"].startswith("application/problem+json")


def test_one_idempotency_key_publishes_once(desk: Desk, seeded: Database) -> None:
    incident_id = desk.declare()
    notice_id = desk.draft(incident_id, "G线晚点", "Delays on line G")
    headers = {**desk.headers, "Idempotency-Key": "publish-1"}
    first = desk.client.post(f"/api/notices/{notice_id}/publish", headers=headers)
    second = desk.client.post(f"/api/notices/{notice_id}/publish", headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    published = [e for e in desk.events(incident_id) if e["kind"] == "notice:published"]
    assert len(published) == 1
    with seeded.reading() as session:
        assert len(list(session.scalars(select(Delivery).where(Delivery.purpose == "notice")))) == 1


def test_the_four_eyes_rule_needs_a_second_duty_manager(
    client: TestClient,
    worker: Worker,
    clock: FrozenClock,
    auth: Auth,
    cap_schema: xmlschema.XMLSchema,
) -> None:
    state = client.app.state.incident  # type: ignore[attr-defined]
    state.settings = state.settings.replace(notice_four_eyes=True)
    desk = Desk(client, worker, clock, auth("duty_manager"), cap_schema)
    incident_id = desk.declare()
    notice_id = desk.draft(incident_id, "G线晚点", "Delays on line G")
    refused = client.post(f"/api/notices/{notice_id}/publish", headers=desk.headers)
    assert refused.status_code == 403 and "four-eyes" in refused.json()["detail"]
    approved = desk.publish(notice_id, headers=auth("duty_manager"))
    assert approved["versions"][0]["drafted_by"] != approved["versions"][0]["approved_by"]
    viewer = client.post(f"/api/notices/{notice_id}/publish", headers=auth("viewer"))
    assert viewer.status_code == 403


def test_an_overdue_update_is_recorded_and_pages_the_duty_manager(
    desk: Desk, seeded: Database
) -> None:
    incident_id = desk.declare()
    notice_id = desk.draft(incident_id, "G线晚点", "Delays on line G")
    desk.publish(notice_id)
    desk.run(minutes=19)
    assert [e for e in desk.events(incident_id) if e["kind"] == "notice:update_overdue"] == []
    desk.run(minutes=1)  # 20 minutes after publication, no update was published
    (overdue,) = [e for e in desk.events(incident_id) if e["kind"] == "notice:update_overdue"]
    assert overdue["data"]["notice"] == notice_id and overdue["data"]["version"] == 1
    with seeded.reading() as session:
        (page,) = session.scalars(
            select(Page).where(Page.incident_id == incident_id, Page.target_kind == "duty")
        )
    assert page.origin == f"duty:notice_overdue:{notice_id}:1"
    assert page.text is not None and "Notice update overdue" in page.text["en"]
    desk.run(minutes=30)  # one alert per missed update
    assert len([e for e in desk.events(incident_id) if e["kind"] == "notice:update_overdue"]) == 1


def test_an_update_published_in_time_cancels_the_overdue_alert(desk: Desk) -> None:
    incident_id = desk.declare()
    notice_id = desk.draft(incident_id, "G线晚点", "Delays on line G")
    desk.publish(notice_id)
    desk.run(minutes=15)  # the update stage drafts at 20 minutes after declaration
    desk.client.post(
        f"/api/notices/{notice_id}/versions",
        json={"kind": "update", "template": "notice-update"},
        headers=desk.headers,
    )
    desk.publish(notice_id)
    desk.run(minutes=10)
    assert [e for e in desk.events(incident_id) if e["kind"].endswith("_overdue")] == []


def test_a_first_notice_left_unapproved_past_its_target_is_overdue(desk: Desk) -> None:
    incident_id = desk.declare()
    desk.run(minutes=5)
    desk.run(minutes=9)
    assert [e for e in desk.events(incident_id) if e["kind"] == "notice:first_overdue"] == []
    desk.run(minutes=1)
    (overdue,) = [e for e in desk.events(incident_id) if e["kind"] == "notice:first_overdue"]
    assert overdue["data"]["version"] == 0


def test_resolving_before_any_publication_withdraws_the_draft(desk: Desk) -> None:
    incident_id = desk.declare()
    desk.run(minutes=5)
    (summary,) = desk.notices(incident_id)
    desk.client.patch(
        f"/api/incidents/{incident_id}", json={"status": "resolved"}, headers=desk.headers
    )
    desk.run()
    assert desk.notice(summary["id"])["status"] == "withdrawn"
    assert "G部分列车晚点" not in desk.page()


def test_a_withdrawal_is_a_cap_cancel_and_leaves_gtfs(desk: Desk) -> None:
    incident_id = desk.declare()
    notice_id = desk.draft(incident_id, "G线晚点", "Delays on line G")
    desk.publish(notice_id)
    response = desk.client.post(
        f"/api/notices/{notice_id}/versions",
        json={
            "kind": "withdrawal",
            "languages": {
                "zh": {"headline": "撤回：G线晚点", "body": "此前公告有误，特此撤回。"},
                "en": {"headline": "Withdrawn: delays on line G", "body": "Issued in error."},
            },
        },
        headers=desk.headers,
    )
    assert response.status_code == 201, response.text
    desk.publish(notice_id)
    cancel = desk.cap(notice_id)
    assert cap_value(cancel, "msgType") == ["Cancel"]
    assert cap_value(cancel, "info/responseType") == ["None", "None"]
    assert len(desk.gtfs().entity) == 0
    assert "已撤回" in desk.page()


def test_gtfs_realtime_renders_as_json_for_debugging(desk: Desk) -> None:
    incident_id = desk.declare()
    desk.publish(desk.draft(incident_id, "G线晚点", "Delays on line G", trains=["G101"]))
    body = desk.client.get("/gtfs-rt/alerts.pb?format=json").json()
    (entity,) = body["entity"]
    informed = entity["alert"]["informedEntity"]
    assert {"trip": {"tripId": "G101"}} in informed and {"routeId": "G"} in informed
    assert entity["alert"]["headerText"]["translation"][0] == {
        "text": "G线晚点",
        "language": "zh-CN",
    }
    assert desk.client.get("/gtfs-rt/alerts.pb?format=xml").status_code == 400


def test_unknown_and_unpublished_notices_are_not_found(desk: Desk) -> None:
    incident_id = desk.declare()
    notice_id = desk.draft(incident_id, "G线晚点", "Delays on line G")
    for path in (f"/notices/{notice_id}", f"/notices/{notice_id}.cap", "/notices/ntc_none"):
        response = desk.client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")


def test_every_cap_document_is_valid_cap_1_2(desk: Desk) -> None:
    """Alert, Update with references, all-clear and the drill's Exercise, all against the
    CAP 1.2 schema (the documents themselves are checked in the tests above too)."""
    live = desk.declare()
    notice_id = desk.draft(live, "G线晚点", "Delays on line G")
    desk.publish(notice_id)
    for kind in ("update", "all_clear"):
        desk.client.post(
            f"/api/notices/{notice_id}/versions",
            json={
                "kind": kind,
                "template": "notice-update" if kind == "update" else "notice-all-clear",
            },
            headers=desk.headers,
        )
        desk.publish(notice_id)
        alert = desk.cap(notice_id)
        assert alert.tag == f"{CAP}alert"
    drill = desk.declare(mode="drill")
    drill_notice = desk.draft(drill, "演练：G线晚点", "Exercise: delays on line G")
    desk.publish(drill_notice)
    exercise = desk.cap(drill_notice, api=True)
    assert cap_value(exercise, "status") == ["Exercise"]
    assert drill in cap_value(exercise, "note")[0]
