import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from incident.playbook import (
    LEVELS,
    Playbook,
    RosterRefs,
    load_playbooks,
    parse_playbook_text,
    render_template,
)

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
DEMO_ROSTER = RosterRefs(
    departments=frozenset(
        {"inquiry", "complaints", "ticketing", "coordination", "operations", "it", "directorate"}
    ),
    roles=frozenset(
        {"duty_director", "director", "deputy_director", "section_head", "on_duty_agent"}
    ),
    people=frozenset(),
)
SHIPPED = [
    "equipment-failure",
    "mass-delay",
    "natural-disaster",
    "network-outage",
    "passenger-stranding",
]
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
SAMPLE_FACTS: dict[str, Any] = {
    "line": "京沪高铁",
    "station": "南京南",
    "section": "徐州东至蚌埠南",
    "train": "G12",
    "trains_affected": 40,
    "expected_delay_min": 90,
    "expected_restore_min": 45,
    "stations_affected": 12,
    "passengers_stranded": 1200,
    "stopped_since": (NOW - timedelta(minutes=45)).isoformat(),
    "system": "ticketing",
    "equipment": "power",
    "hazard": "flood",
    "on_train": True,
    "overnight": True,
}


@pytest.fixture(scope="module")
def playbooks() -> dict[str, Playbook]:
    return load_playbooks([PLAYBOOKS], DEMO_ROSTER)


def test_the_five_shipped_playbooks_load_without_problems(playbooks: dict[str, Playbook]) -> None:
    assert sorted(playbooks) == SHIPPED
    for playbook in playbooks.values():
        assert playbook.title.keys() == {"zh", "en"}
        assert Path(playbook.path).stem == playbook.id


@pytest.mark.parametrize("playbook_id", SHIPPED)
def test_each_playbook_uses_the_default_targets(
    playbooks: dict[str, Playbook], playbook_id: str
) -> None:
    targets = playbooks[playbook_id].targets
    assert targets["first_page"] == timedelta(minutes=8)
    assert targets["first_notice"] == timedelta(minutes=15)
    assert targets["notice_every"] == timedelta(minutes=20)


@pytest.mark.parametrize("playbook_id", SHIPPED)
def test_each_playbook_activates_notifies_cares_updates_and_stands_down(
    playbooks: dict[str, Playbook], playbook_id: str
) -> None:
    playbook = playbooks[playbook_id]
    activate = playbook.stage("activate")
    assert activate.when.kind == "declared"
    page = next(action for action in activate.actions if action.kind == "page")
    assert "duty_director" in page.params["roles"]
    assert page.params["ack_within"] == timedelta(minutes=5)
    assert any(action.kind == "task" for action in activate.actions)

    first_notice = playbook.stage("first-notice")
    assert first_notice.when.kind == "after" and first_notice.when.delay == timedelta(minutes=5)
    assert first_notice.actions[0].params["kind"] == "initial"

    escalate = playbook.stage("escalate").when.condition
    assert escalate is not None
    assert escalate.evaluate({"severity": "II"}, NOW)
    assert not escalate.evaluate({"severity": "IV"}, NOW)

    updates = playbook.stage("notice-update")
    assert updates.when.delay == timedelta(minutes=20)
    assert updates.actions[0].params == {"template": "notice-update", "kind": "update"}

    stand_down = playbook.stage("stand-down")
    assert stand_down.when.kind == "resolved"
    kinds = {(action.kind, action.params.get("kind")) for action in stand_down.actions}
    assert ("notice", "all_clear") in kinds
    assert any(action.params.get("paged_so_far") for action in stand_down.actions)


@pytest.mark.parametrize("playbook_id", SHIPPED)
def test_each_playbook_looks_after_passengers_at_30_and_60_minutes_stopped(
    playbooks: dict[str, Playbook], playbook_id: str
) -> None:
    playbook = playbooks[playbook_id]
    welfare = playbook.stage("welfare-check").when.condition
    refreshments = playbook.stage("refreshments").when.condition
    assert welfare is not None and refreshments is not None
    stopped = NOW - timedelta(minutes=10)
    facts = {"stopped_since": stopped.isoformat()}
    assert welfare.next_change(facts, NOW) == stopped + timedelta(minutes=30)
    assert refreshments.next_change(facts, NOW) == stopped + timedelta(minutes=60)
    assert playbook.stage("refreshments").actions[0].kind == "passenger_message"
    refund = playbook.stage("refund-offer")
    assert refund.when.condition is not None
    assert refund.when.condition.evaluate({"expected_delay_min": 60}, NOW)
    assert refund.actions[0].kind == "passenger_message"


def test_mass_delay_reports_after_ten_minutes_and_escalates_from_level_ii(
    playbooks: dict[str, Playbook],
) -> None:
    playbook = playbooks["mass-delay"]
    report = playbook.stage("situation-report")
    assert report.when.kind == "after" and report.when.delay == timedelta(minutes=10)
    escalate = playbook.stage("escalate")
    assert escalate.when.condition is not None
    fires = {
        level
        for level in LEVELS
        if escalate.when.condition.evaluate({"severity": level, "expected_delay_min": 30}, NOW)
    }
    assert fires == {"I", "II"}
    assert escalate.when.condition.evaluate({"severity": "IV", "expected_delay_min": 120}, NOW)
    assert escalate.actions[0].params["roles"] == ["deputy_director"]
    assert escalate.actions[0].params["departments"] == ["ticketing"]


@pytest.mark.parametrize("playbook_id", SHIPPED)
@pytest.mark.parametrize("mode", ["live", "drill"])
def test_every_template_renders_in_both_languages(
    playbooks: dict[str, Playbook], playbook_id: str, mode: str
) -> None:
    playbook = playbooks[playbook_id]
    facts = {name: value for name, value in SAMPLE_FACTS.items() if name in playbook.inputs}
    assert set(facts) == set(playbook.inputs)
    context = facts | {
        "incident_id": 7,
        "title": "演练",
        "severity": "II",
        "mode": mode,
        "declared_at": NOW,
        "now": NOW + timedelta(minutes=20),
        "ack_url": "https://incident.example/a/abc",
        "person_name": "王芳",
        "stage": "activate",
    }
    for name in playbook.templates:
        zh = render_template(playbook, name, "zh", context)
        en = render_template(playbook, name, "en", context)
        assert zh and en and zh != en
        assert "None" not in zh + en
        assert re.search(r"[\u4e00-\u9fff]", zh)
        assert ("演练" in zh) == (mode == "drill")
        assert ("DRILL" in en or "EXERCISE" in en) == (mode == "drill")


@pytest.mark.parametrize("playbook_id", SHIPPED)
def test_pages_fit_a_long_sms_and_carry_the_ack_link(
    playbooks: dict[str, Playbook], playbook_id: str
) -> None:
    playbook = playbooks[playbook_id]
    page_templates = {
        action.params["template"]
        for stage in playbook.stages
        for action in stage.actions
        if action.kind == "page"
    }
    for name in page_templates:
        for lang in ("zh", "en"):
            assert "{{ ack_url }}" in playbook.templates[name][lang]
            assert len(playbook.templates[name][lang]) < 400


def test_the_example_in_the_readme_is_a_valid_playbook() -> None:
    readme = (PLAYBOOKS / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    playbook = parse_playbook_text(example, "README.md", DEMO_ROSTER)
    assert playbook.id == "mass-delay"
    assert [stage.when.kind for stage in playbook.stages] == [
        "declared",
        "after",
        "if",
        "if",
        "every",
        "manual",
        "resolved",
    ]
