"""`incident handover` and `incident calltree`, run as a user runs them: a separate process."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import ROOT, run


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    settings = {
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "INCIDENT_DEMO_ROSTER": str(ROOT / "incident/demo/roster.yaml"),
    }
    loaded = run("roster", "load", str(ROOT / "incident/demo/roster.yaml"), env=settings)
    assert loaded.returncode == 0, loaded.stderr
    return settings


def test_handover_lists_open_incidents_and_records_the_take_over(env: dict[str, str]) -> None:
    declared = run(
        "declare",
        "mass-delay",
        "--severity",
        "III",
        "--title",
        "Line G signal fault",
        "--fact",
        "line=G",
        "--fact",
        "trains_affected=40",
        "--fact",
        "expected_delay_min=90",
        env=env,
    )
    assert declared.returncode == 0, declared.stderr
    incident = declared.stdout.strip()
    listed = run("handover", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "1 open incident(s)" in listed.stdout
    assert f"[III] {incident} Line G signal fault (active)" in listed.stdout
    as_json = json.loads(run("handover", "--json", env=env).stdout)
    assert [i["id"] for i in as_json["incidents"]] == [incident]

    refused = run("handover", "--ack", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "--by" in refused.stderr
    taken = run("handover", "--ack", "--by", "li.si", "--from", "zhou.min", env=env)
    assert taken.returncode == 0, taken.stderr
    assert "acknowledged by li.si" in taken.stdout
    again = json.loads(run("handover", "--json", env=env).stdout)
    assert again["last_handover"]["incoming"] == "li.si"
    assert again["last_handover"]["outgoing"] == "zhou.min"


def test_calltree_prints_who_calls_whom_and_refuses_an_unknown_playbook(
    env: dict[str, str],
) -> None:
    tree = run("calltree", "network-outage", env=env)
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.startswith("# 电话树 Call tree")
    assert "inbox://feng.yu" in tree.stdout  # the operator sees the numbers
    html = run("calltree", "network-outage", "--format", "html", env=env)
    assert html.returncode == 0 and "<style>" in html.stdout and "冯宇" in html.stdout
    unknown = run("calltree", "no-such-playbook", env=env)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "incident: no playbook 'no-such-playbook'"
    wrong = run("calltree", "network-outage", "--format", "pdf", env=env)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
