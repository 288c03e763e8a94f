"""GTFS-Realtime Service Alerts: one alert per live notice in force.

The feed is a full dataset: an all-clear or a withdrawal removes the notice's alert. Lines are
``route_id``, stations ``stop_id``, trains ``trip.trip_id``; a notice naming none of them
informs every rail route (``route_type`` 2). Texts are TranslatedStrings in zh-CN and en.
Periods: ``communication_period`` and ``impact_period`` (GTFS-RT 2.0 as of PR #546), and the
deprecated ``active_period`` mirroring the impact period for consumers that predate them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from google.protobuf import json_format
from google.transit import gtfs_realtime_pb2 as rt

from incident.models import Notice, NoticeVersion
from incident.notices.reading import public_version
from incident.notices.texts import GTFS_SEVERITY, LANGUAGE_TAGS, Text

RAIL_ROUTE_TYPE = 2
MEDIA_TYPE = "application/x-protobuf"


def _seconds(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def _period(target: rt.TimeRange, start: datetime | None, end: datetime | None) -> None:
    begin, finish = _seconds(start), _seconds(end)
    if begin is not None:
        target.start = begin
    if finish is not None:
        target.end = finish


def _translate(target: rt.TranslatedString, texts: dict[str, str]) -> None:
    for lang, text in texts.items():
        if text:
            translation = target.translation.add()
            translation.text = text
            translation.language = LANGUAGE_TAGS[lang]


def _fill(alert: rt.Alert, notice: Notice, version: NoticeVersion, public_url: str) -> None:
    for line in version.lines:
        alert.informed_entity.add().route_id = line
    for station in version.stations:
        alert.informed_entity.add().stop_id = station
    for train in version.trains:
        alert.informed_entity.add().trip.trip_id = train
    if not alert.informed_entity:
        alert.informed_entity.add().route_type = RAIL_ROUTE_TYPE
    # Enum members are class attributes of Alert (Alert.WEATHER, Alert.SEVERE, ...).
    alert.cause = getattr(rt.Alert, version.cause)
    alert.effect = getattr(rt.Alert, version.effect)
    alert.severity_level = getattr(rt.Alert, GTFS_SEVERITY.get(version.level, "INFO"))
    texts = {lang: Text.from_json(value) for lang, value in version.texts.items()}
    _translate(alert.header_text, {lang: t.headline for lang, t in texts.items()})
    # The description is required and should add to the header.
    _translate(alert.description_text, {lang: t.body or t.headline for lang, t in texts.items()})
    _translate(alert.url, dict.fromkeys(texts, f"{public_url}/notices/{notice.id}"))
    _period(
        alert.communication_period.add(), version.communication_start, version.communication_end
    )
    _period(alert.impact_period.add(), version.impact_start, version.impact_end)
    _period(alert.active_period.add(), version.impact_start, version.impact_end)


def feed(notices: Iterable[Notice], *, now: datetime, public_url: str) -> rt.FeedMessage:
    """The FeedMessage of the given notices in force (live, current)."""
    message = rt.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    message.header.incrementality = rt.FeedHeader.FULL_DATASET
    message.header.timestamp = int(now.timestamp())
    for notice in notices:
        if notice.mode != "live" or notice.status != "current":
            continue  # drills never, closed ones no longer
        entity = message.entity.add()
        entity.id = notice.id
        _fill(entity.alert, notice, public_version(notice), public_url)
    return message


def to_json(message: rt.FeedMessage) -> str:
    """The feed as protobuf's canonical JSON (for people debugging a consumer)."""
    return str(json_format.MessageToJson(message, ensure_ascii=False, indent=2))
