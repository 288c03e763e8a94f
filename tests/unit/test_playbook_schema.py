import json
from datetime import UTC, datetime
from typing import Any

import pytest

from incident.playbook import InputSpec, RosterRefs, parse_playbook_text

TEXT = """\
id: sample
version: 1
title: {zh: 样例, en: Sample}
kind: mass_delay
inputs:
  line: {type: str, required: true, title: {zh: 线路, en: Line}, choices: [G, D]}
  trains: {type: int, min: 1, max: 500}
  ratio: {type: float}
  overnight: {type: bool, default: false}
  stopped_since: {type: datetime}
  delay_min: {type: int, required: true}
targets: {first_page: 8m, notice_every: 20m}
stages:
  - id: escalate
    when: {if: "severity >= 'II' or delay_min >= 120"}
    target: 30m
    actions: [{page: {roles: [deputy_director], ack_within: 10m}}]
  - id: tick
    when: {every: 20m}
    actions: [{task: {department: inquiry, title: {zh: 更新, en: Update}, due: 1h30m}}]
  - id: done
    when: resolved
    actions: [{notice: {template: page, kind: all_clear}}]
templates:
  page: {zh: "{{ line }}", en: "{{ line }}"}
"""


@pytest.fixture
def playbook() -> Any:
    return parse_playbook_text(TEXT, "sample.yaml")


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("str", "G", "G"),
        ("int", 40, 40),
        ("int", " 40 ", 40),
        ("int", "-3", -3),
        ("float", 1, 1.0),
        ("float", "2.5", 2.5),
        ("bool", True, True),
        ("bool", "false", False),
        ("datetime", "2026-11-22T10:30:00+08:00", "2026-11-22T02:30:00+00:00"),
        ("datetime", "2026-11-22T02:30:00Z", "2026-11-22T02:30:00+00:00"),
        ("datetime", datetime(2026, 11, 22, 2, 30, tzinfo=UTC), "2026-11-22T02:30:00+00:00"),
    ],
)
def test_input_values_are_checked_and_normalised(kind: str, value: Any, expected: Any) -> None:
    assert InputSpec(kind).coerce("x", value) == expected


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("int", True, "x must be a whole number, not True"),
        ("int", 1.5, "x must be a whole number"),
        ("int", "4O", "x must be a whole number"),
        ("float", "nan", "x must be a number"),
        ("float", False, "x must be a number"),
        ("str", 3, "x must be text"),
        ("bool", "yes", "x must be true or false"),
        ("datetime", "2026-11-22T10:30:00", "x must be a date and time with an offset"),
        ("datetime", "tomorrow", "x must be a date and time with an offset"),
    ],
)
def test_wrong_input_values_are_refused_with_a_human_message(
    kind: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        InputSpec(kind).coerce("x", value)


def test_choices_and_bounds_are_enforced() -> None:
    with pytest.raises(ValueError, match="line must be one of G, D, not 'K'"):
        InputSpec("str", choices=["G", "D"]).coerce("line", "K")
    with pytest.raises(ValueError, match="trains must be at least 1, not 0"):
        InputSpec("int", min=1).coerce("trains", 0)
    with pytest.raises(ValueError, match="trains must be at most 5, not 6"):
        InputSpec("int", max=5).coerce("trains", 6)


def test_a_required_input_refuses_nothing() -> None:
    with pytest.raises(ValueError, match="line is required"):
        InputSpec("str", required=True).coerce("line", "")
    assert InputSpec("str").coerce("line", None) is None


def test_validate_facts_coerces_applies_defaults_and_lists_every_error(playbook: Any) -> None:
    facts, errors = playbook.validate_facts(
        {"line": "G", "trains": "40", "ratio": "x", "severity": "I", "colour": "red"}
    )
    assert facts == {"line": "G", "trains": 40, "overnight": False}
    assert errors == [
        ("ratio", "ratio must be a number, not 'x'"),
        ("severity", "severity is set on the incident itself, not a fact of playbook sample"),
        ("colour", "colour is unknown, not a fact of playbook sample"),
        ("delay_min", "delay_min is required"),
    ]


def test_validate_facts_partial_leaves_missing_facts_alone(playbook: Any) -> None:
    assert playbook.validate_facts({"delay_min": 90}, partial=True) == ({"delay_min": 90}, [])


def test_roster_refs_accept_any_collection_and_freeze_it() -> None:
    refs = RosterRefs(departments={"inquiry"}, roles=["duty_director"], people=frozenset())  # type: ignore[arg-type]
    assert refs.departments == frozenset({"inquiry"})
    assert isinstance(refs.roles, frozenset)


def test_the_summary_is_json_with_durations_written_as_in_the_file(playbook: Any) -> None:
    summary = playbook.to_summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["targets"] == {"first_page": "8m", "notice_every": "20m"}
    assert summary["inputs"]["line"] == {
        "type": "str",
        "required": True,
        "title": {"zh": "线路", "en": "Line"},
        "choices": ["G", "D"],
    }
    assert summary["inputs"]["overnight"]["default"] is False
    escalate, tick, done = summary["stages"]
    assert escalate["when"] == {"if": "severity >= 'II' or delay_min >= 120"}
    assert escalate["target"] == "30m"
    assert escalate["actions"][0]["params"]["ack_within"] == "10m"
    assert escalate["actions"][0]["params"]["template"] == "page"
    assert tick["when"] == {"every": "20m"}
    assert tick["actions"][0] == {
        "kind": "task",
        "params": {
            "department": "inquiry",
            "person": None,
            "title": {"zh": "更新", "en": "Update"},
            "due": "1h30m",
        },
    }
    assert done["when"] == "resolved"
    assert done["target"] is None
