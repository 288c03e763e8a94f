"""Command on the console (over HTTP): roles and tasks on the incident page, overdue tasks on
the dashboard, the print views, and the handover page."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from incident.models import Task
from tests.command.conftest import Desk, console_login


def form(token: str, **fields: str) -> dict[str, str]:
    return {"csrf": token, **fields}


def test_the_incident_page_shows_roles_and_tasks_and_takes_changes(
    desk: Desk, console_user: Any
) -> None:
    incident = desk.declare()
    desk.worker.drain()
    name = console_user("duty_manager")
    token = console_login(desk.client, name, name)
    page = desk.client.get(f"/incidents/{incident}")
    assert page.status_code == 200
    assert 'id="role-commander"' in page.text and "王建国" in page.text
    assert f'href="/incidents/{incident}/sitrep"' in page.text
    assert "Publish the hotline script" in page.text or "发布热线应答口径" in page.text

    moved = desk.client.post(
        f"/incidents/{incident}/roles",
        data=form(token, role="commander", person="sun.hao"),
        follow_redirects=False,
    )
    assert moved.status_code == 303
    given = desk.client.post(
        f"/incidents/{incident}/tasks",
        data=form(token, title="Call the bureau", owner="person:zhou.min", due_minutes="5"),
        follow_redirects=False,
    )
    assert given.status_code == 303
    with desk.db.reading() as session:
        task = session.scalars(select(Task).where(Task.person_id == "zhou.min")).one()
    page = desk.client.get(f"/incidents/{incident}").text
    assert re.search(r'id="role-commander".*?孙浩', page, re.S)
    assert f'id="task-{task.id}"' in page

    desk.advance(minutes=5)  # the task is overdue: on the dashboard
    board = desk.client.get("/parts/dashboard").text
    assert 'id="overdue-tasks"' in board and "Call the bureau" in board
    assert re.search(r'id="count-overdue-tasks">\s*1\s*<', board)

    done = desk.client.post(f"/tasks/{task.id}", data=form(token, status="done"))
    assert done.status_code == 200
    with desk.db.reading() as session:
        assert session.get(Task, task.id).done_by == name  # type: ignore[union-attr]
    assert "Call the bureau" not in desk.client.get("/parts/dashboard").text

    sitrep = desk.client.get(f"/incidents/{incident}/sitrep")
    assert sitrep.status_code == 200 and "Situation report" in sitrep.text
    assert "Content-Security-Policy" in sitrep.headers
    tree = desk.client.get("/playbooks/network-outage/calltree")
    assert tree.status_code == 200 and "inbox://feng.yu" in tree.text


def test_a_viewer_sees_the_call_tree_masked_and_cannot_change_tasks(
    desk: Desk, console_user: Any
) -> None:
    incident = desk.declare()
    desk.worker.drain()
    name = console_user("viewer")
    token = console_login(desk.client, name, name)
    tree = desk.client.get("/playbooks/network-outage/calltree").text
    assert "inbox://feng.yu" not in tree and "masked" in tree
    page = desk.client.get(f"/incidents/{incident}").text
    assert 'id="role-form"' not in page and 'id="task-form"' not in page
    with desk.db.reading() as session:
        task = session.scalars(select(Task).where(Task.incident_id == incident)).first()
    assert task is not None
    refused = desk.client.post(f"/tasks/{task.id}", data=form(token, status="done"))
    assert refused.status_code == 403


def test_the_handover_page_lists_what_is_open_and_records_the_take_over(
    desk: Desk, console_user: Any
) -> None:
    incident = desk.declare()
    desk.worker.drain()
    name = console_user("duty_manager")
    token = console_login(desk.client, name, name)
    page = desk.client.get("/handover")
    assert page.status_code == 200
    assert f'id="handover-{incident}"' in page.text
    assert re.search(r'id="handover-tasks">\s*2\s*<', page.text)
    taken = desk.client.post(
        "/handover",
        data=form(token, outgoing="zhou.min", note="quiet night"),
        follow_redirects=False,
    )
    assert taken.status_code == 303
    history = desk.client.get("/handover").text
    assert "zhou.min" in history and f"<b>{name}</b>" in history and "quiet night" in history
    recorded = desk.get("/api/handovers")["items"]
    assert [h["incoming"] for h in recorded] == [name]
