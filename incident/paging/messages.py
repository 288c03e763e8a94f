"""The text of a page for one person: their language, SMS-sized, drills marked."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from incident.models import Incident, Page, Person
from incident.playbook import Playbook, render_template

SMS_LIMIT = 280


DRILL_MARK = "【演练 DRILL】"


_DRILL_PREFIXES = ("【演练", "[DRILL", "DRILL", "[EXERCISE", "演练")


def message_for(
    incident: Incident,
    playbook: Playbook | None,
    page: Page,
    person: Person,
    ack_url: str,
    *,
    now: datetime,
    zone: ZoneInfo,
) -> tuple[str, str]:
    """The subject and SMS-sized body of a page for one person, in their language."""
    lang = "en" if person.language.lower().startswith("en") else "zh"
    if page.text:
        body = page.text.get(lang) or page.text.get("zh") or ""
        body = f"{body} {ack_url}".strip()
    elif playbook is not None and page.template in playbook.templates:
        context = {
            **incident.facts,
            "incident_id": incident.id,
            "title": incident.title,
            "severity": incident.severity,
            "mode": incident.mode,
            "declared_at": incident.declared_at,
            "now": now,
            "ack_url": ack_url,
            "person_name": person.name,
            "stage": page.stage_key,
        }
        body = render_template(playbook, page.template, lang, context, tz=zone)
    else:
        body = f"[{incident.severity}] {incident.title} {ack_url}"
    if incident.mode == "drill" and not body.lstrip().startswith(_DRILL_PREFIXES):
        body = f"{DRILL_MARK}{body}"
    if len(body) > SMS_LIMIT and ack_url in body:
        room = SMS_LIMIT - len(ack_url) - 2
        body = body.replace(ack_url, "").rstrip()[:room].rstrip() + "… " + ack_url
    drill = "[DRILL] " if incident.mode == "drill" else ""
    return f"{drill}[{incident.severity}] {incident.title}"[:300], body
