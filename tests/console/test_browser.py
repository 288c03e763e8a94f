"""The console in a real browser: a duty manager follows a whole incident on one machine.

Headless Chromium (Debian's) against a uvicorn server on loopback with the embedded worker and
the demo roster. These run in the SQLite run only, to keep the PostgreSQL run short; they skip
with the reason when Chromium is missing (``scripts/test`` installs it as root).
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from tests.console.conftest import LiveServer, artifacts_dir, browser_skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip() is not None, reason=browser_skip() or ""),
]

MASS_DELAY = {"facts.line": "G", "facts.trains_affected": "40", "facts.expected_delay_min": "90"}


def sign_in(page: Any, server: LiveServer, name: str = "duty", password: str = "duty") -> None:
    page.goto(server.url + "/")
    assert "/login" in page.url
    page.fill("#f-name", name)
    page.fill("#f-password", password)
    page.click("#sign-in")
    page.wait_for_url(server.url + "/")


def declare_by_api(server: LiveServer, title: str, severity: str = "III") -> str:
    answer = httpx.post(
        f"{server.url}/api/incidents",
        headers=server.api_headers(),
        json={
            "playbook": "mass-delay",
            "severity": severity,
            "title": title,
            "facts": {"line": "G", "trains_affected": 40, "expected_delay_min": 90},
        },
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def open_pages(server: LiveServer, incident_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/api/incidents/{incident_id}/pages", headers=server.api_headers()
    )
    return [p for p in answer.json()["items"] if p["status"] in ("pending", "sent", "escalated")]


def shoot(page: Any, name: str) -> None:
    page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)


def test_declare_a_mass_delay_and_see_acknowledgements_arrive_live(
    live_server: LiveServer, browser_page: Any
) -> None:
    page = browser_page
    started = time.monotonic()
    sign_in(page, live_server)

    page.click("#declare-link")
    page.click("#choose-mass-delay")
    page.fill("#f-title", "G线信号故障 Line G signal fault")
    page.check("input[name=severity][value=III]")
    for name, value in MASS_DELAY.items():
        page.fill(f'[name="{name}"]', value)
    page.click("#preview")
    simulation = page.locator("#simulation table.sim")
    simulation.wait_for()
    assert "启动预案" in simulation.inner_text()  # the activate stage, first
    assert page.locator("#simulation tr.stage").count() >= 4

    page.click("#declare")
    page.wait_for_url(f"{live_server.url}/incidents/inc_*")
    incident_id = page.url.rsplit("/", 1)[1]
    # The embedded worker fires the activate stage: pages appear without reloading.
    page.locator("#board-live .page-card").first.wait_for(timeout=10_000)
    page.evaluate("window.__stayed = true")

    inbox = page.context.new_page()
    inbox.goto(live_server.url + "/demo/inbox")
    link = inbox.locator(".msg a[href*='/ack/']").first
    deadline = time.monotonic() + 10
    while link.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.3)
        inbox.reload()
    shoot(inbox, "inbox")
    link.click()
    inbox.click("#ack-confirm")
    inbox.locator("#ack-done").wait_for()
    inbox.close()

    acked = page.locator("#board-live .page-card[data-status=acked]")
    acked.first.wait_for(timeout=5_000)
    assert page.evaluate("window.__stayed") is True, "the page updated without navigating"

    waiting = open_pages(live_server, incident_id)
    assert waiting, "another page still awaits acknowledgement"
    answer = httpx.post(
        f"{live_server.url}/api/pages/{waiting[0]['id']}/ack", headers=live_server.api_headers()
    )
    assert answer.status_code == 200, answer.text
    acked_at = time.monotonic()
    page.locator(f"#page-{waiting[0]['id']}[data-status=acked]").wait_for(timeout=5_000)
    assert time.monotonic() - acked_at < 5
    assert page.evaluate("window.__stayed") is True
    # The summary is polled on its own (every 3 s): wait for it to catch up.
    # (A locator, not wait_for_function: a string predicate is eval'd, which the console's
    # Content-Security-Policy refuses whenever it has to be polled.)
    page.locator("#count-acked", has_text=re.compile(r"^\s*2\s*$")).wait_for(timeout=5_000)

    shoot(page, "incident")
    page.goto(live_server.url + "/")
    page.locator(f"#active-incidents a[href='/incidents/{incident_id}']").wait_for()
    shoot(page, "dashboard")
    assert time.monotonic() - started < 30


def test_approve_a_notice_find_it_on_the_public_page_and_resolve(
    live_server: LiveServer, browser_page: Any
) -> None:
    page = browser_page
    started = time.monotonic()
    incident_id = declare_by_api(live_server, "Line G notice test", severity="II")
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/lang/en?next=/incidents/{incident_id}")
    assert page.locator("html").get_attribute("lang") == "en"

    page.click("#new-notice")
    page.select_option("#f-template", "notice-initial")
    page.click("#draft-notice")
    headline = page.locator("#preview-zh h3").inner_text()
    assert "G" in headline and page.locator("#preview-en h3").inner_text()
    page.click("#publish")
    page.locator(".flash.ok").wait_for()
    assert "Version 1 is published" in page.locator(".flash.ok").inner_text()

    public = page.context.new_page()
    public.goto(live_server.url + "/notices")
    assert headline in public.locator("main").inner_text()
    public.close()

    page.select_option("#f-kind", "update")
    page.fill('[name="languages.zh.headline"]', "G线晚点情况更新")
    page.fill('[name="languages.zh.body"]', "仍有列车晚点，请关注12306。")
    page.fill('[name="languages.en.headline"]', "Update on Line G")
    page.fill('[name="languages.en.body"]', "Trains are still late; check 12306.")
    page.click("#draft-version")
    page.click("#publish")
    page.locator(".flash.ok").wait_for()
    shoot(page, "notice")

    page.goto(f"{live_server.url}/incidents/{incident_id}")
    page.click("#resolve")
    page.click("#confirm-resolve")
    page.locator("#incident-status .st-resolved").wait_for()
    # The stand-down stage drafts the all-clear; it appears on the page without a reload.
    page.locator("#stages-live #stage-stand-down .st-fired").wait_for(timeout=10_000)
    assert time.monotonic() - started < 30


def test_bad_input_is_shown_next_to_its_field_and_nothing_is_declared(
    live_server: LiveServer, browser_page: Any
) -> None:
    page = browser_page
    sign_in(page, live_server)
    page.goto(live_server.url + "/declare/mass-delay")
    page.fill('[name="facts.trains_affected"]', "0")
    page.fill('[name="facts.stopped_since"]', "2026-11-22T10:30")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#declare")
    assert posted.value.status == 422
    assert page.locator('[id="error-title"]').is_visible()
    assert page.locator('[id="error-facts.line"]').is_visible()
    assert page.locator('[id="error-facts.trains_affected"]').inner_text() == "不能小于 1"
    assert page.locator('[id="error-facts.expected_delay_min"]').is_visible()
    # What was typed is kept.
    assert page.locator('[name="facts.trains_affected"]').input_value() == "0"
    assert page.locator('[name="facts.stopped_since"]').input_value() == "2026-11-22T10:30"
    shoot(page, "declare-errors")


def test_a_viewer_reads_without_acting_and_sees_contacts_masked(
    live_server: LiveServer, browser_page: Any
) -> None:
    page = browser_page
    page.goto(live_server.url + "/login")
    page.fill("#f-name", "viewer")
    page.fill("#f-password", "wrong")
    page.click("#sign-in")
    page.locator("#login-failed").wait_for()
    page.fill("#f-password", "viewer")
    page.click("#sign-in")
    page.wait_for_url(live_server.url + "/")
    assert page.locator("#declare-link").count() == 0
    page.goto(live_server.url + "/roster")
    people = page.locator("#people").inner_text()
    assert "inbox://zhang.wei" not in people and "***" in people
    assert page.locator("#people button").count() == 0
    page.goto(live_server.url + "/declare/mass-delay")
    assert page.locator("#error-page").is_visible()


def test_stranded_passengers_and_a_call_back_from_the_incident_page(
    live_server: LiveServer, browser_page: Any
) -> None:
    page = browser_page
    started = time.monotonic()
    incident_id = declare_by_api(live_server, "G1234 stopped near Nanjing")
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/incidents/{incident_id}")
    page.click("#passengers summary:has-text('登记滞留旅客')")
    page.fill('[name="group.train"]', "G1234")
    page.fill('[name="group.count"]', "300")
    page.check('[name="group.needs.water"]')
    page.fill('[name="group.vulnerable.elderly"]', "12")
    page.click("#save-group")
    page.locator("#passenger-groups").wait_for()
    assert page.locator("#stranded-count").inner_text() == "300"
    assert page.locator("#fact-passengers_stranded").inner_text() == "300"

    page.click("#passengers summary:has-text('记录旅客来电')")
    page.fill('[name="inquiry.phone"]', "13812345678")
    page.fill('[name="inquiry.question"]', "G1234 什么时候开？")
    page.fill('[name="inquiry.callback_minutes"]', "30")
    page.click("#save-inquiry")
    row = page.locator("#callbacks tbody tr").first
    row.wait_for()
    assert "13812345678" in row.inner_text()  # a duty manager sees the number to call
    row.locator("summary").click()
    row.locator('[name="outcome"]').fill("已告知预计30分钟后发车")
    row.locator("button[type=submit]").click()
    page.locator("#callbacks .st-done").wait_for()
    shoot(page, "passengers")
    assert time.monotonic() - started < 30


def test_a_drill_is_started_from_the_console_and_evaluated(
    live_server: LiveServer, browser_page: Any
) -> None:
    page = browser_page
    started = time.monotonic()
    sign_in(page, live_server)
    page.goto(live_server.url + "/drills")
    page.click("#start-drill")
    page.click("#choose-mass-delay")
    assert page.locator("input[name=mode][value=drill]").is_checked()
    page.fill("#f-title", "G线晚点演练")
    for name, value in MASS_DELAY.items():
        page.fill(f'[name="{name}"]', value)
    page.click("#declare")
    page.wait_for_url(f"{live_server.url}/incidents/inc_*")
    drill_id = page.url.rsplit("/", 1)[1]
    assert page.locator(".drill-banner").is_visible()
    page.click("#logout")

    sign_in(page, live_server, "evaluator", "evaluator")
    page.goto(f"{live_server.url}/drills")
    page.click(f"#drill-list a[href='/drills/{drill_id}']")
    assert page.locator('[name="ratings.0.task"]').input_value()  # suggested from the stages
    page.select_option('[name="ratings.0.rating"]', "S")
    page.fill('[name="improvements.0.finding"]', "首次公告晚了")
    page.fill('[name="improvements.0.root_cause"]', "没有现成模板")
    page.fill('[name="corrective_actions.0.title"]', "准备首次公告模板")
    page.select_option('[name="corrective_actions.0.owner"]', "li.na")
    page.fill('[name="corrective_actions.0.due_at"]', "2026-12-01T10:00")
    page.click("#save-evaluation")
    page.locator(".flash.ok").wait_for()
    assert "准备首次公告模板" in page.locator("#actions").inner_text()
    assert "首次公告晚了" in page.locator("#evaluations").inner_text()
    shoot(page, "drill")
    assert time.monotonic() - started < 30


def test_the_console_reads_well_in_english_on_a_tablet(
    live_server: LiveServer, chromium: Any
) -> None:
    context = chromium.new_context(viewport={"width": 820, "height": 1180}, locale="en-US")
    page = context.new_page()
    try:
        incident_id = declare_by_api(live_server, "Line K power failure", severity="I")
        sign_in(page, live_server)
        assert page.locator("html").get_attribute("lang") == "en"
        page.goto(f"{live_server.url}/incidents/{incident_id}")
        page.locator("#board-live .page-card").first.wait_for(timeout=10_000)
        shoot(page, "incident-tablet-en")
        page.goto(live_server.url + "/roster")
        assert page.locator("#departments").inner_text().count("Inquiry section") == 1
        shoot(page, "roster-en")
    finally:
        context.close()
