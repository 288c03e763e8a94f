"""#16: drill channels come from an allow-list, never from a URL in a request; link-local and
metadata addresses are refused in every contact and channel URL unless a setting allows them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from incident import roster
from incident.db import Database
from incident.errors import ConfigError, RosterError
from incident.models import DrillSchedule, Incident
from incident.notices.approval import PublicationPolicy
from incident.settings import Secret, Settings, load_settings
from incident.urlguard import refused_host
from tests.factories import MASS_DELAY_FACTS

Auth = Callable[..., dict[str, str]]
METADATA = "json://169.254.169.254/latest/meta-data/?-X-Method=GET"


def drill(channels: list[str]) -> dict[str, object]:
    return {
        "playbook": "mass-delay",
        "severity": "III",
        "facts": MASS_DELAY_FACTS,
        "channels": channels,
    }


def count(db: Database, model: type[Incident] | type[DrillSchedule]) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    "channel", [METADATA, "json://127.0.0.1:5432/", "inbox://anyone", "not-configured"]
)
def test_a_drill_naming_a_url_or_an_unknown_channel_is_refused_with_a_clear_problem(
    client: TestClient, auth: Auth, seeded: Database, channel: str
) -> None:
    response = client.post("/api/drills", headers=auth("evaluator"), json=drill([channel]))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"][0]["field"] == "channels.0"
    assert "configured drill channel" in problem["errors"][0]["message"]
    assert count(seeded, Incident) == 0


def test_a_drill_schedule_naming_a_url_is_refused_too(
    client: TestClient, auth: Auth, seeded: Database
) -> None:
    body = {**drill([METADATA]), "cron": "0 10 * * 3"}
    response = client.post("/api/drill-schedules", headers=auth("evaluator"), json=body)
    assert response.status_code == 422, response.text
    assert count(seeded, DrillSchedule) == 0


def test_a_drill_naming_the_default_channel_is_accepted_and_stores_the_name(
    client: TestClient, auth: Auth, seeded: Database
) -> None:
    response = client.post("/api/drills", headers=auth("evaluator"), json=drill(["default"]))
    assert response.status_code == 201, response.text
    with seeded.reading() as session:
        stored = session.get(Incident, response.json()["id"])
        assert stored is not None and stored.drill_channels == ["default"]


def test_publication_resolves_drill_channel_names_and_skips_urls_stored_before() -> None:
    settings = Settings(drill_channels=Secret("desk=json://drills.example/hook"))
    policy = PublicationPolicy.from_settings(settings)
    assert policy.drill_urls(["desk"]) == ("json://drills.example/hook",)
    assert policy.drill_urls(["default"]) == ("inbox://drill-notices",)
    assert policy.drill_urls([METADATA]) == ("inbox://drill-notices",)


@pytest.mark.parametrize(
    "url",
    [
        "json://169.254.169.254/latest/meta-data",
        "json://user:pw@169.254.169.254:80/",
        "json://2852039166/",
        "json://0xa9fea9fe/",
        "json://[fe80::1]/",
        "json://[::ffff:169.254.169.254]/",
        "json://metadata.google.internal/computeMetadata/v1/",
        "json://100.100.100.200/latest/meta-data",
    ],
)
def test_link_local_and_metadata_hosts_are_refused_in_any_spelling(url: str) -> None:
    assert refused_host(url) is not None


@pytest.mark.parametrize(
    "url", ["inbox://li.na", "json://10.0.0.5/hook", "mailto://u:p@mail.example", "json://[::1]/"]
)
def test_ordinary_hosts_pass(url: str) -> None:
    assert refused_host(url) is None


@pytest.mark.parametrize(
    "name", ["INCIDENT_OPS_ALERT_URLS", "INCIDENT_PUBLIC_CHANNELS", "INCIDENT_SMS_GATEWAY"]
)
def test_settings_naming_a_metadata_address_are_refused_unless_allowed(name: str) -> None:
    url = "json://169.254.169.254/send?:to={phone}"
    with pytest.raises(ConfigError, match=name):
        load_settings({name: url})
    load_settings({name: url, "INCIDENT_ALLOW_LINK_LOCAL_URLS": "true"})


def test_configured_drill_channels_are_checked_and_must_be_name_url_pairs() -> None:
    with pytest.raises(ConfigError, match="INCIDENT_DRILL_CHANNELS"):
        load_settings({"INCIDENT_DRILL_CHANNELS": "desk=json://169.254.169.254/"})
    with pytest.raises(ConfigError, match="INCIDENT_DRILL_CHANNELS"):
        load_settings({"INCIDENT_DRILL_CHANNELS": "json://drills.example/"})
    settings = load_settings({"INCIDENT_DRILL_CHANNELS": "desk=json://drills.example/"})
    assert settings.drill_channel_urls()["desk"] == "json://drills.example/"


ROSTER = """\
departments:
  - id: inquiry
    name: Inquiry
    head: li.na
people:
  - id: li.na
    name: Li Na
    department: inquiry
    contacts:
      - inbox://li.na
      - json://169.254.169.254/latest/meta-data
"""


def test_a_roster_contact_naming_a_metadata_address_is_refused_with_its_line() -> None:
    with pytest.raises(RosterError) as caught:
        roster.parse_roster_text(ROSTER, "roster.yaml")
    [problem] = [str(p) for p in caught.value.problems]
    assert problem.startswith("roster.yaml:11:") and "link-local" in problem
    doc = roster.parse_roster_text(ROSTER, "roster.yaml", allow_link_local=True)
    assert len(doc.people[0].contacts) == 2
