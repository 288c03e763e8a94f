import hashlib
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from incident.errors import PlaybookError
from incident.playbook import RosterRefs, load_playbook, load_playbooks, parse_playbook_text

ROSTER = RosterRefs(
    departments=frozenset({"inquiry", "coordination", "ticketing"}),
    roles=frozenset({"duty_director", "deputy_director"}),
    people=frozenset({"p-wang"}),
)

# Line numbers matter: tests below point at lines of this text.
MINIMAL = """\
id: sample
version: 2
title: {zh: 样例, en: Sample}
kind: mass_delay
inputs:
  line: {type: str, required: true}
  stopped_since: {type: datetime}
  trains: {type: int}
stages:
  - id: activate
    when: declared
    actions:
      - page: {departments: [coordination], roles: [duty_director], template: activate}
templates:
  activate:
    zh: "{{ line }}晚点，请确认：{{ ack_url }}"
    en: "Delays on {{ line }}. Acknowledge: {{ ack_url }}"
"""


def problems(text: str, roster: RosterRefs | None = None) -> list[tuple[int, str]]:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook_text(textwrap.dedent(text), "broken.yaml", roster)
    assert all(problem.file == "broken.yaml" for problem in caught.value.problems)
    return [(problem.line, problem.message) for problem in caught.value.problems]


def assert_problem(found: list[tuple[int, str]], line: int, fragment: str) -> None:
    assert any(at == line and fragment in message for at, message in found), found


def with_stages(stages: str, extra: str = "") -> str:
    head = MINIMAL.split("stages:\n")[0]
    tail = "templates:\n" + MINIMAL.split("templates:\n")[1]
    return head + "stages:\n" + textwrap.dedent(stages) + tail + extra


def test_a_minimal_playbook_loads_with_its_source_and_digest() -> None:
    playbook = parse_playbook_text(MINIMAL, "sample.yaml")
    assert (playbook.id, playbook.version, playbook.kind) == ("sample", 2, "mass_delay")
    assert playbook.title == {"zh": "样例", "en": "Sample"}
    assert playbook.source == MINIMAL and playbook.path == "sample.yaml"
    assert playbook.digest == hashlib.sha256(MINIMAL.encode()).hexdigest()
    stage = playbook.stage("activate")
    assert (stage.when.kind, stage.line) == ("declared", 10)
    with pytest.raises(KeyError):
        playbook.stage("nope")


def test_page_parameters_are_complete_with_their_defaults() -> None:
    (page,) = parse_playbook_text(MINIMAL, "sample.yaml").stage("activate").actions
    assert page.kind == "page" and page.line == 13
    assert page.params == {
        "departments": ["coordination"],
        "roles": ["duty_director"],
        "people": [],
        "ack_within": timedelta(minutes=5),
        "template": "activate",
        "paged_so_far": False,
        "ask": None,
    }


def test_every_kind_of_trigger_and_action_is_read() -> None:
    text = with_stages(
        """\
        - id: notice
          when: {after: 5m}
          target: 15m
          actions: [{notice: {template: note, kind: update}}]
        - id: care
          when: {if: "minutes_since(stopped_since) >= 60"}
          actions: [{passenger_message: {template: note, offer: refreshments}}]
        - id: tick
          when: {every: 20m}
          actions:
            - task: {department: inquiry, title: {zh: 口径, en: Script}, due: 15m}
        - id: button
          when: manual
          actions: [{task: {person: p-wang, title: {zh: 看, en: Look}}}]
        - id: stand-down
          when: resolved
          actions: [{page: {paged_so_far: true, ask: {zh: 好?, en: OK?}, template: activate}}]
        """,
        "  note: {zh: 通知, en: Notice}\n",
    )
    playbook = parse_playbook_text(text, "sample.yaml", ROSTER)
    kinds = [(stage.id, stage.when.kind) for stage in playbook.stages]
    assert kinds == [
        ("notice", "after"),
        ("care", "if"),
        ("tick", "every"),
        ("button", "manual"),
        ("stand-down", "resolved"),
    ]
    assert playbook.stage("notice").target == timedelta(minutes=15)
    assert playbook.stage("notice").actions[0].params == {"template": "note", "kind": "update"}
    care = playbook.stage("care")
    assert care.when.condition is not None and care.when.condition.time_facts == {"stopped_since"}
    assert care.actions[0].params == {"template": "note", "offer": "refreshments"}
    assert playbook.stage("tick").when.delay == timedelta(minutes=20)
    assert playbook.stage("tick").actions[0].params == {
        "department": "inquiry",
        "person": None,
        "title": {"zh": "口径", "en": "Script"},
        "due": timedelta(minutes=15),
    }
    assert playbook.stage("button").actions[0].params["due"] is None
    stand_down = playbook.stage("stand-down").actions[0].params
    assert stand_down["paged_so_far"] is True and stand_down["ask"] == {"zh": "好?", "en": "OK?"}


