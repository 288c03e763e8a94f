"""#16: serve, worker and auditor refuse to start with the development (or a short) secret
key, or derived data keys over passenger data, unless they are a local try-out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from incident.settings import DEV_SECRET, Secret, Settings, load_settings, weak_key_problem

ROOT = Path(__file__).resolve().parents[2]
STRONG = "k" * 40
FERNET = "a" * 43 + "="


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "incident", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "INCIDENT_LOG_LEVEL": "WARNING", **env},
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {
        "INCIDENT_DATABASE_URL": database_url,
        "INCIDENT_PLAYBOOKS_DIR": str(ROOT / "playbooks"),
    }


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (("serve", "--host", "0.0.0.0", "--port", "1"), {}),
        (("worker",), {"INCIDENT_PUBLIC_URL": "https://incident.example"}),
        (("auditor",), {"INCIDENT_DEMO_INBOX": "false"}),
        (("worker",), {"INCIDENT_SECRET_KEY": "short", "INCIDENT_DEMO_INBOX": "false"}),
    ],
)
def test_a_process_with_the_development_or_a_short_secret_key_refuses_to_start(
    env: dict[str, str], command: tuple[str, ...], extra: dict[str, str]
) -> None:
    result = run(*command, env={**env, **extra})
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("incident: refusing to start:"), lines
    assert "INCIDENT_SECRET_KEY" in lines[0] and "Traceback" not in result.stderr


def test_the_development_key_is_fine_for_a_try_out_on_loopback_with_the_demo() -> None:
    assert weak_key_problem(Settings(), host="127.0.0.1") is None
    assert weak_key_problem(Settings(), host="::1", has_passenger_data=True) is None
    assert weak_key_problem(Settings(demo_inbox=False), host="127.0.0.1") is not None
    assert weak_key_problem(Settings(), host="0.0.0.0") is not None
    public = Settings(public_url="https://incident.example")
    assert weak_key_problem(public) is not None


def test_derived_data_keys_are_refused_once_passenger_data_exists() -> None:
    strong = Settings(secret_key=Secret(STRONG), demo_inbox=False)
    assert weak_key_problem(strong, host="0.0.0.0") is None
    problem = weak_key_problem(strong, host="0.0.0.0", has_passenger_data=True)
    assert problem is not None and "INCIDENT_DATA_KEYS" in problem
    keyed = strong.replace(data_keys=Secret(FERNET))
    assert weak_key_problem(keyed, host="0.0.0.0", has_passenger_data=True) is None


def test_building_settings_never_refuses_the_development_key() -> None:
    assert load_settings({}).secret_key == DEV_SECRET
    assert Settings(secret_key=Secret("short")).secret_key == "short"


def test_compose_never_defaults_the_keys_to_empty() -> None:
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    for name in ("INCIDENT_SECRET_KEY", "INCIDENT_DATA_KEYS"):
        assert re.search(rf"{name}: \$\{{{name}:\?[^}}]+\}}", compose), name
