"""Notices run against the real app and worker; the public channel is a loopback webhook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import xmlschema

from incident.settings import Secret, Settings
from tests.peers import HttpReceiver, http_receiver

CAP_XSD = Path(__file__).resolve().parents[1] / "fixtures" / "cap" / "CAP-v1.2.xsd"


@pytest.fixture(scope="session")
def cap_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(CAP_XSD))


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as peer:
        yield peer


@pytest.fixture
def settings(settings: Settings, receiver: HttpReceiver) -> Settings:
    """The shared settings with one public channel: a webhook on loopback."""
    return settings.replace(
        public_channels=Secret(receiver.url("/ok/public")),
        public_url="https://trains.example",
    )
