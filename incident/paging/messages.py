"""The text of a page for one person: their language, SMS-sized, drills marked."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from incident.logs import get_logger
from incident.models import Incident, Page, Person
from incident.playbook import LEVEL_NAMES_ZH, Playbook, render_template

log = get_logger(__name__)

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
        try:
            body = render_template(playbook, page.template, lang, context, tz=zone)
        except Exception as exc:  # a page goes out whatever its template does with the facts
            log.warning(
                "page_template_failed",
                incident_id=incident.id,
                page_id=page.id,
                playbook=playbook.id,
                template=page.template,
                error_type=type(exc).__name__,
            )
            body = fallback_text(incident, playbook, page, lang, ack_url)
    else:
        body = f"[{incident.severity}] {incident.title} {ack_url}"
    if incident.mode == "drill" and not body.lstrip().startswith(_DRILL_PREFIXES):
        body = f"{DRILL_MARK}{body}"
    if len(body) > SMS_LIMIT and ack_url in body:
        room = SMS_LIMIT - len(ack_url) - 2
        body = body.replace(ack_url, "").rstrip()[:room].rstrip() + "… " + ack_url
    drill = "[DRILL] " if incident.mode == "drill" else ""
    return f"{drill}[{incident.severity}] {incident.title}"[:300], body


ACK_MARK = "\x00@\x00"  # stands for the link while one text is rendered for many people


def messages_for(
    incident: Incident,
    playbook: Playbook | None,
    page: Page,
    people: list[tuple[Person, str]],
    *,
    now: datetime,
    zone: ZoneInfo,
) -> list[tuple[str, str]]:
    """:func:`message_for` for many (person, ack link) pairs: a template that does not name
    the person is rendered once per language and the link put in (#15: 1,000 people, one
    render each way); anything else (a text that names them, or too long for one SMS) is
    rendered for each person."""
    personal = (
        playbook is not None
        and page.template in playbook.templates
        and any("person_name" in text for text in playbook.templates[page.template].values())
    )
    shared: dict[str, tuple[str, str] | None] = {}
    texts = []
    for person, ack_url in people:
        lang = "en" if person.language.lower().startswith("en") else "zh"
        if personal:
            texts.append(message_for(incident, playbook, page, person, ack_url, now=now, zone=zone))
            continue
        if lang not in shared:
            subject, body = message_for(
                incident, playbook, page, person, ACK_MARK, now=now, zone=zone
            )
            ok = body.count(ACK_MARK) == 1 and ACK_MARK not in subject
            shared[lang] = (subject, body) if ok and len(body) <= SMS_LIMIT else None
        found = shared[lang]
        body = found[1].replace(ACK_MARK, ack_url) if found is not None else ""
        if found is None or len(body) > SMS_LIMIT:
            texts.append(message_for(incident, playbook, page, person, ack_url, now=now, zone=zone))
        else:
            texts.append((found[0], body))
    return texts


def fallback_text(
    incident: Incident, playbook: Playbook | None, page: Page, lang: str, ack_url: str
) -> str:
    """The plain page sent when its template fails to render: level, title, what is asked
    (the stage's title) and the link, in ``lang``."""
    asked: dict[str, str] | None = None
    if playbook is not None and page.stage_key:
        try:
            asked = playbook.stage(page.stage_key).title
        except KeyError:
            asked = None
    if lang == "en":
        what = (asked or {}).get("en") or (asked or {}).get("zh") or "please respond"
        return f"[Level {incident.severity}] {incident.title}: {what}. Acknowledge: {ack_url}"
    what = (asked or {}).get("zh") or "请响应"
    level = LEVEL_NAMES_ZH.get(incident.severity, incident.severity)
    return f"【{level}】{incident.title}：{what}。请确认：{ack_url}"
