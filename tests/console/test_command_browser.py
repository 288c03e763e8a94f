"""Command support in a real browser (#10): roles and tasks on the incident page, the
situation report, and taking over the shift on the handover page."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import LiveServer, browser_skip
from tests.console.test_browser import declare_by_api, shoot, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip() is not None, reason=browser_skip() or ""),
]


def test_a_duty_manager_gives_a_task_finishes_it_and_takes_over_the_shift(
    live_server: LiveServer, browser_page: Any
) -> None:
    page = browser_page
    incident = declare_by_api(live_server, "G线晚点 command test")
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/incidents/{incident}")
    roles = page.locator("#roles")
    roles.wait_for()
    assert "现场指挥" in roles.inner_text()

    page.click("#command summary:has-text('布置任务')")
    page.fill("#f-task-title", "联系路局调度 Call the bureau")
    page.select_option("#f-task-owner", "department:coordination")
    page.fill("#f-task-due", "20")
    page.click("#give-task")
    row = page.locator("#tasks tr", has_text="Call the bureau")
    row.wait_for()
    shoot(page, "command-task-given")
    row.locator("button:has-text('完成')").click()
    page.locator("#tasks tr", has_text="Call the bureau").locator(".st-done").wait_for()

    page.click("#sitrep-link")  # a print view, in the same tab
    page.wait_for_url(f"{live_server.url}/incidents/{incident}/sitrep")
    assert "情况报告" in page.inner_text("h1")

    page.goto(f"{live_server.url}/handover")
    page.locator(f"#handover-{incident}").wait_for()
    page.fill("#f-outgoing", "zhou.min")
    page.click("#take-over")
    page.locator("#handover-history", has_text="zhou.min").wait_for()
    shoot(page, "command-handover")
