"""Approval and publication of notice versions, and the check that updates come on time.

Publishing a version approves it, supersedes the version the public saw before, queues one
delivery per public channel (a drill's: the drill channel only) and raises the publication
generation that the public feeds are cached by, all in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from incident import delivery, paging, timeline
from incident.errors import Conflict, Forbidden, NotFound
from incident.logs import get_logger
from incident.models import Notice, NoticeFeedState, NoticeVersion
from incident.notices.drafting import schedule_check, update_every
from incident.notices.events import NoticeEvent
from incident.notices.texts import Text
from incident.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class PublicationPolicy:
    """What publication needs from the settings."""

    public_url: str
    sender: str
    four_eyes: bool = False
    public_channels: tuple[str, ...] = ()
    drill_channel: str = "inbox://drill-notices"
    drill_channels: tuple[tuple[str, str], ...] = ()  # (name, url) an admin configured

    @classmethod
    def from_settings(cls, settings: Settings) -> PublicationPolicy:
        channels = tuple(c.strip() for c in str(settings.public_channels).split(",") if c.strip())
        return cls(
            public_url=settings.public_url.rstrip("/"),
            sender=cap_sender(settings),
            four_eyes=settings.notice_four_eyes,
            public_channels=channels,
            drill_channel=settings.drill_notice_channel,
            drill_channels=tuple(settings.drill_channel_urls().items()),
        )

    def drill_urls(self, names: list[str] | None) -> tuple[str, ...]:
        """The URLs of a drill's named channels; a name no longer configured (or a URL stored
        before channels were named) is skipped; none left: the drill notice channel."""
        known = dict(self.drill_channels)
        found = tuple(dict.fromkeys(known[n] for n in names or () if n in known))
        skipped = [n for n in names or () if n not in known]
        if skipped:
            log.warning("drill_channels_skipped", count=len(skipped))
        return found or (self.drill_channel,)


def cap_sender(settings: Settings) -> str:
    """The CAP sender: the setting, or ``notices@`` the public host."""
    if settings.cap_sender:
        return settings.cap_sender
    host = urlsplit(settings.public_url).hostname or "localhost"
    return f"notices@{host}"


def get_notice(notice_id: str, *, session: Session) -> Notice:
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound(f"no notice {notice_id!r}")
    return notice


def message_text(notice: Notice, version: NoticeVersion, policy: PublicationPolicy) -> str:
    """The plain text sent to channels: both languages and the link to the public page."""
    parts = [
        Text.from_json(version.texts[lang]).plain()
        for lang in ("zh", "en")
        if lang in version.texts
    ]
    if notice.mode == "live":
        parts.append(f"{policy.public_url}/notices/{notice.id}")
    return "\n\n".join(parts)


def bump_generation(*, session: Session, now: datetime) -> None:
    """Raise the publication generation (the row is made on first use)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(NoticeFeedState).values(id=1, generation=1, changed_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={"generation": NoticeFeedState.generation + 1, "changed_at": now},
    )
    session.execute(stmt)


def generation(*, session: Session) -> int:
    """The current publication generation (0 before the first publication)."""
    found = session.scalar(select(NoticeFeedState.generation).where(NoticeFeedState.id == 1))
    return int(found or 0)


def _deliver(
    notice: Notice,
    version: NoticeVersion,
    policy: PublicationPolicy,
    *,
    session: Session,
    now: datetime,
) -> int:
    if notice.mode == "live":
        channels = policy.public_channels
    else:  # a drill: its own drill-only channels (from its schedule or request), else the default
        channels = policy.drill_urls(notice.incident.drill_channels)
    headline = Text.from_json(version.texts["zh"]).headline
    body = message_text(notice, version, policy)
    for n, address in enumerate(channels):
        delivery.create(
            session=session,
            now=now,
            purpose="notice",
            address=address,
            subject=headline,
            body=body,
            idempotency_key=f"notice:{version.id}:{n}",
            incident_id=notice.incident_id,
            lane=delivery.lane_for("notice", drill=notice.mode != "live"),
        )
    return len(channels)


