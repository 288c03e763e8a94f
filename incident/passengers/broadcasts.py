"""Broadcasts: one message to every passenger of some groups, each a durable delivery.

A broadcast is started in one small transaction (its text rendered, a ``broadcast.prepare``
job queued); the job then makes its recipients and deliveries ``PREPARE_CHUNK`` passengers
per transaction (one per distinct phone number, in the passenger's language), so a large
manifest never holds the database for long. The worker sends the deliveries like any other
and their outcome is each recipient's status. A drill's broadcast goes only to
``INCIDENT_DRILL_TEST_NUMBERS``, never to a passenger.

A delivery's address is stored sealed: ``sms://<Fernet token of {phone, gateway template}>``;
:func:`sending_address` opens it just before sending (the worker's hook), so the database
never holds a phone number in clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import TemplateError
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from incident import delivery, jobs, timeline
from incident.channel_limits import Rate
from incident.errors import ConfigError, Conflict, FieldError, NotFound, ValidationFailed
from incident.logs import get_logger
from incident.models import (
    Broadcast,
    BroadcastRecipient,
    Delivery,
    Incident,
    Passenger,
    PassengerGroup,
    new_id,
)
from incident.passengers.events import PassengerEvent
from incident.passengers.privacy import InvalidToken, Vault, parse_numbers
from incident.playbook import Action, Playbook, render_template
from incident.settings import Settings

log = get_logger(__name__)

PREPARE_JOB = "broadcast.prepare"
PREPARE_CHUNK = 1000
SEALED_SCHEME = "sms://"
UNOPENABLE = "sms://undecryptable"  # fails as "not a valid apprise URL": never sent
DRILL_MARK = "【演练 DRILL】"
_DRILL_PREFIXES = ("【演练", "[DRILL", "DRILL", "[EXERCISE", "演练")
_STATUS_GROUPS = {
    "queued": "queued",
    "sending": "queued",
    "retrying": "queued",
    "held": "queued",
    "delivered": "sent",
    "failed": "failed",
}


def _context(incident: Incident, *, now: datetime, stage_key: str | None) -> dict[str, Any]:
    return {
        **incident.facts,
        "incident_id": incident.id,
        "title": incident.title,
        "severity": incident.severity,
        "mode": incident.mode,
        "declared_at": incident.declared_at,
        "now": now,
        "stage": stage_key,
    }


def render(
    incident: Incident,
    playbook: Playbook | None,
    template: str,
    *,
    now: datetime,
    zone: ZoneInfo,
    stage_key: str | None,
) -> dict[str, str]:
    """A playbook template in zh and en; ValidationFailed when it does not exist or fails."""
    if playbook is None or template not in playbook.templates:
        names = ", ".join(sorted(playbook.templates)) if playbook else "none"
        raise ValidationFailed(
            "unknown template",
            [FieldError("template", f"unknown template; this playbook has {names}")],
        )
    context = _context(incident, now=now, stage_key=stage_key)
    try:
        return {
            lang: render_template(playbook, template, lang, context, tz=zone)
            for lang in ("zh", "en")
        }
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise ValidationFailed(
            "the template failed to render",
            [FieldError("template", f"the template failed to render: {exc}")],
        ) from None


def start(
    incident: Incident,
    *,
    group_ids: list[str],
    texts: Mapping[str, str],
    origin: str,
    session: Session,
    now: datetime,
    actor: str | None,
    template: str | None = None,
    offer: str | None = None,
) -> Broadcast:
    """Start a broadcast (once per origin): its deliveries are made by jobs."""
    found = session.scalar(
        select(Broadcast).where(Broadcast.incident_id == incident.id, Broadcast.origin == origin)
    )
    if found is not None:
        return found
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    known = set(
        session.scalars(
            select(PassengerGroup.id).where(
                PassengerGroup.incident_id == incident.id, PassengerGroup.id.in_(group_ids)
            )
        )
    )
    missing = [g for g in group_ids if g not in known]
    if missing:
        raise ValidationFailed(
            "unknown passenger groups",
            [FieldError("groups", f"not groups of this incident: {', '.join(missing)}")],
        )
    if incident.mode == "drill":
        texts = {k: _drill_marked(v) for k, v in texts.items()}
    broadcast = Broadcast(
        id=new_id("bc"),
        incident_id=incident.id,
        origin=origin,
        group_ids=list(dict.fromkeys(group_ids)),
        template=template,
        texts=dict(texts),
        offer=offer,
        mode=incident.mode,
        status="preparing",
        total=0,
        resends=0,
        created_at=now,
        created_by=actor,
    )
    session.add(broadcast)
    session.flush()
    _enqueue_prepare(broadcast, 0, session=session, now=now)
    timeline.append(
        incident,
        PassengerEvent.BROADCAST_STARTED,
        {
            "broadcast": broadcast.id,
            "groups": broadcast.group_ids,
            "template": template,
            "offer": offer,
            "mode": incident.mode,
        },
        session=session,
        at=now,
        actor=actor,
    )
    log.info("broadcast_started", broadcast_id=broadcast.id, incident_id=incident.id)
    return broadcast


def from_action(
    incident: Incident,
    playbook: Playbook,
    action: Action,
    *,
    origin: str,
    stage_key: str,
    session: Session,
    now: datetime,
    zone: ZoneInfo,
) -> Broadcast | None:
    """A playbook ``passenger_message`` action: message every group of the incident."""
    template = str(action.params.get("template") or "")
    offer = action.params.get("offer")
    group_ids = list(
        session.scalars(
            select(PassengerGroup.id)
            .where(PassengerGroup.incident_id == incident.id)
            .order_by(PassengerGroup.created_at, PassengerGroup.id)
        )
    )
    try:
        texts = render(incident, playbook, template, now=now, zone=zone, stage_key=stage_key)
    except ValidationFailed as exc:
        log.warning("broadcast_template_failed", incident_id=incident.id, error=str(exc))
        texts = {}
    broadcast = start(
        incident,
        group_ids=group_ids,
        texts=texts,
        origin=origin,
        session=session,
        now=now,
        actor=None,
        template=template,
        offer=str(offer) if offer else None,
    )
    if not texts and broadcast.status == "preparing":
        _unsent(broadcast, incident, "the template failed to render", session=session, now=now)
    return broadcast


def _drill_marked(text: str) -> str:
    return text if text.lstrip().startswith(_DRILL_PREFIXES) else f"{DRILL_MARK}{text}"


def _enqueue_prepare(broadcast: Broadcast, after: int, *, session: Session, now: datetime) -> None:
    jobs.enqueue(
        session,
        PREPARE_JOB,
        {"broadcast_id": broadcast.id, "after": after},
        key=f"broadcast:{broadcast.id}:prepare:{after}",
        run_at=now,
        incident_id=broadcast.incident_id,
        lane=delivery.lane_for("broadcast", drill=broadcast.mode == "drill"),
    )


def _unsent(
    broadcast: Broadcast, incident: Incident, reason: str, *, session: Session, now: datetime
) -> None:
    broadcast.status = "unsent"
    broadcast.error = reason
    broadcast.prepared_at = now
    timeline.append(
        incident,
        PassengerEvent.BROADCAST_UNSENT,
        {"broadcast": broadcast.id, "reason": reason},
        session=session,
        at=now,
    )
    log.info("broadcast_unsent", broadcast_id=broadcast.id, reason=reason)


def seal_address(vault: Vault, phone: str, gateway: str) -> str:
    return SEALED_SCHEME + vault.seal({"p": phone, "u": gateway})


def sending_target(stored: str, settings: Settings) -> tuple[str, dict[str, str] | None]:
    """What a sealed broadcast address stands for (the worker's hook): the gateway's URL
    template and the number for its ``{phone}``, so the template is parsed once per
    broadcast rather than once per number."""
    if not stored.startswith(SEALED_SCHEME):
        return stored, None
    try:
        fields = Vault.from_settings(settings).open(stored[len(SEALED_SCHEME) :])
        return str(fields["u"]), {"phone": str(fields["p"])}
    except (InvalidToken, KeyError, ValueError, ConfigError):
        log.error("broadcast_address_unreadable")
        return UNOPENABLE, None


def sending_address(stored: str, settings: Settings) -> str:
    """The apprise URL a sealed broadcast address stands for, number filled in."""
    template, values = sending_target(stored, settings)
    if not values:
        return template
    return template.replace("{phone}", quote(values["phone"], safe=""))


def phone_of(stored: str, vault: Vault) -> str | None:
    """The phone number in a sealed address (None when purged or unreadable)."""
    if not stored.startswith(SEALED_SCHEME):
        return None
    try:
        return str(vault.open(stored[len(SEALED_SCHEME) :])["p"])
    except (InvalidToken, KeyError, ValueError):
        return None


def prepare(
    broadcast_id: str, after: int, *, session: Session, now: datetime, settings: Settings
) -> int:
    """Make the next chunk of a broadcast's recipients and deliveries; return how many."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.status != "preparing":
        return 0
    gateway = str(settings.sms_gateway)
    if not gateway:
        _unsent(
            broadcast,
            _incident_of(broadcast, session),
            "no SMS gateway (INCIDENT_SMS_GATEWAY)",
            session=session,
            now=now,
        )
        return 0
    vault = Vault.from_settings(settings)
    if broadcast.mode == "drill":
        incident = _incident_of(broadcast, session)
        made = _prepare_drill(
            broadcast, incident, gateway, vault, session=session, now=now, settings=settings
        )
        _prepared(broadcast, incident, session=session, now=now)
        return made
    uploads = [
        u
        for u in session.scalars(
            select(PassengerGroup.current_upload_id).where(
                PassengerGroup.id.in_(broadcast.group_ids)
            )
        )
        if u
    ]
    rows = (
        list(
            session.execute(
                select(
                    Passenger.id,
                    Passenger.group_id,
                    Passenger.personal,
                    Passenger.phone_hash,
                    Passenger.language,
                )
                .where(
                    Passenger.upload_id.in_(uploads),
                    Passenger.id > after,
                    Passenger.phone_hash.is_not(None),
                )
                .order_by(Passenger.id)
                .limit(PREPARE_CHUNK)
            )
        )
        if uploads
        else []
    )
    hashes = {r.phone_hash for r in rows}
    taken = set(
        session.scalars(
            select(BroadcastRecipient.phone_hash).where(
                BroadcastRecipient.broadcast_id == broadcast.id,
                BroadcastRecipient.phone_hash.in_(hashes),
            )
        )
    )
    chosen = []
    for r in rows:
        if r.phone_hash in taken or r.personal is None:
            continue
        taken.add(r.phone_hash)
        chosen.append(r)
    made = _make(
        broadcast,
        [
            (r.id, r.group_id, r.phone_hash, r.language, vault.open(r.personal).get("phone"))
            for r in chosen
        ],
        gateway,
        vault,
        session=session,
        now=now,
        pace=gateway_pace(settings),
    )
    if len(rows) == PREPARE_CHUNK:
        _enqueue_prepare(broadcast, rows[-1].id, session=session, now=now)
    else:
        _prepared(broadcast, _incident_of(broadcast, session), session=session, now=now)
    return made


def _incident_of(broadcast: Broadcast, session: Session) -> Incident:
    """The broadcast's incident, loaded only when the timeline needs it (loading one brings
    its playbook version and stages: too much for every chunk)."""
    incident = session.get(Incident, broadcast.incident_id)
    assert incident is not None
    return incident


def _prepare_drill(
    broadcast: Broadcast,
    incident: Incident,
    gateway: str,
    vault: Vault,
    *,
    session: Session,
    now: datetime,
    settings: Settings,
) -> int:
    """A drill messages its test numbers only, never a passenger."""
    try:
        numbers = parse_numbers(settings.drill_test_numbers, settings.phone_region)
    except ConfigError as exc:
        _unsent(broadcast, incident, str(exc), session=session, now=now)
        return 0
    if not numbers:
        _unsent(
            broadcast,
            incident,
            "a drill messages only test numbers, and none are set (INCIDENT_DRILL_TEST_NUMBERS)",
            session=session,
            now=now,
        )
        return 0
    return _make(
        broadcast,
        [(None, None, vault.phone_hash(n), "zh", n) for n in numbers],
        gateway,
        vault,
        session=session,
        now=now,
    )


def gateway_pace(settings: Settings) -> float | None:
    """Messages per second the SMS gateway takes (INCIDENT_SMS_GATEWAY_RATE), if limited."""
    if not settings.sms_gateway_rate.strip():
        return None
    rate = Rate.parse(settings.sms_gateway_rate, setting="INCIDENT_SMS_GATEWAY_RATE")
    return rate.count / rate.window


def paced(broadcast: Broadcast, seq: int, pace: float | None, now: datetime) -> datetime:
    """When a broadcast's ``seq``-th message is due: at the gateway's pace from the start of
    the broadcast. Two broadcasts then take turns at the gateway (the worker takes the
    oldest due first) instead of the second waiting for all of the first (#15)."""
    if pace is None:
        return now
    return max(now, broadcast.created_at + timedelta(seconds=(seq - 1) / pace))


def _make(
    broadcast: Broadcast,
    targets: list[tuple[int | None, str | None, str, str, Any]],
    gateway: str,
    vault: Vault,
    *,
    session: Session,
    now: datetime,
    pace: float | None = None,
) -> int:
    """Recipients and their deliveries, in one batch; targets are (passenger id, group,
    phone hash, language, E.164 number)."""
    specs = []
    kept = []
    for offset, (passenger_id, group_id, phone_hash, language, phone) in enumerate(targets):
        if not phone:
            continue
        seq = broadcast.total + offset + 1
        text = broadcast.texts.get(language) or broadcast.texts.get("zh") or ""
        who = f"p{passenger_id}" if passenger_id is not None else f"t{seq}"
        specs.append(
            delivery.Spec(
                purpose="broadcast",
                address=seal_address(vault, str(phone), gateway),
                subject=f"{broadcast.id}#{seq}",
                body=text,
                idempotency_key=f"bc:{broadcast.id}:{who}",
                incident_id=broadcast.incident_id,
                lane=delivery.lane_for("broadcast", drill=broadcast.mode == "drill"),
                run_at=paced(broadcast, seq, pace, now),
            )
        )
        kept.append((passenger_id, group_id, phone_hash, language))
    if not specs:
        return 0
    made = delivery.insert_many(specs, session=session, now=now)
    session.execute(
        insert(BroadcastRecipient),
        [
            {
                "broadcast_id": broadcast.id,
                "passenger_id": passenger_id,
                "group_id": group_id,
                "phone_hash": phone_hash,
                "language": language,
                "delivery_id": delivery_id,
                "sends": 1,
            }
            for (passenger_id, group_id, phone_hash, language), delivery_id in zip(
                kept, made, strict=True
            )
        ],
    )
    broadcast.total += len(made)
    return len(made)


def _prepared(broadcast: Broadcast, incident: Incident, *, session: Session, now: datetime) -> None:
    if broadcast.status != "preparing":
        return
    broadcast.status = "sending"
    broadcast.prepared_at = now
    timeline.append(
        incident,
        PassengerEvent.BROADCAST_PREPARED,
        {"broadcast": broadcast.id, "recipients": broadcast.total},
        session=session,
        at=now,
    )


def get_broadcast(broadcast_id: str, *, session: Session) -> Broadcast:
    found = session.get(Broadcast, broadcast_id)
    if found is None:
        raise NotFound(f"no broadcast {broadcast_id!r}")
    return found


def counts(broadcast: Broadcast, *, session: Session) -> dict[str, int]:
    """Recipients by status: queued (still being sent), sent, failed."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .join(BroadcastRecipient, BroadcastRecipient.delivery_id == Delivery.id)
        .where(BroadcastRecipient.broadcast_id == broadcast.id)
        .group_by(Delivery.status)
    ).all()
    out = {"queued": 0, "sent": 0, "failed": 0}
    for status, n in rows:
        key = _STATUS_GROUPS.get(str(status), "queued")
        out[key] += int(n)
    return out


def recipients(
    broadcast: Broadcast, *, session: Session, after: int = 0, limit: int = 100
) -> list[tuple[BroadcastRecipient, Delivery | None]]:
    """Recipients with their current delivery, by id, a page at a time."""
    rows = session.execute(
        select(BroadcastRecipient, Delivery)
        .outerjoin(Delivery, Delivery.id == BroadcastRecipient.delivery_id)
        .where(BroadcastRecipient.broadcast_id == broadcast.id, BroadcastRecipient.id > after)
        .order_by(BroadcastRecipient.id)
        .limit(limit)
    ).all()
    return [(r, d) for r, d in rows]


def resend_failed(
    broadcast: Broadcast, *, session: Session, now: datetime, actor: str | None
) -> int:
    """Send again to the recipients whose delivery failed (only those); return how many."""
    incident = session.get(Incident, broadcast.incident_id)
    assert incident is not None
    if broadcast.status == "preparing":
        raise Conflict("the broadcast is still being prepared")
    failed = session.execute(
        select(BroadcastRecipient, Delivery)
        .join(Delivery, Delivery.id == BroadcastRecipient.delivery_id)
        .where(BroadcastRecipient.broadcast_id == broadcast.id, Delivery.status == "failed")
        .order_by(BroadcastRecipient.id)
    ).all()
    if not failed:
        return 0
    if any(not d.address.startswith(SEALED_SCHEME) for _, d in failed):
        raise Conflict("the passengers' personal data was purged")
    broadcast.resends += 1
    specs = [
        delivery.Spec(
            purpose="broadcast",
            address=d.address,
            subject=d.subject,
            body=d.body,
            idempotency_key=f"{d.idempotency_key.split(':r')[0]}:r{broadcast.resends}",
            incident_id=broadcast.incident_id,
            lane=delivery.lane_for("broadcast", drill=broadcast.mode == "drill"),
        )
        for _, d in failed
    ]
    made = delivery.insert_many(specs, session=session, now=now)
    for (recipient, _), delivery_id in zip(failed, made, strict=True):
        recipient.delivery_id = delivery_id
        recipient.sends += 1
    timeline.append(
        incident,
        PassengerEvent.BROADCAST_RESENT,
        {"broadcast": broadcast.id, "recipients": len(made), "round": broadcast.resends},
        session=session,
        at=now,
        actor=actor,
    )
    return len(made)


def broadcasts_of(incident_id: str, *, session: Session) -> list[Broadcast]:
    return list(
        session.scalars(
            select(Broadcast)
            .where(Broadcast.incident_id == incident_id)
            .order_by(Broadcast.created_at.desc(), Broadcast.id.desc())
        )
    )
