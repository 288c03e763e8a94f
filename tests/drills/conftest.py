"""Drills run against the real app and worker; the public channel is a loopback webhook, and
an admin configured one drill channel (``drill-only``) on loopback too."""

from __future__ import annotations

import pytest

from incident.settings import Secret, Settings
from tests.notices.conftest import cap_schema, receiver
from tests.peers import HttpReceiver

__all__ = ["cap_schema", "receiver", "settings"]


@pytest.fixture
def settings(settings: Settings, receiver: HttpReceiver) -> Settings:
    """The shared settings with a public channel and a drill channel, webhooks on loopback."""
    return settings.replace(
        public_channels=Secret(receiver.url("/ok/public")),
        public_url="https://trains.example",
        drill_channels=Secret(f"drill-only={receiver.url('/ok/drill-only')}"),
    )