def test_bad_yaml_is_reported_at_its_line() -> None:
    found = problems("id: x\ntitle: {zh: a, en: b\nkind: y\n")
    assert len(found) == 1
    assert found[0][0] == 3 and "bad YAML" in found[0][1]


def test_duplicate_yaml_keys_are_a_problem_at_the_second_key() -> None:
    text = MINIMAL.replace("kind: mass_delay\n", "kind: mass_delay\nversion: 3\n")
    assert problems(text) == [(5, "duplicate key 'version' (first at line 2)")]
    nested = MINIMAL.replace("    when: declared\n", "    when: declared\n    when: resolved\n")
    assert problems(nested) == [(12, "duplicate key 'when' (first at line 11)")]


def test_a_file_that_is_not_a_mapping_is_a_problem() -> None:
    assert problems("- id: x\n- id: y\n") == [
        (1, "a playbook is a mapping with id, version, title, kind and stages")
    ]
    assert problems("") == [(1, "a playbook is a mapping with id, version, title, kind and stages")]


def test_empty_values_are_reported_at_their_own_line() -> None:
    found = problems("id:\nversion:\ntitle: {zh: a, en: b}\nkind: k\nstages:\n")
    assert_problem(found, 1, "id 'None' must be lower case letters")
    assert_problem(found, 2, "version must be a whole number")
    assert_problem(found, 5, "stages must be a list with at least one stage")


def test_a_second_yaml_document_is_a_problem() -> None:
    assert problems(MINIMAL + "---\nid: other\n") == [
        (18, "bad YAML: expected a single document in the stream, but found another document")
    ]


def test_missing_top_level_keys_are_reported() -> None:
    found = problems("id: x\nversion: 1\n")
    assert_problem(found, 1, "the playbook is missing 'title', 'kind', 'stages'")


def test_unknown_keys_are_reported_with_a_suggestion() -> None:
    text = MINIMAL.replace("title: {zh", "titel: {zh").replace(
        "    when: declared", "    wen: declared"
    )
    found = problems(text)
    assert_problem(found, 3, "unknown key 'titel' in the playbook (did you mean 'title'?)")
    assert_problem(found, 11, "unknown key 'wen' in stage 'activate' (did you mean 'when'?)")


def test_a_stage_written_with_on_is_told_to_use_when() -> None:
    found = problems(MINIMAL.replace("    when: declared", "    on: declared"))
    assert_problem(found, 11, "unknown key 'on' in stage 'activate' (write 'when', not 'on')")
    assert_problem(found, 10, "stage 'activate' is missing 'when'")


def test_on_yes_and_no_are_plain_strings_in_yaml_1_2() -> None:
    text = MINIMAL.replace(
        "  trains: {type: int}", "  switch: {type: str, choices: [on, off, yes, no], default: on}"
    )
    playbook = parse_playbook_text(text, "sample.yaml")
    assert playbook.inputs["switch"].choices == ["on", "off", "yes", "no"]
    assert playbook.inputs["switch"].default == "on"


def test_bad_durations_are_reported_at_their_line() -> None:
    text = with_stages(
        """\
        - id: late
          when: {after: 10 minutes}
          target: 15
          actions: [{page: {roles: [duty_director], ack_within: 5x, template: activate}}]
        - id: loop
          when: {every: 0m}
          actions: [{page: {roles: [duty_director], template: activate}}]
        """
    )
    found = problems(text)
    assert_problem(found, 11, "stage 'late' after: '10 minutes' is not a duration")
    assert_problem(found, 12, "stage 'late' target: 15 is not a duration")
    assert_problem(found, 13, "stage 'late' page ack_within: '5x' is not a duration")
    assert_problem(found, 15, "stage 'loop' every must be longer than 0s")


