"""The console over HTTP (no browser): sign-in, CSRF, throttling, roles, forms and their
errors. These run on both databases."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from incident import paging
from incident.db import Database
from incident.models import Delivery, DrillSchedule, Incident, Notice, Page
from incident.web.console import dashboard
from incident.web.console.labels import message
from incident.web.console.pages import local_path
from incident.web.console.throttle import LoginThrottle, delay_after
from incident.worker import Worker
from tests.console.conftest import console_login, csrf_of
from tests.factories import count_rows, declare

MakeUser = Callable[..., str]
FORM = {
    "title": "Line G signal fault",
    "severity": "III",
    "mode": "live",
    "facts.line": "G",
    "facts.trains_affected": "40",
    "facts.expected_delay_min": "90",
}


def signed_in(
    client: TestClient, console_user: MakeUser, role: str = "duty_manager", **kw: Any
) -> str:
    name = console_user(role, **kw)
    return console_login(client, name, name)


def error_ids(html: str) -> set[str]:
    return set(re.findall(r'id="error-([^"]+)"', html))


@pytest.mark.parametrize(
    "path",
    ["/", "/incidents", "/declare", "/declare/mass-delay", "/roster", "/playbooks", "/drills"],
)
def test_every_console_page_sends_a_visitor_to_the_login(client: TestClient, path: str) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


def test_a_polled_part_answers_401_rather_than_a_login_page(client: TestClient) -> None:
    assert client.get("/parts/dashboard").status_code == 401
    assert client.get("/incidents/inc_x/parts/board").status_code == 401


def test_the_login_cookie_is_signed_httponly_and_lax_and_logout_ends_it(
    client: TestClient, console_user: MakeUser
) -> None:
    name = console_user("duty_manager")
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"csrf": token, "name": name, "password": name, "next": "/roster"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/roster"
    cookie = answer.headers["set-cookie"].lower()
    assert "incident_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    page = client.get("/")
    assert page.status_code == 200 and name in page.text
    assert "Content-Security-Policy" in page.headers and page.headers["cache-control"] == "no-store"
    client.post("/logout", data={"csrf": csrf_of(page.text)})
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_wrong_password_is_refused_and_an_unknown_name_looks_the_same(
    client: TestClient, console_user: MakeUser
) -> None:
    name = console_user("duty_manager")
    client.app.state.login_throttle = LoginThrottle(sleep=_no_sleep([]))  # type: ignore[attr-defined]
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"csrf": token, "name": name, "password": "nope"})
    unknown = client.post("/login", data={"csrf": token, "name": "nobody", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert 'id="login-failed"' in wrong.text and 'id="login-failed"' in unknown.text
    empty = client.post("/login", data={"csrf": token, "name": "", "password": ""})
    assert empty.status_code == 422 and error_ids(empty.text) == {"name", "password"}


def _no_sleep(slept: list[float]) -> Callable[[float], Any]:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return sleep


def test_failed_logins_slow_down_the_next_attempts_but_never_lock_out(
    client: TestClient, console_user: MakeUser
) -> None:
    assert [delay_after(n) for n in range(7)] == [0, 1, 2, 4, 8, 10, 10]
    name = console_user("duty_manager")
    slept: list[float] = []
    client.app.state.login_throttle = LoginThrottle(sleep=_no_sleep(slept))  # type: ignore[attr-defined]
    token = csrf_of(client.get("/login").text)
    for _ in range(3):
        client.post("/login", data={"csrf": token, "name": name, "password": "nope"})
    answer = client.post(
        "/login", data={"csrf": token, "name": name, "password": name}, follow_redirects=False
    )
    assert slept == [1, 2, 4]  # the first attempt waits nothing; no attempt is refused
    assert answer.status_code == 303


def test_the_throttle_counts_per_name_and_per_address_and_forgets() -> None:
    now = [0.0]
    throttle = LoginThrottle(monotonic=lambda: now[0])
    throttle.failed(throttle.keys("Duty", "10.0.0.1"))
    throttle.failed(throttle.keys("duty", "10.0.0.2"))
    assert throttle.delay(throttle.keys("DUTY", "10.0.0.9")) == 2  # two failures for the name
    assert throttle.delay(throttle.keys("other", "10.0.0.1")) == 1  # one for the address
    now[0] += 16 * 60
    assert throttle.delay(throttle.keys("duty", "10.0.0.1")) == 0


def test_a_form_without_this_sessions_csrf_token_is_refused(
    client: TestClient, console_user: MakeUser, seeded: Database
) -> None:
    signed_in(client, console_user)
    form = {**FORM, "intent": "declare"}
    missing = client.post("/declare/mass-delay", data=form)
    wrong = client.post("/declare/mass-delay", data={**form, "csrf": "forged"})
    assert missing.status_code == wrong.status_code == 403
    assert 'id="error-page"' in missing.text
    assert count_rows(seeded, Incident) == 0


def test_bad_declarations_show_each_error_by_its_field_and_write_nothing(
    client: TestClient, console_user: MakeUser, seeded: Database
) -> None:
    token = signed_in(client, console_user)
    form = {
        **FORM,
        "csrf": token,
        "intent": "declare",
        "title": "",
        "severity": "V",
        "facts.line": "",
        "facts.trains_affected": "0",
        "facts.expected_delay_min": "soon",
        "facts.stopped_since": "yesterday",
    }
    answer = client.post("/declare/mass-delay", data=form)
    assert answer.status_code == 422
    assert error_ids(answer.text) == {
        "title",
        "severity",
        "facts.line",
        "facts.trains_affected",
        "facts.expected_delay_min",
        "facts.stopped_since",
    }
    assert 'value="soon"' in answer.text  # what was typed is kept
    assert count_rows(seeded, Incident) == 0


def test_preview_shows_what_would_happen_and_declares_nothing(
    client: TestClient, console_user: MakeUser, seeded: Database
) -> None:
    token = signed_in(client, console_user)
    client.cookies.set("incident_lang", "en")
    answer = client.post("/declare/mass-delay", data={**FORM, "csrf": token, "intent": "preview"})
    assert answer.status_code == 200
    simulation = answer.text[answer.text.index('id="simulation"') :]
    assert "Activate the plan" in simulation and "Page Inquiry section" in simulation
    assert "then every 20m until resolved" in simulation
    assert count_rows(seeded, Incident) == 0


def test_the_same_form_sent_twice_declares_one_incident(
    client: TestClient, console_user: MakeUser, seeded: Database
) -> None:
    token = signed_in(client, console_user)
    form = {**FORM, "csrf": token, "intent": "declare", "form_key": "key-1"}
    first = client.post("/declare/mass-delay", data=form, follow_redirects=False)
    second = client.post("/declare/mass-delay", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert count_rows(seeded, Incident) == 1
    changed = client.post("/declare/mass-delay", data={**form, "severity": "I"})
    assert changed.status_code == 422 and count_rows(seeded, Incident) == 1


def test_a_viewer_reads_but_cannot_act_and_sees_contacts_masked(
    client: TestClient, console_user: MakeUser, seeded: Database, catalog: Any, clock: Any
) -> None:
    incident_id = declare(seeded, catalog, clock)
    token = signed_in(client, console_user, "viewer")
    assert client.get(f"/incidents/{incident_id}").status_code == 200
    assert client.get("/declare").status_code == 403
    fire = client.post(
        f"/incidents/{incident_id}/stages/situation-report/fire", data={"csrf": token}
    )
    assert fire.status_code == 403
    roster = client.get("/roster").text
    assert "inbox://zhang.wei" not in roster and "inbox://z***ei" in roster
    assert "/test" not in roster


def test_bad_input_never_breaks_a_page(
    client: TestClient, console_user: MakeUser, seeded: Database, catalog: Any, clock: Any
) -> None:
    incident_id = declare(seeded, catalog, clock)
    token = signed_in(client, console_user)
    base = f"/incidents/{incident_id}"
    posts = [
        (f"{base}/severity", {"severity": "VI"}),
        (f"{base}/facts", {"facts.trains_affected": "many", "facts.stopped_since": "x"}),
        (f"{base}/status", {"status": "exploded"}),
        (f"{base}/status", {"status": "closed"}),
        (f"{base}/stages/no-such-stage/fire", {}),
        (f"{base}/stages/activate/fire", {}),
        (f"{base}/pages/pg_missing/ack", {}),
        (f"{base}/notices", {"template": "no-such-template"}),
        (f"{base}/notices", {"template": "", "languages.zh.headline": "x" * 5000}),
        (f"{base}/notices/ntc_missing/publish", {}),
        (f"{base}/notices/ntc_missing/versions", {"kind": "bogus"}),
        ("/incidents/inc_missing/severity", {"severity": "I"}),
        ("/declare/no-such-playbook", {"title": "x"}),
        ("/roster/people/nobody/test", {}),
        ("/drills/inc_missing/evaluations", {}),
        (f"/drills/{incident_id}/evaluations", {"ratings.0.rating": "P"}),
    ]
    for path, form in posts:
        answer = client.post(path, data={**form, "csrf": token})
        assert answer.status_code < 500, (path, answer.status_code)
        assert answer.headers["content-type"].startswith("text/html"), path
    for path in [f"{base}/parts/nothing", "/incidents/inc_missing", "/playbooks/nope", "/drills/x"]:
        answer = client.get(path)
        assert 400 <= answer.status_code < 500 and 'id="error-page"' in answer.text, path
    as_json = client.post(
        f"{base}/severity",
        content=b'{"severity": "I"}',
        headers={"content-type": "application/json"},
    )
    assert as_json.status_code == 415
    huge = client.post(f"{base}/facts", data={"csrf": token, "facts.line": "x" * 300_000})
    assert huge.status_code == 413


def test_an_unexpected_error_shows_a_friendly_page(
    client: TestClient, console_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_in(client, console_user)

    def broken(**_: Any) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(dashboard, "dashboard", broken)
    answer = client.get("/")
    assert answer.status_code == 500
    assert "database on fire" not in answer.text and "Traceback" not in answer.text
    assert 'id="error-page"' in answer.text


def test_changing_facts_and_severity_from_the_incident_page(
    client: TestClient, console_user: MakeUser, seeded: Database, catalog: Any, clock: Any
) -> None:
    incident_id = declare(seeded, catalog, clock)
    token = signed_in(client, console_user)
    bad = client.post(
        f"/incidents/{incident_id}/facts",
        data={
            "csrf": token,
            "facts.line": "G",
            "facts.trains_affected": "-3",
            "facts.expected_delay_min": "90",
        },
    )
    assert bad.status_code == 422 and error_ids(bad.text) == {"facts.trains_affected"}
    good = client.post(
        f"/incidents/{incident_id}/facts",
        data={
            "csrf": token,
            "facts.line": "G",
            "facts.trains_affected": "55",
            "facts.expected_delay_min": "90",
            "facts.station": "Nanjing",
        },
        follow_redirects=False,
    )
    assert good.status_code == 303
    raised = client.post(
        f"/incidents/{incident_id}/severity", data={"csrf": token, "severity": "II"}
    )
    assert raised.status_code == 200 and "已调整" in raised.text
    with seeded.reading() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        assert incident.facts["trains_affected"] == 55 and incident.facts["station"] == "Nanjing"
        assert incident.severity == "II"


def test_a_duty_manager_acknowledges_a_page_from_the_board(
    client: TestClient,
    console_user: MakeUser,
    seeded: Database,
    catalog: Any,
    clock: Any,
    worker: Worker,
) -> None:
    incident_id = declare(seeded, catalog, clock)
    worker.drain()
    token = signed_in(client, console_user)
    board = client.get(f"/incidents/{incident_id}/parts/board").text
    page_id = re.findall(r'id="page-(pg_[^"]+)"', board)[0]
    answer = client.post(f"/incidents/{incident_id}/pages/{page_id}/ack", data={"csrf": token})
    assert answer.status_code == 200
    with seeded.reading() as session:
        page = paging.get_page(page_id, session=session)
        assert page.status == "acked" and page.acked_via == "console"
    board = client.get(f"/incidents/{incident_id}/parts/board").text
    assert f'id="page-{page_id}" data-status="acked"' in board


def test_a_notice_is_drafted_checked_and_published_from_the_console(
    client: TestClient, console_user: MakeUser, seeded: Database, catalog: Any, clock: Any
) -> None:
    incident_id = declare(seeded, catalog, clock)
    token = signed_in(client, console_user)
    base = f"/incidents/{incident_id}/notices"
    empty = client.post(base, data={"csrf": token, "template": "", "languages.en.headline": "Hi"})
    assert empty.status_code == 422
    assert "languages.zh.headline" in error_ids(empty.text)
    assert count_rows(seeded, Notice) == 0  # type: ignore[arg-type]
    drafted = client.post(base, data={"csrf": token, "template": "notice-initial"})
    assert drafted.status_code == 200 and 'id="preview-zh"' in drafted.text
    notice_id = re.findall(r"/notices/(ntc_[a-z0-9]+)/publish", drafted.text)[0]
    assert client.get("/notices").text.count(notice_id) == 0
    published = client.post(f"{base}/{notice_id}/publish", data={"csrf": token})
    assert "第1版已发布" in published.text
    assert notice_id in client.get("/notices").text
    again = client.post(f"{base}/{notice_id}/publish", data={"csrf": token})
    assert again.status_code == 200 and 'class="flash error"' in again.text


def test_test_contacts_queues_one_message_per_contact(
    client: TestClient, console_user: MakeUser, seeded: Database
) -> None:
    token = signed_in(client, console_user)
    answer = client.post("/roster/people/li.na/test", data={"csrf": token})
    assert answer.status_code == 200
    with seeded.reading() as session:
        queued = session.scalars(select(Delivery).where(Delivery.purpose == "test")).all()
    assert [d.address for d in queued] == ["inbox://li.na", "inbox://li.na/backup"]
    assert all(d.status == "queued" for d in queued)


def test_the_language_is_remembered_and_links_stay_on_this_site(client: TestClient) -> None:
    answer = client.get("/lang/en?next=/login", follow_redirects=False)
    assert answer.headers["location"] == "/login"
    assert "incident_lang=en" in answer.headers["set-cookie"]
    assert "Sign in to the console" in client.get("/login").text
    client.get("/lang/zh")
    assert "登录应急指挥台" in client.get("/login").text
    for target in ("//evil.example/x", "https://evil.example", "/\\evil", "javascript:alert(1)"):
        assert local_path(target) == "/"
    assert local_path("/incidents?status=active") == "/incidents?status=active"


def test_field_messages_are_shown_in_chinese_when_known() -> None:
    assert message("trains_affected must be at least 1, not '0'", "zh") == "不能小于 1"
    assert message("line is required", "zh") == "必填"
    assert message("something new", "zh") == "something new"
    assert message("line is required", "en") == "line is required"


def test_an_evaluator_rates_a_drill_and_errors_land_on_their_rows(
    client: TestClient, console_user: MakeUser, seeded: Database, catalog: Any, clock: Any
) -> None:
    incident_id = declare(seeded, catalog, clock, mode="drill")
    token = signed_in(client, console_user, "evaluator")
    url = f"/drills/{incident_id}/evaluations"
    bad = client.post(
        url,
        data={
            "csrf": token,
            "ratings.2.task": "",
            "ratings.2.rating": "P",
            "corrective_actions.1.title": "Fix",
            "corrective_actions.1.due_at": "soon",
        },
    )
    assert bad.status_code == 422
    assert error_ids(bad.text) == {
        "ratings.2.task",
        "corrective_actions.1.owner",
        "corrective_actions.1.due_at",
    }
    good = client.post(
        url,
        data={
            "csrf": token,
            "ratings.0.task": "Activate",
            "ratings.0.rating": "S",
            "corrective_actions.0.title": "Write the template",
            "corrective_actions.0.owner": "li.na",
            "corrective_actions.0.due_at": "2026-12-01T10:00",
        },
    )
    assert good.status_code == 200 and "Write the template" in good.text
    assert client.get(f"/drills/{declare(seeded, catalog, clock)}").status_code == 404


def test_pages_of_a_resolved_incident_offer_no_acknowledge_button(
    client: TestClient,
    console_user: MakeUser,
    seeded: Database,
    catalog: Any,
    clock: Any,
    worker: Worker,
) -> None:
    incident_id = declare(seeded, catalog, clock)
    worker.drain()
    token = signed_in(client, console_user)
    client.post(f"/incidents/{incident_id}/status", data={"csrf": token, "status": "resolved"})
    board = client.get(f"/incidents/{incident_id}/parts/board").text
    assert "/ack" not in board
    with seeded.reading() as session:
        assert session.scalars(select(Page).where(Page.incident_id == incident_id)).first()


def test_passengers_and_a_call_back_are_recorded_from_the_incident_page(
    client: TestClient, console_user: MakeUser, seeded: Database, catalog: Any, clock: Any
) -> None:
    incident_id = declare(seeded, catalog, clock)
    token = signed_in(client, console_user)
    base = f"/incidents/{incident_id}"
    bad = client.post(f"{base}/passenger-groups", data={"csrf": token, "group.count": "x"})
    assert bad.status_code == 422 and error_ids(bad.text) == {"group.train", "group.count"}
    group = client.post(
        f"{base}/passenger-groups",
        data={
            "csrf": token,
            "group.train": "G1234",
            "group.count": "300",
            "group.needs.water": "open",
            "group.vulnerable.elderly": "12",
        },
    )
    assert group.status_code == 200 and "G1234" in group.text
    with seeded.reading() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.facts["passengers_stranded"] == 300
    call = client.post(
        f"{base}/inquiries",
        data={
            "csrf": token,
            "inquiry.phone": "13812345678",
            "inquiry.question": "When?",
            "inquiry.callback_minutes": "30",
        },
    )
    assert call.status_code == 200
    panel = client.get(f"{base}/parts/passengers").text
    inquiry_id = re.findall(r'id="callback-(inq_[^"]+)"', panel)[0]
    done = client.post(
        f"{base}/inquiries/{inquiry_id}/done", data={"csrf": token, "outcome": "Called, 30 min"}
    )
    assert done.status_code == 200
    assert "已回访" in client.get(f"{base}/parts/passengers").text


def test_a_viewer_sees_a_callers_phone_masked(
    client: TestClient, console_user: MakeUser, seeded: Database, catalog: Any, clock: Any
) -> None:
    incident_id = declare(seeded, catalog, clock)
    duty = TestClient(client.app)
    token = signed_in(duty, console_user)
    duty.post(
        f"/incidents/{incident_id}/inquiries",
        data={
            "csrf": token,
            "inquiry.phone": "13812345678",
            "inquiry.name": "张三",
            "inquiry.question": "When?",
            "inquiry.callback_minutes": "30",
        },
    )
    signed_in(client, console_user, "viewer")
    panel = client.get(f"/incidents/{incident_id}/parts/passengers").text
    assert "138****5678" in panel and "13812345678" not in panel and "张三" not in panel
    assert "When?" not in panel


def test_a_drill_can_be_scheduled_from_the_form_and_a_bad_cron_is_shown_by_its_field(
    client: TestClient, console_user: MakeUser, seeded: Database
) -> None:
    token = signed_in(client, console_user)
    shown = client.get("/declare/mass-delay?mode=drill")
    assert 'name="cron"' in shown.text  # offered for drills
    assert 'name="cron"' not in client.get("/declare/mass-delay").text  # not for live
    form = {**FORM, "csrf": token, "intent": "declare", "mode": "drill"}
    bad = client.post("/declare/mass-delay", data={**form, "cron": "every tuesday"})
    assert bad.status_code == 422 and error_ids(bad.text) == {"cron"}
    live = client.post("/declare/mass-delay", data={**form, "mode": "live", "cron": "0 10 * * 2"})
    assert live.status_code == 422 and error_ids(live.text) == {"cron"}
    added = client.post(
        "/declare/mass-delay", data={**form, "cron": "0 10 * * 2"}, follow_redirects=False
    )
    assert added.status_code == 303 and added.headers["location"] == "/drills#schedules"
    assert count_rows(seeded, Incident) == 0  # nothing starts now
    with seeded.reading() as session:
        (schedule,) = session.scalars(select(DrillSchedule)).all()
        assert (schedule.playbook_id, schedule.cron) == ("mass-delay", "0 10 * * 2")
        assert schedule.next_run_at is not None
    assert "0 10 * * 2" in client.get("/drills").text
