"""CAP 1.2 (OASIS Common Alerting Protocol) messages of published notice versions.

One ``alert`` per published version: the initial is an ``Alert``; an update and the all-clear
are ``Update`` (the all-clear with responseType ``AllClear``); a withdrawal is ``Cancel``.
Updates and cancels reference every earlier published version as ``sender,identifier,sent``.
A drill's messages have status ``Exercise`` and name the exercise in ``note``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from incident.models import Notice, NoticeVersion
from incident.notices.reading import published_versions
from incident.notices.texts import CAP_SEVERITY, LANGUAGE_TAGS, Text

NS = "urn:oasis:names:tc:emergency:cap:1.2"
MEDIA_TYPE = "application/cap+xml"
MSG_TYPES = {"initial": "Alert", "update": "Update", "all_clear": "Update", "withdrawal": "Cancel"}
EVENTS = {
    "zh": "铁路客运服务信息",
    "en": "Railway passenger service notice",
}
ALL_LINES = {"zh": "全线", "en": "All lines"}
ET.register_namespace("", NS)


def cap_time(moment: datetime) -> str:
    """CAP's time form: seconds and an offset, UTC as ``-00:00`` (never ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def identifier(notice: Notice, version: NoticeVersion) -> str:
    """No spaces, commas, ``<`` or ``&``: the notice id and the version number."""
    return f"{notice.id}.v{version.number}"


def reference(sender: str, notice: Notice, version: NoticeVersion) -> str:
    assert version.published_at is not None
    return f"{sender},{identifier(notice, version)},{cap_time(version.published_at)}"


def _add(parent: ET.Element, name: str, text: str | None) -> ET.Element | None:
    if text is None or text == "":
        return None
    element = ET.SubElement(parent, f"{{{NS}}}{name}")
    element.text = text
    return element


def _urgency(version: NoticeVersion) -> str:
    if version.kind in ("all_clear", "withdrawal"):
        return "Past"
    return "Immediate" if version.level in ("I", "II") else "Expected"


def _response_type(version: NoticeVersion) -> str:
    return {"all_clear": "AllClear", "withdrawal": "None"}.get(version.kind, "Monitor")


def _area(version: NoticeVersion, lang: str) -> str:
    named = [*version.lines, *version.stations]
    return "; ".join(named) if named else ALL_LINES[lang]


def _event(notice: Notice, lang: str) -> str:
    """The kind of event: the playbook's title (Mass train delays, ...)."""
    title = notice.incident.playbook_version.definition.get("title")
    if isinstance(title, dict) and isinstance(title.get(lang), str) and title[lang]:
        return str(title[lang])
    return EVENTS[lang]


def alert(notice: Notice, version: NoticeVersion, *, sender: str, public_url: str) -> bytes:
    """The CAP 1.2 document of one published version, as UTF-8 XML."""
    if version.published_at is None:
        raise ValueError("only published versions have a CAP message")
    root = ET.Element(f"{{{NS}}}alert")
    _add(root, "identifier", identifier(notice, version))
    _add(root, "sender", sender)
    _add(root, "sent", cap_time(version.published_at))
    drill = notice.mode == "drill"
    _add(root, "status", "Exercise" if drill else "Actual")
    _add(root, "msgType", MSG_TYPES[version.kind])
    _add(root, "scope", "Public")
    if drill:
        _add(root, "note", f"Exercise {notice.incident_id}: drill, not a real event")
    earlier = [v for v in published_versions(notice) if v.number < version.number]
    if earlier and version.kind != "initial":
        _add(root, "references", " ".join(reference(sender, notice, v) for v in earlier))
    _add(root, "incidents", notice.incident_id)
    for lang in ("zh", "en"):
        if lang not in version.texts:
            continue
        text = Text.from_json(version.texts[lang])
        info = ET.SubElement(root, f"{{{NS}}}info")
        _add(info, "language", LANGUAGE_TAGS[lang])
        _add(info, "category", "Transport")
        _add(info, "event", _event(notice, lang))
        _add(info, "responseType", _response_type(version))
        _add(info, "urgency", _urgency(version))
        _add(info, "severity", CAP_SEVERITY.get(version.level, "Unknown"))
        _add(info, "certainty", "Observed")
        if version.impact_start is not None:
            _add(info, "onset", cap_time(version.impact_start))
        if version.communication_end is not None:
            _add(info, "expires", cap_time(version.communication_end))
        _add(info, "senderName", "铁路客服中心" if lang == "zh" else "Railway service centre")
        _add(info, "headline", text.headline)
        description, instruction = text.description_and_instruction()
        _add(info, "description", description)
        _add(info, "instruction", instruction)
        if not drill:
            _add(info, "web", f"{public_url}/notices/{notice.id}")
        area = ET.SubElement(info, f"{{{NS}}}area")
        _add(area, "areaDesc", _area(version, lang))
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