def test_unknown_triggers_are_reported() -> None:
    text = with_stages(
        """\
        - id: a
          when: declare
          actions: [{page: {roles: [duty_director], template: activate}}]
        - id: b
          when: {before: 5m}
          actions: [{page: {roles: [duty_director], template: activate}}]
        """
    )
    found = problems(text)
    assert_problem(found, 11, "unknown trigger 'declare' (did you mean 'declared'?)")
    assert_problem(found, 14, "stage 'b' has an unknown trigger 'before'")


def test_a_duplicate_stage_id_is_reported_with_the_first_line() -> None:
    text = with_stages(
        """\
        - id: a
          when: declared
          actions: [{page: {roles: [duty_director], template: activate}}]
        - id: a
          when: resolved
          actions: [{page: {roles: [duty_director], template: activate}}]
        """
    )
    assert problems(text) == [(13, "stage id 'a' is used twice (first at line 10)")]


def test_unknown_actions_are_reported() -> None:
    text = MINIMAL.replace("      - page: {", "      - pager: {")
    assert_problem(problems(text), 13, "unknown action 'pager' (did you mean 'page'?)")


def test_unknown_departments_roles_and_people_are_reported_against_the_roster() -> None:
    text = with_stages(
        """\
        - id: a
          when: declared
          actions:
            - page:
                departments: [coordination, hotline]
                roles: [duty_directer]
                people: [p-li]
                template: activate
            - task: {department: it, title: {zh: 查, en: Check}}
        """
    )
    found = problems(text, ROSTER)
    assert_problem(found, 14, "unknown department 'hotline'")
    assert_problem(found, 15, "unknown role 'duty_directer' (did you mean 'duty_director'?)")
    assert_problem(found, 16, "unknown person 'p-li'")
    assert_problem(found, 18, "unknown department 'it'")
    assert len(found) == 4
    assert parse_playbook_text(text, "without-roster.yaml").stages[0].id == "a"


def test_page_with_no_one_to_page_is_a_problem() -> None:
    text = MINIMAL.replace("departments: [coordination], roles: [duty_director], ", "")
    assert_problem(problems(text), 13, "pages no one")


def test_a_task_needs_exactly_one_of_department_and_person() -> None:
    text = MINIMAL.replace(
        "      - page: {departments: [coordination], roles: [duty_director], template: activate}",
        "      - task: {title: {zh: 查, en: Check}}",
    )
    assert_problem(problems(text), 13, "needs a department or a person")


def test_a_condition_with_a_syntax_error_is_reported_with_its_column() -> None:
    text = MINIMAL.replace("    when: declared", "    when: {if: \"severity >= 'II' and\"}")
    found = problems(text)
    assert_problem(found, 11, "ends too early (column 21)")


def test_a_condition_over_an_unknown_fact_is_reported() -> None:
    text = MINIMAL.replace(
        "    when: declared", "    when: {if: \"delay_min >= 120 or mode == 'drill'\"}"
    )
    assert problems(text) == [
        (
            11,
            "stage 'activate': condition uses 'delay_min', which is neither an input nor "
            "a built-in fact (severity, mode, declared_at, title)",
        )
    ]


def test_minutes_since_needs_a_datetime_fact() -> None:
    found = problems(
        MINIMAL.replace("    when: declared", '    when: {if: "minutes_since(trains) > 5"}')
    )
    assert_problem(found, 11, "minutes_since(trains) needs a datetime fact, but trains is int")
    found = problems(
        MINIMAL.replace("    when: declared", '    when: {if: "minutes_since(mode) > 5"}')
    )
    assert_problem(found, 11, "minutes_since(mode) needs a datetime fact")
    text = MINIMAL.replace("    when: declared", '    when: {if: "minutes_since(declared_at) > 5"}')
    assert parse_playbook_text(text, "ok.yaml").stages[0].when.condition is not None


def test_an_action_naming_a_missing_template_is_reported() -> None:
    text = MINIMAL.replace("template: activate}", "template: activat}")
    assert_problem(problems(text), 13, "template 'activat', which is not defined (did you mean")


def test_a_page_without_a_template_needs_one_named_page() -> None:
    text = MINIMAL.replace(", template: activate}", "}")
    assert_problem(problems(text), 13, "page action uses template 'page', which is not defined")
    parse_playbook_text(text.replace("  activate:\n", "  page:\n"), "ok.yaml")