def publish(
    notice: Notice, *, session: Session, now: datetime, actor: str, policy: PublicationPolicy
) -> NoticeVersion:
    """Approve and publish the notice's latest draft version."""
    latest = notice.versions[-1] if notice.versions else None
    if latest is None or latest.status != "draft":
        state = "nothing" if latest is None else f"version {latest.number}, {latest.status}"
        raise Conflict(f"there is no draft to publish (the latest is {state})")
    if policy.four_eyes and latest.drafted_by == actor:
        raise Forbidden("four-eyes rule: someone other than the drafter must approve")
    incident = notice.incident
    latest.status = "approved"
    latest.approved_at = now
    latest.approved_by = actor
    timeline.append(
        incident,
        NoticeEvent.APPROVED,
        {"notice": notice.id, "version": latest.number, "drafted_by": latest.drafted_by},
        session=session,
        at=now,
        actor=actor,
    )
    previous = next((v for v in notice.versions if v.number == notice.published_number), None)
    if previous is not None:
        previous.status = "superseded"
        previous.superseded_at = now
        timeline.append(
            incident,
            NoticeEvent.SUPERSEDED,
            {"notice": notice.id, "version": previous.number, "by": latest.number},
            session=session,
            at=now,
            actor=actor,
        )
    latest.status = "published"
    latest.published_at = now
    if latest.communication_start is None:
        start = latest.impact_start
        latest.communication_start = start if start is not None and start < now else now
    notice.published_number = latest.number
    notice.first_published_at = notice.first_published_at or now
    notice.last_published_at = now
    notice.next_update_due = None
    if latest.kind in ("all_clear", "withdrawal"):
        notice.status = "closed" if latest.kind == "all_clear" else "withdrawn"
        notice.closed_at = now
        if latest.impact_end is None:  # the disruption is over by the time it is cleared
            start = latest.impact_start
            latest.impact_end = start if start is not None and start > now else now
    else:
        notice.status = "current"
        every = update_every(notice)
        if every is not None and incident.status in ("active", "contained"):
            notice.next_update_due = now + every
            schedule_check(notice, latest.number, notice.next_update_due, session=session)
    session.flush()
    sent = _deliver(notice, latest, policy, session=session, now=now)
    timeline.append(
        incident,
        NoticeEvent.PUBLISHED,
        {
            "notice": notice.id,
            "version": latest.number,
            "kind": latest.kind,
            "mode": notice.mode,
            "channels": sent,
            "next_update_due": notice.next_update_due.isoformat()
            if notice.next_update_due
            else None,
        },
        session=session,
        at=now,
        actor=actor,
    )
    if notice.mode == "live":
        bump_generation(session=session, now=now)
    log.info(
        "notice_published",
        incident_id=incident.id,
        notice_id=notice.id,
        version=latest.number,
        kind=latest.kind,
        mode=notice.mode,
        channels=sent,
    )
    return latest


def check_due(
    notice_id: str,
    published: int,
    *,
    session: Session,
    now: datetime,
    policy: paging.PagingPolicy,
) -> bool:
    """Record and page the duty manager when a notice's next publication is overdue.

    ``published`` is the version the check was scheduled after (0: the first publication);
    a check overtaken by a later publication, or by the end of the incident, does nothing."""
    notice = session.get(Notice, notice_id)
    if notice is None or notice.status not in ("draft", "current"):
        return False
    incident = notice.incident
    if incident.status not in ("active", "contained"):
        return False
    if (notice.published_number or 0) != published:
        return False
    due = notice.next_update_due
    if due is None or due > now:
        return False
    first = published == 0
    event = timeline.append(
        incident,
        NoticeEvent.FIRST_OVERDUE if first else NoticeEvent.UPDATE_OVERDUE,
        {"notice": notice.id, "version": published, "due_at": due.isoformat()},
        session=session,
        at=now,
        dedup_key=f"notice-overdue:{notice.id}:{published}",
    )
    if event is None:
        return False
    minutes = max(0, int((now - due).total_seconds() // 60))
    if first:
        text = {
            "zh": f"首次公告逾期：{incident.title}（公告 {notice.id}）尚未发布，"
            f"已超过目标{minutes}分钟。",
            "en": f"First notice overdue: {incident.title} (notice {notice.id}) is not "
            f"published, {minutes} min past its target.",
        }
    else:
        text = {
            "zh": f"公告更新逾期：{incident.title}（公告 {notice.id}）应在{minutes}分钟前更新。",
            "en": f"Notice update overdue: {incident.title} (notice {notice.id}) was due "
            f"{minutes} min ago.",
        }
    paging.alert_duty(
        incident,
        text=text,
        reason=f"notice_overdue:{notice.id}:{published}",
        session=session,
        now=now,
        policy=policy,
    )
    log.warning("notice_overdue", incident_id=incident.id, notice_id=notice.id, version=published)
    return True
