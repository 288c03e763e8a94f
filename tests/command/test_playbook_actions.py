"""The playbook's command parts are checked like every other part: roles and the
``authority_report`` action, with file:line problems."""

from __future__ import annotations

import pytest

from incident.errors import PlaybookError
from incident.playbook import RosterRefs, parse_playbook_text

HEAD = """id: t
version: 1
title: {zh: 测, en: T}
kind: mass_delay
"""
REFS = RosterRefs(frozenset({"it", "inquiry"}), frozenset({"duty_director"}), frozenset({"p1"}))


def problems(text: str) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook_text(HEAD + text, "t.yaml", REFS)
    return [str(p) for p in caught.value.problems]


def test_roles_and_authority_reports_are_read() -> None:
    playbook = parse_playbook_text(
        HEAD
        + """roles:
  operations: {department: it}
  commander: {person: p1}
stages:
  - id: a
    when: {every: 2h}
    actions:
      - authority_report: {due: 30m}
      - authority_report: {}
""",
        "t.yaml",
        REFS,
    )
    assert playbook.roles == {"operations": {"department": "it"}, "commander": {"person": "p1"}}
    due = [a.params["due"] for a in playbook.stages[0].actions]
    assert [d.total_seconds() if d else None for d in due] == [1800, None]
    assert playbook.to_summary()["roles"]["operations"] == {"department": "it"}


def test_bad_roles_and_report_actions_are_reported_at_their_lines() -> None:
    found = problems(
        """roles:
  operations: {department: itx}
  planing: {department: it}
  liaison: {persons: p1}
  commander: duty_director
stages:
  - id: a
    when: declared
    actions:
      - authority_report: {due: soon}
      - authority_report: {when: 1h}
"""
    )
    assert found == [
        "t.yaml:6: unknown department 'itx' (did you mean 'it'?); the roster has inquiry, it",
        "t.yaml:7: unknown key 'planing' in roles (did you mean 'planning'?)",
        "t.yaml:8: role 'liaison': unknown key 'persons' (did you mean 'person'?); "
        "use department, role, person",
        "t.yaml:9: role 'commander' is filled by one of department, role, person",
        "t.yaml:14: stage 'a' authority_report due: 'soon' is not a duration; "
        "write it like 90s, 10m, 1h30m or 2d",
        "t.yaml:15: unknown key 'when' in stage 'a' authority_report",
    ]


def test_a_task_action_is_checked_too() -> None:
    found = problems(
        """stages:
  - id: a
    when: declared
    actions:
      - task: {department: nowhere, title: {zh: 查, en: Check}, due: 10 minutes}
"""
    )
    assert any(p.startswith("t.yaml:9: unknown department 'nowhere'") for p in found)
    assert any(p.startswith("t.yaml:9: stage 'a' task due:") for p in found)