def test_a_template_using_an_undefined_name_is_reported_at_its_line() -> None:
    text = MINIMAL + textwrap.indent(
        textwrap.dedent(
            """\
            note:
              zh: |
                {{ line }}晚点
                预计{{ delay }}分钟
              en: "Delays on {{ lin }}"
            """
        ),
        "  ",
    )
    found = problems(
        text.replace("template: activate}", "template: activate}\n      - notice: {template: note}")
    )
    assert_problem(found, 22, "template 'note' (zh): template uses 'delay'")
    assert_problem(
        found, 23, "template 'note' (en): template uses 'lin', which is neither an input"
    )
    assert_problem(found, 23, "(did you mean 'line'?)")


def test_a_template_with_a_jinja_syntax_error_is_reported_at_its_line() -> None:
    text = MINIMAL + "  broken:\n    zh: |\n      first\n      {{ line }\n      third\n"
    found = problems(text)
    assert len(found) == 1
    assert_problem(found, 21, "template 'broken' (zh): template syntax error: unexpected '}'")
    text = MINIMAL + '  filtered:\n    zh: "{{ line | shout }}"\n'
    assert_problem(problems(text), 19, "No filter named 'shout'")


def test_ack_url_is_only_for_templates_of_page_actions() -> None:
    text = MINIMAL.replace(
        "template: activate}", "template: activate}\n      - notice: {template: activate}"
    )
    found = problems(text)
    assert_problem(found, 17, "template uses 'ack_url', which only templates of page actions")


def test_inputs_are_checked() -> None:
    text = MINIMAL.replace(
        "  trains: {type: int}",
        "  trains: {type: integer}\n"
        "  count: {type: int, default: many, min: 1.5}\n"
        "  name: {type: str, min: 1}\n"
        "  severity: {type: str}",
    )
    found = problems(text)
    assert_problem(found, 8, "input 'trains' has type 'integer'")
    assert_problem(found, 9, "input 'count' default must be a whole number")
    assert_problem(found, 9, "input 'count' min must be a whole number")
    assert_problem(found, 10, "input 'name' is str; only numbers have a min")
    assert_problem(found, 11, "input 'severity' has a name that is already built in")


def test_every_problem_in_a_file_is_reported_together_in_line_order() -> None:
    text = (
        MINIMAL.replace("version: 2", "version: two")
        .replace("kind: mass_delay", "kind: Mass Delay")
        .replace("    when: declared", "    when: sometimes")
        .replace('{{ ack_url }}"', '{{ ack_url }} {{ nobody }}"')
    )
    found = problems(text)
    assert [line for line, _ in found] == [2, 4, 11, 16, 17]


def test_load_playbook_reads_a_file_and_names_it_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_playbook(path).path == str(path)
    path.write_text(MINIMAL.replace("kind: mass_delay", "kind: 3"), encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert (
        str(caught.value.problems[0])
        == f"{path}:4: kind '3' must be lower case letters, digits, - or _"
    )
    with pytest.raises(PlaybookError, match="cannot read the file"):
        load_playbook(tmp_path / "missing.yaml")


def test_load_playbooks_reads_folders_and_files_and_reports_problems_across_them(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.yaml").write_text(MINIMAL.replace("id: sample", "id: a"), encoding="utf-8")
    (folder / "b.yml").write_text(MINIMAL.replace("id: sample", "id: b"), encoding="utf-8")
    (folder / "notes.txt").write_text("not a playbook", encoding="utf-8")
    single = tmp_path / "c.yaml"
    single.write_text(MINIMAL.replace("id: sample", "id: c"), encoding="utf-8")
    assert sorted(load_playbooks([folder, single])) == ["a", "b", "c"]

    (folder / "d.yaml").write_text(MINIMAL.replace("id: sample", "id: a"), encoding="utf-8")
    (folder / "e.yaml").write_text(MINIMAL.replace("version: 2", "version: 0"), encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_playbooks([folder, single])
    assert [str(problem) for problem in caught.value.problems] == [
        f"{folder / 'd.yaml'}:1: id 'a' is also used by {folder / 'a.yaml'}",
        f"{folder / 'e.yaml'}:2: version must be 1 or more",
    ]
