"""`playbooks check` renders every template against facts with and without each optional
input, so a template that only works when an optional fact is given is found before use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import ROOT, run

FRAGILE = """\
id: fragile
version: 1
title: {zh: 模板测试, en: Template test}
kind: mass_delay
inputs:
  line: {type: str, required: true}
  expected_delay_min: {type: int, min: 0}
  station: {type: str}
stages:
  - id: activate
    title: {zh: 启动预案, en: Activate the plan}
    when: declared
    actions:
      - page: {departments: [inquiry], ack_within: 5m, template: page}
  - id: notify
    when: {after: 5m}
    actions:
      - notice: {template: notice, kind: initial}
templates:
  page:
    zh: "{% if expected_delay_min >= 60 %}长时间晚点 {% endif %}{{ title }} {{ ack_url }}"
    en: "{{ title }} {{ ack_url }}"
  notice:
    zh: "{{ title }}：{{ station[0] }}站受影响"
    en: "{{ title }}"
"""


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "INCIDENT_DEMO_ROSTER": str(ROOT / "incident/demo/roster.yaml"),
    }


def test_playbooks_check_reports_templates_that_fail_when_an_optional_input_is_absent(
    env: dict[str, str], tmp_path: Path
) -> None:
    fragile = tmp_path / "fragile.yaml"
    fragile.write_text(FRAGILE, encoding="utf-8")
    result = run("playbooks", "check", str(fragile), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    page = [line for line in lines if "template 'page'" in line]
    assert page == [
        f"{fragile}:21: template 'page' (zh) fails when optional input expected_delay_min is "
        "absent: '>=' not supported between instances of 'NoneType' and 'int'"
    ]
    notice = [line for line in lines if "template 'notice'" in line]
    assert len(notice) == 1 and notice[0].startswith(f"{fragile}:24: template 'notice' (zh)")
    assert "optional input station is absent" in notice[0]
    assert not [line for line in lines if line.startswith("ok ")]


def test_playbooks_simulate_warns_about_templates_that_fail_without_an_optional_input(
    env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "fragile.yaml").write_text(FRAGILE, encoding="utf-8")
    result = run(
        "playbooks",
        "simulate",
        "fragile",
        "--severity",
        "II",
        "--fact",
        "line=G",
        env={**env, "INCIDENT_PLAYBOOKS_DIR": str(folder)},
    )
    assert result.returncode == 0, result.stderr
    assert "fails when optional input expected_delay_min is absent" in result.stderr
    assert "activate fires" in result.stdout
