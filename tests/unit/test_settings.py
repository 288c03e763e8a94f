"""Settings: read from INCIDENT_* variables, each documented in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from incident.errors import ConfigError
from incident.settings import Settings, load_settings, setting_names

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [name for name in setting_names() if f"`{name}`" not in text]
    assert missing == []


def test_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "INCIDENT_DATABASE_URL": "sqlite:///x.db",
            "INCIDENT_EMBEDDED_WORKER": "false",
            "INCIDENT_WORKER_LEASE_SECONDS": "2.5",
            "INCIDENT_PLAYBOOKS_DIR": "/tmp/p",
        }
    )
    assert settings.database_url == "sqlite:///x.db"
    assert settings.embedded_worker is False
    assert settings.worker_lease_seconds == 2.5
    assert settings.playbooks_dir == Path("/tmp/p")
    assert load_settings({}) == Settings()


def test_the_secret_key_never_shows_in_a_repr() -> None:
    settings = load_settings({"INCIDENT_SECRET_KEY": "hunter2-very-secret"})
    assert "hunter2" not in repr(settings)
    assert settings.secret_key == "hunter2-very-secret"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INCIDENT_EMBEDDED_WORKER", "perhaps"),
        ("INCIDENT_JOB_MAX_ATTEMPTS", "ten"),
        ("INCIDENT_TIMEZONE", "Mars/Olympus"),
        ("INCIDENT_LOG_FORMAT", "xml"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
