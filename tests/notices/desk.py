"""A duty manager's desk for the notice tests: the real app, the real worker, a frozen clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

import feedparser
import xmlschema
from google.transit import gtfs_realtime_pb2 as rt
from starlette.testclient import TestClient

from incident.clock import FrozenClock
from incident.worker import Worker
from tests.factories import MASS_DELAY_FACTS

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"


@dataclass
class Desk:
    client: TestClient
    worker: Worker
    clock: FrozenClock
    headers: dict[str, str]
    cap_schema: xmlschema.XMLSchema

    # -- the duty manager's side -----------------------------------------------------------
    def declare(self, mode: str = "live", **facts: Any) -> str:
        body = {
            "playbook": "mass-delay",
            "severity": "III",
            "title": "Line G signal fault",
            "facts": {**MASS_DELAY_FACTS, **facts},
            "mode": mode,
        }
        response = self.client.post("/api/incidents", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def run(self, **advance: float) -> None:
        if advance:
            self.clock.advance(**advance)
        self.worker.drain()

    def notices(self, incident_id: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/incidents/{incident_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return list(response.json()["notices"])

    def notice(self, notice_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/notices/{notice_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def draft(self, incident_id: str, zh: str, en: str, **extra: Any) -> str:
        body = {
            "languages": {
                "zh": {"headline": zh, "body": f"{zh}。对您的影响：列车晚点。请您：关注公告。"},
                "en": {"headline": en, "body": f"{en}. What to do: follow the notices."},
            },
            **extra,
        }
        response = self.client.post(
            f"/api/incidents/{incident_id}/notices", json=body, headers=self.headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def publish(self, notice_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.client.post(
            f"/api/notices/{notice_id}/publish", headers=headers or self.headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def events(self, incident_id: str, prefix: str = "notice:") -> list[dict[str, Any]]:
        response = self.client.get(f"/api/incidents/{incident_id}/timeline", headers=self.headers)
        return [e for e in response.json()["items"] if e["kind"].startswith(prefix)]

    # -- the public's side -----------------------------------------------------------------
    def page(self, path: str = "/notices") -> str:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        return response.text

    def atom(self) -> tuple[bytes, Any]:
        response = self.client.get("/notices.atom")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/atom+xml")
        parsed = feedparser.parse(response.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        return response.content, parsed

    def cap_index(self) -> Any:
        response = self.client.get("/notices.cap")
        assert response.status_code == 200, response.text
        parsed = feedparser.parse(response.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        return parsed

    def cap(self, notice_id: str, *, api: bool = False) -> ET.Element:
        path = f"/api/notices/{notice_id}/cap" if api else f"/notices/{notice_id}.cap"
        response = self.client.get(path, headers=self.headers if api else None)
        assert response.status_code == 200, response.text
        self.cap_schema.validate(response.content)  # raises naming what is wrong
        assert b"Z</sent>" not in response.content
        return ET.fromstring(response.content)

    def gtfs(self) -> rt.FeedMessage:
        response = self.client.get("/gtfs-rt/alerts.pb")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/x-protobuf"
        message = rt.FeedMessage()
        message.ParseFromString(response.content)
        assert message.header.gtfs_realtime_version == "2.0"
        assert message.header.incrementality == rt.FeedHeader.FULL_DATASET
        return message


def translations(text: rt.TranslatedString) -> dict[str, str]:
    return {t.language: t.text for t in text.translation}


def cap_value(element: ET.Element, path: str) -> list[str]:
    """Texts of ``path`` (names without namespace, separated by /) under ``element``."""
    xpath = "/".join(f"{CAP}{part}" for part in path.split("/"))
    return [found.text or "" for found in element.findall(xpath)]
