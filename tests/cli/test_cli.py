"""The `incident` command, run as a user runs it: a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "incident", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "INCIDENT_LOG_LEVEL": "WARNING", **(env or {})},
        input=stdin,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
        "INCIDENT_DEMO_ROSTER": str(ROOT / "incident/demo/roster.yaml"),
    }


def test_playbooks_check_passes_on_the_shipped_playbooks(env: dict[str, str]) -> None:
    result = run("playbooks", "check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") >= 5


def test_playbooks_check_reports_file_and_line(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\nversion: 1\ntitle: {zh: 坏, en: Bad}\nkind: mass_delay\n"
        "stages:\n  - id: a\n    when: {after: 10 minutes}\n    actions: []\n"
    )
    result = run("playbooks", "check", str(bad), env=env)
    assert result.returncode == 1
    assert f"{bad}:7:" in result.stdout


def test_playbooks_simulate_prints_a_timeline(env: dict[str, str]) -> None:
    result = run(
        "playbooks",
        "simulate",
        "mass-delay",
        "--severity",
        "II",
        "--fact",
        "line=G",
        "--fact",
        "expected_delay_min=120",
        "--fact",
        "trains_affected=30",
        "--resolve-at",
        "2h",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "situation-report fires" in result.stdout
    assert "escalate fires" in result.stdout
    assert "+     2h" in result.stdout


def test_declare_and_audit_from_the_command_line(env: dict[str, str]) -> None:
    assert run("demo", env=env).returncode == 0
    declared = run(
        "declare",
        "mass-delay",
        "--severity",
        "III",
        "--title",
        "Line G",
        "--fact",
        "line=G",
        "--fact",
        "expected_delay_min=90",
        "--fact",
        "trains_affected=12",
        env=env,
    )
    assert declared.returncode == 0, declared.stderr
    assert declared.stdout.strip().startswith("inc_")
    verified = run("audit", "verify", env=env)
    assert verified.returncode == 0 and "1 timeline(s) intact" in verified.stdout


def test_bad_input_gets_one_line_and_a_non_zero_exit(env: dict[str, str]) -> None:
    for args in (
        ("declare", "mass-delay", "--severity", "V", "--title", "x"),
        ("declare", "no-such", "--severity", "II", "--title", "x"),
        ("users", "add", "x", "--role", "pilot"),
        ("nonsense",),
    ):
        result = run(*args, env=env)
        assert result.returncode != 0, args
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_users_add_prints_the_token_once_and_it_works(env: dict[str, str]) -> None:
    run("demo", env=env)
    added = run(
        "users",
        "add",
        "li",
        "--role",
        "duty_manager",
        "--password-stdin",
        stdin="s3cret-pass\n",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("token: inc_")
    listed = run("users", "list", env=env)
    assert "li\tduty_manager" in listed.stdout
    assert "inc_" not in listed.stdout
    assert run("users", "deactivate", "li", env=env).returncode == 0
    assert "deactivated" in run("users", "list", env=env).stdout


def test_roster_test_sends_to_each_contact_and_says_which_answered(
    env: dict[str, str], tmp_path: Path
) -> None:
    roster_file = tmp_path / "roster.yaml"
    roster_file.write_text(
        "departments:\n  - {id: inquiry, name: {zh: 问询组, en: Inquiry}}\n"
        "people:\n  - {id: li, name: 李, department: inquiry,\n"
        '      contacts: ["json://127.0.0.1:9/nobody-listens", "inbox://li"]}\n'
    )
    assert run("db", "upgrade", env=env).returncode == 0
    assert run("roster", "load", str(roster_file), env=env).returncode == 0
    result = run("roster", "test", "li", env={**env, "INCIDENT_DELIVERY_ATTEMPTS": "1"})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1. json: failed (1 attempt(s)")
    assert lines[1] == "2. inbox: delivered (1 attempt(s))"
    missing = run("roster", "test", "nobody", env=env)
    assert missing.returncode == 1 and "no active person" in missing.stderr


def test_drills_run_and_schedule_from_the_command_line(env: dict[str, str]) -> None:
    assert run("demo", env=env).returncode == 0
    started = run(
        "drill",
        "run",
        "mass-delay",
        "--severity",
        "III",
        "--fact",
        "line=G",
        "--fact",
        "trains_affected=4",
        "--fact",
        "expected_delay_min=30",
        "--participant",
        "coordination",
        env=env,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip().startswith("inc_")
    scheduled = run(
        "drill",
        "schedule",
        "mass-delay",
        "--cron",
        "0 10 * * 3",
        "--severity",
        "IV",
        "--fact",
        "line=G",
        "--fact",
        "trains_affected=4",
        "--fact",
        "expected_delay_min=30",
        env=env,
    )
    assert scheduled.returncode == 0, scheduled.stderr
    listed = run("drill", "list", env=env).stdout
    assert "upcoming\t" in listed and "past\t" in listed
    bad = run("drill", "schedule", "mass-delay", "--cron", "nope", "--severity", "IV", env=env)
    assert bad.returncode == 1 and "cron" in bad.stderr


def test_an_invalid_playbook_is_reported_with_its_line_but_the_others_still_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "broken.yaml").write_text(
        "id: broken\nversion: 1\ntitle: {zh: 坏, en: Broken}\nkind: mass_delay\n"
        "stages:\n  - id: a\n    when: {every: soon}\n    actions: []\n"
    )
    (folder / "mass-delay.yaml").write_text(
        (ROOT / "playbooks" / "mass-delay.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    local = {**env, "INCIDENT_PLAYBOOKS_DIR": str(folder)}
    assert run("db", "upgrade", env=env).returncode == 0
    assert run("demo", env=local).returncode == 0
    facts = ("--fact", "line=G", "--fact", "expected_delay_min=90", "--fact", "trains_affected=3")
    declared = run("declare", "mass-delay", "--severity", "III", "--title", "T", *facts, env=local)
    assert declared.returncode == 0, declared.stderr
    output = declared.stdout + declared.stderr
    assert "playbook_broken" in output and str(folder / "broken.yaml") in output
    assert "line=7" in output or "'line': 7" in output or '"line": 7' in output
    refused = run("declare", "broken", "--severity", "III", "--title", "T", env=local)
    assert refused.returncode != 0
    checked = run("playbooks", "check", str(folder), env=local)
    assert checked.returncode == 1 and f"{folder / 'broken.yaml'}:7:" in checked.stdout
