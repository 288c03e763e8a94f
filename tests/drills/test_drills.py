"""Drills: scheduled exactly once, measured exactly, evaluated, and never leaking."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import xmlschema
from sqlalchemy import select
from starlette.testclient import TestClient

from incident import drills, paging
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.handlers import Context
from incident.models import InboxMessage, Incident, Page, PageRecipient, Person
from incident.worker import Worker
from tests.factories import MASS_DELAY_FACTS
from tests.notices.desk import Desk
from tests.peers import HttpReceiver

Auth = Callable[..., dict[str, str]]


def facts_for(catalog: Catalog, playbook_id: str, clock: FrozenClock) -> dict[str, Any]:
    """Plausible facts for any playbook: every input filled, times two hours ago."""
    values: dict[str, Any] = {}
    for name, spec in catalog.get(playbook_id).inputs.items():
        if spec.choices:
            values[name] = spec.choices[0]
        elif spec.type == "int":
            values[name] = max(int(spec.min or 0), 90)
        elif spec.type == "float":
            values[name] = 90.0
        elif spec.type == "bool":
            values[name] = True
        elif spec.type == "datetime":
            values[name] = (clock.now() - timedelta(hours=2)).isoformat()
        else:
            values[name] = "G"
    return values


def drill_incidents(db: Database) -> list[Incident]:
    with db.reading() as session:
        return list(session.scalars(select(Incident).where(Incident.mode == "drill")))


def test_a_scheduled_drill_starts_once_when_due_with_two_workers_and_not_before(
    seeded: Database, catalog: Catalog, clock: FrozenClock, context: Context, worker: Worker
) -> None:
    with seeded.transaction() as session:
        schedule = drills.add_schedule(
            session=session,
            now=clock.now(),
            zone=context.settings.zone,
            catalog=catalog,
            playbook_id="mass-delay",
            cron="30 10 * * *",
            severity="III",
            facts=MASS_DELAY_FACTS,
            participants=["coordination"],
            actor="test",
        )
        due = schedule.next_run_at
    assert due is not None
    assert due.astimezone(context.settings.zone).strftime("%H:%M") == "10:30"
    other = Worker(seeded, context, clock, sender=worker.sender, owner="second")
    clock.set(due - timedelta(seconds=1))
    worker.drain()
    other.drain()
    assert drill_incidents(seeded) == []
    clock.set(due)
    for w in (worker, other, worker, other):
        w.run_due()
    worker.drain()
    other.drain()
    (drill,) = drill_incidents(seeded)
    assert drill.drill_schedule_id == schedule.id and drill.participants == ["coordination"]
    with seeded.reading() as session:
        again = session.get(type(schedule), schedule.id)
        assert again is not None and again.next_run_at == due + timedelta(days=1)


def test_drill_metrics_equal_the_times_pages_were_acknowledged(
    client: TestClient, auth: Auth, seeded: Database, clock: FrozenClock, worker: Worker
) -> None:
    headers = auth("evaluator")
    started = client.post(
        "/api/drills",
        headers=headers,
        json={
            "playbook": "mass-delay",
            "severity": "III",
            "facts": MASS_DELAY_FACTS,
            "title": "Quarterly drill",
        },
    )
    assert started.status_code == 201, started.text
    drill_id = started.json()["id"]
    worker.drain()
    with seeded.reading() as session:
        pages = {p.target_id: p.id for p in paging.pages_of(drill_id, session=session)}

    def ack(target: str) -> None:
        with seeded.transaction() as session:
            page = session.get(Page, pages[target])
            assert page is not None
            paging.acknowledge(
                page, person_id=None, via="api", actor="test", session=session, now=clock.now()
            )

    clock.advance(seconds=90)
    ack("coordination")
    clock.advance(seconds=60)
    ack("inquiry")
    worker.drain()
    metrics = client.get(f"/api/drills/{drill_id}/metrics", headers=headers).json()
    assert metrics["first_page_delivered"]["seconds"] == 0.0
    assert metrics["first_ack"] == {"seconds": 90.0, "target_s": 600.0, "on_time": True}
    departments = metrics["ack_by_department"]
    assert departments["coordination"]["first_ack_s"] == 90.0
    assert departments["inquiry"]["first_ack_s"] == 150.0
    assert metrics["ack_by_level"]["0"] == {"acked": 2, "median_s": 120.0, "max_s": 150.0}
    activate = next(s for s in metrics["stages"] if s["stage"] == "activate")
    assert activate == {
        "stage": "activate",
        "state": "fired",
        "fired_after_s": 0.0,
        "target_s": 480.0,
        "on_time": True,
    }
    assert metrics["escalations"] == 0


def test_an_evaluation_appears_in_the_report_and_an_overdue_action_pages_its_owner(
    client: TestClient, auth: Auth, seeded: Database, clock: FrozenClock, worker: Worker
) -> None:
    evaluator = auth("evaluator")
    drill_id = client.post(
        "/api/drills",
        headers=evaluator,
        json={"playbook": "mass-delay", "severity": "III", "facts": MASS_DELAY_FACTS},
    ).json()["id"]
    worker.drain()
    due = clock.now() + timedelta(days=7)
    bad = client.post(
        f"/api/drills/{drill_id}/evaluations",
        headers=evaluator,
        json={"ratings": [{"task": "Page the sections", "rating": "X"}]},
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"ratings.0.rating"}
    created = client.post(
        f"/api/drills/{drill_id}/evaluations",
        headers=evaluator,
        json={
            "ratings": [
                {"task": "Page the sections within 8 minutes", "rating": "P"},
                {
                    "task": "Publish the first notice within 15 minutes",
                    "rating": "M",
                    "notes": "approval took too long",
                },
            ],
            "strengths": ["Coordination acknowledged at once"],
            "improvements": [
                {
                    "finding": "The notice waited for approval",
                    "root_cause": "only one approver on shift",
                }
            ],
            "corrective_actions": [
                {
                    "title": "Name a second notice approver per shift",
                    "owner": "zhang.wei",
                    "due_at": due.isoformat(),
                    "playbook": "mass-delay",
                }
            ],
        },
    )
    assert created.status_code == 201, created.text
    (action,) = created.json()["corrective_actions"]
    markdown = client.get(f"/api/drills/{drill_id}/report?format=md", headers=evaluator).text
    assert "Publish the first notice within 15 minutes | M" in markdown
    assert "Name a second notice approver per shift | zhang.wei" in markdown
    assert "only one approver on shift" in markdown
    html = client.get(f"/api/drills/{drill_id}/report", headers=evaluator).text
    assert "Name a second notice approver per shift" in html and "<table>" in html

    clock.set(due - timedelta(seconds=1))
    worker.drain()
    assert (
        client.get("/api/corrective-actions?overdue=true", headers=evaluator).json()["items"] == []
    )
    clock.set(due + timedelta(seconds=1))
    worker.drain()
    overdue = client.get("/api/corrective-actions?overdue=true", headers=evaluator).json()
    assert [a["id"] for a in overdue["items"]] == [action["id"]]
    with seeded.reading() as session:
        owner_inbox = [
            m.body
            for m in session.scalars(
                select(InboxMessage).where(InboxMessage.address.like("inbox://zhang.wei%"))
            )
        ]
    assert any("Name a second notice approver per shift" in body for body in owner_inbox)
    done = client.patch(
        f"/api/corrective-actions/{action['id']}", headers=evaluator, json={"status": "done"}
    )
    assert done.json()["status"] == "done" and done.json()["overdue"] is False


def test_a_full_drill_of_every_playbook_touches_no_public_surface_or_non_participant(
    client: TestClient,
    auth: Auth,
    seeded: Database,
    clock: FrozenClock,
    worker: Worker,
    catalog: Catalog,
    receiver: HttpReceiver,
    cap_schema: xmlschema.XMLSchema,
) -> None:
    duty = auth("duty_manager")
    desk = Desk(client, worker, clock, duty, cap_schema)
    drill_ids = []
    for playbook_id in catalog.ids():
        started = client.post(
            "/api/drills",
            headers=duty,
            json={
                "playbook": playbook_id,
                "severity": "I",
                "participants": ["coordination"],
                "channels": ["drill-only"],
                "facts": facts_for(catalog, playbook_id, clock),
            },
        )
        assert started.status_code == 201, started.text
        drill_ids.append(started.json()["id"])
    for _ in range(9):  # three hours of the drill, every notice drafted is published
        desk.run(minutes=20)
        for drill_id in drill_ids:
            for notice in desk.notices(drill_id):
                if any(v["status"] == "draft" for v in desk.notice(notice["id"])["versions"]):
                    desk.publish(notice["id"])
    for drill_id in drill_ids:
        resolved = client.patch(
            f"/api/incidents/{drill_id}", headers=duty, json={"status": "resolved"}
        )
        assert resolved.status_code == 200
    desk.run(minutes=1)
    for drill_id in drill_ids:
        for notice in desk.notices(drill_id):
            if any(v["status"] == "draft" for v in desk.notice(notice["id"])["versions"]):
                desk.publish(notice["id"])
    desk.run()

    def surfaces() -> dict[str, int]:
        _raw, atom = desk.atom()
        return {
            "page": desk.page().count("<article "),
            "atom": len(atom.entries),
            "cap": len(desk.cap_index().entries),
            "gtfs": len(desk.gtfs().entity),
            "channels": len([r for r in receiver.received if r.path == "/ok/public"]),
        }

    assert surfaces() == {"page": 0, "atom": 0, "cap": 0, "gtfs": 0, "channels": 0}
    drill_only = [r for r in receiver.received if r.path == "/ok/drill-only"]
    assert drill_only, "the drills' notices went to their drill-only channel"
    assert all("演练" in r.body["message"] or "EXERCISE" in r.body["message"] for r in drill_only)
    with seeded.reading() as session:
        coordination = set(
            session.scalars(select(Person.id).where(Person.department_id == "coordination"))
        )
        paged = set(
            session.scalars(
                select(PageRecipient.person_id).join(Page).where(Page.incident_id.in_(drill_ids))
            )
        )
        inboxes = {
            m.address.removeprefix("inbox://").split("/")[0]
            for m in session.scalars(select(InboxMessage))
        }
    assert paged and paged <= coordination
    assert inboxes <= coordination | {"drill-notices"}

    live = desk.declare()
    desk.run(minutes=5)
    (notice,) = desk.notices(live)
    desk.publish(notice["id"])
    desk.run()
    seen = surfaces()
    assert seen["atom"] == seen["cap"] == seen["gtfs"] == seen["channels"] == 1
    assert seen["page"] >= 1
    with seeded.reading() as session:
        live_paged = set(
            session.scalars(
                select(PageRecipient.person_id).join(Page).where(Page.incident_id == live)
            )
        )
    assert live_paged - coordination, "the live incident reaches beyond the participants"


def test_bad_schedules_and_drills_are_refused_with_the_field(
    client: TestClient, auth: Auth, seeded: Database
) -> None:
    headers = auth("duty_manager")
    bad_cron = client.post(
        "/api/drill-schedules",
        headers=headers,
        json={
            "playbook": "mass-delay",
            "cron": "every tuesday",
            "severity": "III",
            "facts": MASS_DELAY_FACTS,
        },
    )
    assert bad_cron.status_code == 422
    assert [e["field"] for e in bad_cron.json()["errors"]] == ["cron"]
    bad_facts = client.post(
        "/api/drills",
        headers=headers,
        json={"playbook": "mass-delay", "severity": "III", "facts": {"line": "G"}},
    )
    assert bad_facts.status_code == 422
    viewer = client.post(
        "/api/drills",
        headers=auth("viewer"),
        json={"playbook": "mass-delay", "severity": "III", "facts": MASS_DELAY_FACTS},
    )
    assert viewer.status_code == 403
    ok = client.post(
        "/api/drill-schedules",
        headers=headers,
        json={
            "playbook": "mass-delay",
            "cron": "0 10 * * 3",
            "severity": "III",
            "facts": MASS_DELAY_FACTS,
            "participants": ["inquiry"],
        },
    )
    assert ok.status_code == 201, ok.text
    listed = client.get("/api/drill-schedules", headers=auth("viewer")).json()
    assert [s["id"] for s in listed["items"]] == [ok.json()["id"]]
    assert listed["upcoming"] and all(u["at"].endswith("+00:00") for u in listed["upcoming"])
    assert drill_incidents(seeded) == []
