"""Drills never leak to a public surface; text is escaped everywhere; oversized text is refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import xmlschema
from sqlalchemy import func, select
from starlette.testclient import TestClient

from incident.clock import FrozenClock
from incident.db import Database
from incident.models import Delivery, InboxMessage, Notice, NoticeVersion
from incident.worker import Worker
from tests.notices.desk import Desk, cap_value, translations
from tests.peers import HttpReceiver

Auth = Callable[..., dict[str, str]]
SCRIPT = '<script>alert("x")</script>'


@pytest.fixture
def desk(
    client: TestClient,
    worker: Worker,
    clock: FrozenClock,
    auth: Auth,
    cap_schema: xmlschema.XMLSchema,
) -> Desk:
    return Desk(client, worker, clock, auth("duty_manager"), cap_schema)


def test_a_drill_notice_reaches_no_public_surface_while_a_live_one_reaches_all(
    desk: Desk, seeded: Database, receiver: HttpReceiver
) -> None:
    live = desk.declare()
    drill = desk.declare(mode="drill")
    desk.run(minutes=5)  # both playbooks draft their first notice
    (live_notice,) = desk.notices(live)
    (drill_notice,) = desk.notices(drill)
    drill_version = desk.notice(drill_notice["id"])["versions"][0]
    assert drill_version["languages"]["zh"]["headline"].startswith("【演练信息，非真实情况】")
    assert drill_notice["public_url"] is None
    desk.publish(live_notice["id"])
    desk.publish(drill_notice["id"])
    desk.run()  # deliveries go out

    page = desk.page()
    assert "G部分列车晚点" in page and "演练" not in page and "EXERCISE" not in page
    raw, atom = desk.atom()
    assert [e.id.rsplit("/", 1)[-1] for e in atom.entries] == [live_notice["id"]]
    assert drill_notice["id"].encode() not in raw
    index = desk.cap_index()
    assert len(index.entries) == 1 and live_notice["id"] in index.entries[0].id
    assert desk.cap(live_notice["id"]) is not None
    for path in (f"/notices/{drill_notice['id']}", f"/notices/{drill_notice['id']}.cap"):
        assert desk.client.get(path).status_code == 404
    assert [e.id for e in desk.gtfs().entity] == [live_notice["id"]]

    # Public channels got the live notice only; the drill went to the drill channel.
    hooks = [r for r in receiver.received if r.path == "/ok/public"]
    assert len(hooks) == 1 and "G部分列车晚点" in hooks[0].body["message"]
    assert "演练" not in hooks[0].body["message"]
    with seeded.reading() as session:
        deliveries = list(session.scalars(select(Delivery).where(Delivery.purpose == "notice")))
        inbox = list(session.scalars(select(InboxMessage)))
    by_incident = {d.incident_id: d for d in deliveries}
    assert by_incident[live].address == receiver.url("/ok/public")
    assert by_incident[drill].address == "inbox://drill-notices"
    assert all(d.status == "delivered" for d in deliveries)
    (drill_message,) = [m for m in inbox if m.address == "inbox://drill-notices"]
    assert "演练" in drill_message.body

    # Staff can still read the drill's CAP: status Exercise, no public link.
    exercise = desk.cap(drill_notice["id"], api=True)
    assert cap_value(exercise, "status") == ["Exercise"]
    assert cap_value(exercise, "info/web") == []


def test_markup_is_escaped_on_the_page_and_in_every_feed(desk: Desk) -> None:
    incident_id = desk.declare()
    notice_id = desk.draft(
        incident_id,
        f"G线晚点{SCRIPT}",
        f"Delays <b>on</b> G & more {SCRIPT}",
        stations=["<img src=x onerror=alert(1)>"],
    )
    desk.publish(notice_id)
    for path in ("/notices", f"/notices/{notice_id}"):
        html = desk.page(path)
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>on" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        assert "&lt;b&gt;on&lt;/b&gt;" in html and "&amp; more" in html
    raw, atom = desk.atom()
    assert b"<script>" not in raw and b"&lt;script&gt;" in raw
    (entry,) = atom.entries
    assert "G线晚点" in entry.title
    alert = desk.cap(notice_id)  # schema-valid despite the markup
    assert cap_value(alert, "info/headline")[0] == f"G线晚点{SCRIPT}"
    cap_raw = desk.client.get(f"/notices/{notice_id}.cap").content
    assert b"<script>" not in cap_raw and b"<img" not in cap_raw
    index_raw = desk.client.get("/notices.cap").content
    assert b"<script>" not in index_raw
    (entity,) = desk.gtfs().entity
    # Protobuf carries the text as given: plain text, nothing is interpreted.
    assert translations(entity.alert.header_text)["en"] == f"Delays <b>on</b> G & more {SCRIPT}"


def test_a_100_kb_body_is_refused_naming_the_field(desk: Desk, seeded: Database) -> None:
    incident_id = desk.declare()
    body = {
        "languages": {
            "zh": {"headline": "G线晚点", "body": "列车晚点。"},
            "en": {"headline": "Delays", "body": "x" * 100_000},
        }
    }
    response = desk.client.post(
        f"/api/incidents/{incident_id}/notices", json=body, headers=desk.headers
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["errors"][0]["field"] == "languages.en.body"
    assert "at most 4000 characters" in problem["errors"][0]["message"]
    with seeded.reading() as session:
        assert session.scalar(select(func.count()).select_from(Notice)) == 0
        assert session.scalar(select(func.count()).select_from(NoticeVersion)) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"languages": {"en": {"headline": "x", "body": "y"}}}, "languages.zh"),
        ({"languages": {"zh": {"headline": "", "body": "y"}}}, "languages.zh.headline"),
        ({"languages": {"zh": {"headline": "x", "body": "y"}, "fr": {}}}, "languages.fr"),
        ({"languages": {"zh": {"headline": "x" * 201, "body": "y"}}}, "languages.zh.headline"),
        ({"template": "no-such-template"}, "template"),
        ({}, "languages"),
        ({"template": "notice-initial", "cause": "ALIENS"}, "cause"),
        ({"template": "notice-initial", "lines": "G"}, "lines"),
        ({"template": "notice-initial", "impact_start": "yesterday"}, "impact_start"),
        ({"template": "notice-initial", "colour": "red"}, "colour"),
    ],
)
def test_bad_drafts_get_a_field_error(desk: Desk, body: dict[str, object], field: str) -> None:
    incident_id = desk.declare()
    response = desk.client.post(
        f"/api/incidents/{incident_id}/notices", json=body, headers=desk.headers
    )
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}


def test_an_all_clear_of_an_unpublished_notice_is_a_conflict(desk: Desk) -> None:
    incident_id = desk.declare()
    notice_id = desk.draft(incident_id, "G线晚点", "Delays on line G")
    response = desk.client.post(
        f"/api/notices/{notice_id}/versions",
        json={"kind": "all_clear", "template": "notice-all-clear"},
        headers=desk.headers,
    )
    assert response.status_code == 409
    bad_kind = desk.client.post(
        f"/api/notices/{notice_id}/versions",
        json={"kind": "retract", "template": "notice-update"},
        headers=desk.headers,
    )
    assert bad_kind.status_code == 422
