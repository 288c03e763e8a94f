from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pytest
from jinja2.exceptions import SecurityError

from incident.playbook import TEMPLATE_BUILTINS, Playbook, parse_playbook_text, render_template

TEXT = """\
id: sample
version: 1
title: {zh: 样例预案, en: Sample plan}
kind: mass_delay
inputs:
  line: {type: str, required: true}
  station: {type: str}
stages:
  - id: activate
    when: declared
    actions: [{page: {roles: [duty_director], template: page}}]
templates:
  page:
    zh: "{% if is_drill %}【演练】{% endif %}【{{ severity_zh }}】{{ playbook_title }}{{ ack_url }}"
    en: "{% if is_drill %}[DRILL] {% endif %}[{{ level_colour }}]{{ playbook_title }} {{ ack_url }}"
  where:
    zh: "{{ line }}{% if station %}（{{ station }}）{% endif %}"
  only-zh:
    zh: |
      {{ line }}晚点
      自{{ declared_at | hhmm }}起，截至{{ now | datetime }}
  unsafe:
    zh: "{{ line.__class__.__mro__ }}"
"""

CONTEXT: dict[str, Any] = {
    "severity": "II",
    "mode": "live",
    "line": "G",
    "ack_url": "https://ack/1",
    "declared_at": datetime(2026, 11, 22, 2, 30, tzinfo=UTC),
    "now": "2026-11-22T03:05:00+00:00",
}


@pytest.fixture
def playbook() -> Playbook:
    return parse_playbook_text(TEXT, "sample.yaml")


def test_templates_render_in_chinese_and_english(playbook: Playbook) -> None:
    assert render_template(playbook, "page", "zh", CONTEXT) == "【重大】样例预案https://ack/1"
    assert render_template(playbook, "page", "en", CONTEXT) == "[orange]Sample plan https://ack/1"


def test_optional_inputs_left_out_are_none_and_can_be_guarded(playbook: Playbook) -> None:
    assert render_template(playbook, "where", "zh", CONTEXT) == "G"
    with_station = CONTEXT | {"station": "南京南"}
    assert render_template(playbook, "where", "zh", with_station) == "G（南京南）"


def test_drills_are_marked_from_the_mode(playbook: Playbook) -> None:
    drill = CONTEXT | {"mode": "drill"}
    assert render_template(playbook, "page", "zh", drill).startswith("【演练】")
    assert render_template(playbook, "page", "en", drill).startswith("[DRILL]")


def test_english_falls_back_to_chinese_when_missing(playbook: Playbook) -> None:
    assert render_template(playbook, "only-zh", "en", CONTEXT).startswith("G晚点")


def test_time_filters_show_times_in_the_given_zone(playbook: Playbook) -> None:
    text = render_template(playbook, "only-zh", "zh", CONTEXT, tz=ZoneInfo("Asia/Shanghai"))
    assert text == "G晚点\n自10:30起，截至2026-11-22 11:05"
    assert "02:30" in render_template(playbook, "only-zh", "zh", CONTEXT)


def test_unknown_languages_and_templates_are_refused(playbook: Playbook) -> None:
    with pytest.raises(ValueError, match="use zh or en"):
        render_template(playbook, "page", "fr", CONTEXT)
    with pytest.raises(KeyError):
        render_template(playbook, "nope", "zh", CONTEXT)


def test_a_built_in_the_caller_did_not_give_is_an_error_not_a_blank(playbook: Playbook) -> None:
    context = {key: value for key, value in CONTEXT.items() if key != "ack_url"}
    with pytest.raises(jinja2.UndefinedError):
        render_template(playbook, "page", "zh", context)


def test_templates_run_in_a_sandbox(playbook: Playbook) -> None:
    with pytest.raises(SecurityError):
        render_template(playbook, "unsafe", "zh", CONTEXT)


def test_the_built_in_names_are_the_documented_ones() -> None:
    assert {
        "incident_id",
        "title",
        "severity",
        "severity_zh",
        "level_colour",
        "playbook_title",
        "mode",
        "is_drill",
        "declared_at",
        "now",
        "ack_url",
        "person_name",
        "stage",
    } == TEMPLATE_BUILTINS
