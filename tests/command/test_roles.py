"""Incident roles: filled from the playbook and the rota at declaration, reassigned by a duty
manager with the change on the timeline and the new holder paged."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from incident import response, roster
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.command import roles
from incident.db import Database
from incident.models import Delivery
from incident.playbook import RosterRefs, parse_playbook_text
from tests.command.conftest import Desk

# 2026-11-22 10:00 in Shanghai: 王建国 is the duty director; 周婷 covers 张伟 in the inquiry
# section (an override), 徐磊, 朱燕 and 唐军 are on the day shift (demo roster).
DAY_SHIFT = {
    "commander": "wang.jianguo",
    "public_information": "zhou.ting",
    "liaison": "xu.lei",
    "operations": "zhu.yan",
    "planning": "tang.jun",
}


def held(desk: Desk, incident: str) -> dict[str, str | None]:
    items = desk.get(f"/api/incidents/{incident}/roles")["items"]
    return {r["role"]: r["person"] for r in items}


def test_declaring_fills_the_roles_from_the_rota(desk: Desk) -> None:
    incident = desk.declare()
    assert held(desk, incident) == DAY_SHIFT
    events = desk.get(f"/api/incidents/{incident}/timeline")["items"]
    filled = [e for e in events if e["kind"] == "role:filled"]
    assert [e["data"]["roles"] for e in filled] == [DAY_SHIFT]
    # At 22:00 the night shift holds the sections' roles (the duty director serves 24 h);
    # the next morning another duty director commands.
    desk.clock.advance(hours=12)
    night = desk.declare()
    assert held(desk, night) == {
        "commander": "wang.jianguo",
        "public_information": "chen.jie",
        "liaison": "ma.li",
        "operations": "hu.bin",
        "planning": "zhou.min",
    }
    desk.clock.advance(hours=12)
    assert held(desk, desk.declare())["commander"] == "liu.min"


def test_reassigning_a_role_pages_the_new_holder_and_shows_on_the_timeline(desk: Desk) -> None:
    incident = desk.declare()
    desk.worker.drain()
    before = {p["id"] for p in desk.pages(incident)}
    changed = desk.client.put(
        f"/api/incidents/{incident}/roles/commander",
        json={"person": "sun.hao", "note": "wang.jianguo is on the line to the bureau"},
        headers=desk.duty,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["person"] == "sun.hao"
    assert changed.json()["source"] == "manual"
    assert held(desk, incident)["commander"] == "sun.hao"
    (page,) = [p for p in desk.pages(incident) if p["id"] not in before]
    assert page["target"] == {"kind": "person", "id": "sun.hao"}
    desk.worker.drain()
    with desk.db.reading() as session:
        sent = session.scalars(
            select(Delivery).where(
                Delivery.address == "inbox://sun.hao", Delivery.purpose == "page"
            )
        ).all()
    assert [d.status for d in sent] == ["delivered"]
    assert "Incident commander".lower() in sent[0].body.lower() or "现场指挥" in sent[0].body
    events = desk.get(f"/api/incidents/{incident}/timeline")["items"]
    (assigned,) = [e for e in events if e["kind"] == "role:assigned"]
    assert assigned["data"]["role"] == "commander"
    assert assigned["data"]["from"] == "wang.jianguo" and assigned["data"]["to"] == "sun.hao"
    assert assigned["data"]["page"] == page["id"]
    assert assigned["actor"].startswith("duty_manager-")
    # The same person again changes nothing and pages no one.
    again = desk.client.put(
        f"/api/incidents/{incident}/roles/commander", json={"person": "sun.hao"}, headers=desk.duty
    )
    assert again.status_code == 200
    assert len(desk.pages(incident)) == len(before) + 1


def test_a_role_goes_to_an_active_person_by_a_duty_manager(desk: Desk) -> None:
    incident = desk.declare()
    path = f"/api/incidents/{incident}/roles"
    unknown = desk.client.put(f"{path}/commander", json={"person": "nobody"}, headers=desk.duty)
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert unknown.json()["errors"][0]["field"] == "person"
    extra = desk.client.put(
        f"{path}/commander", json={"person": "sun.hao", "role": "x"}, headers=desk.duty
    )
    assert extra.status_code == 422
    assert (
        desk.client.put(f"{path}/chef", json={"person": "sun.hao"}, headers=desk.duty).status_code
        == 404
    )
    staff = desk.auth("staff")
    assert (
        desk.client.put(f"{path}/liaison", json={"person": "ma.li"}, headers=staff).status_code
        == 403
    )
    assert desk.client.get(path, headers=desk.auth("viewer")).status_code == 200


ROLES_PLAYBOOK = """
id: roles-test
version: 1
title: {zh: 分工测试, en: Roles test}
kind: network_outage
roles:
  operations: {department: it}
  commander: {person: sun.hao}
stages:
  - id: activate
    when: declared
    actions:
      - task: {department: it, title: {zh: 查, en: Check}, due: 10m}
"""


def test_the_playbook_chooses_who_fills_a_role(
    seeded: Database, roster_doc: roster.RosterDoc, clock: FrozenClock
) -> None:
    refs = RosterRefs(*roster.ids_in_doc(roster_doc))
    catalog = Catalog({"roles-test": parse_playbook_text(ROLES_PLAYBOOK, "roles-test.yaml", refs)})
    with seeded.transaction() as session:
        incident = response.declare(
            session=session,
            now=clock.now(),
            catalog=catalog,
            playbook_id="roles-test",
            severity="IV",
            title="Ticketing down",
            facts={},
        )
        found = {
            r.role: (r.person_id, r.source) for r in roles.roles_of(incident.id, session=session)
        }
    assert found["operations"] == ("cheng.kai", "playbook")  # IT's day shift
    assert found["commander"] == ("sun.hao", "playbook")
    assert found["liaison"] == ("xu.lei", "rota")


def test_a_role_nobody_can_fill_is_vacant_and_the_commander_falls_back_to_a_deputy(
    seeded: Database, catalog: Catalog, clock: FrozenClock
) -> None:
    with seeded.transaction() as session:
        for person in roster.people_with_role("duty_director", session=session):
            person.roles = [r for r in person.roles if r != "duty_director"]
        session.flush()
        incident = response.declare(
            session=session,
            now=clock.now() + timedelta(minutes=1),
            catalog=catalog,
            playbook_id="mass-delay",
            severity="III",
            title="Line G",
            facts={"line": "G", "expected_delay_min": 90, "trains_affected": 40},
        )
        commander = roles.roles_of(incident.id, session=session)[0]
    assert commander.role == "commander"
    assert commander.person_id in ("liu.min", "sun.hao")  # a deputy director
