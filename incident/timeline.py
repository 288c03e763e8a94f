"""The append-only, hash-chained timeline of each incident.

Every event's ``hash`` is HMAC-SHA256, under an audit key kept in the settings and never in
the database (``INCIDENT_AUDIT_KEYS``, the first current; the event records its key id), over
the previous event's hash and the event's own canonical JSON; events written before keys
(``key_id`` NULL) stay verifiable as legacy SHA-256. The incident row keeps the head and the
count, so an altered, removed (even the last), inserted or reordered event is detected by
:func:`verify`; without the key nobody can re-hash a chain after changing it.

Someone with the key and the database could still rewrite history, and legacy events can be
re-hashed by anyone: :func:`checkpoint` signs each chain's head (incident, seq, hash, time) for
files kept outside the database, and :func:`check_checkpoints` finds any rewrite after one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from incident.db import AUDIT_KEYS_INFO
from incident.models import Incident, TimelineEvent
from incident.settings import DEV_SECRET, Settings, parse_audit_keys

GENESIS = "0" * 64
_EVENTS = cast(Table, TimelineEvent.__table__)
_INCIDENTS = cast(Table, Incident.__table__)


class Kind(StrEnum):
    DECLARED = "incident:declared"
    SEVERITY_CHANGED = "incident:severity_changed"
    FACTS_CHANGED = "incident:facts_changed"
    STATUS_CHANGED = "incident:status_changed"
    STAGE_DUE = "stage:due"
    STAGE_FIRED = "stage:fired"
    STAGE_SKIPPED = "stage:skipped"
    PAGE_REQUESTED = "page:requested"
    PAGE_SENT = "page:opened"
    PAGE_ESCALATED = "page:escalated"
    PAGE_EXHAUSTED = "page:unanswered"
    PAGE_UNREACHABLE = "page:unreachable"
    PAGE_ACKED = "page:acked"
    PAGE_DECLINED = "page:declined"
    NOTICE_REQUESTED = "notice:requested"
    PASSENGER_MESSAGE_REQUESTED = "passenger_message:requested"
    TASK_REQUESTED = "task:requested"
    DRILL_STARTED = "drill:started"
    DRILL_EVALUATED = "drill:evaluated"
    ACTION_CREATED = "corrective_action:created"
    ACTION_OVERDUE = "corrective_action:overdue"
    ACTION_DONE = "corrective_action:done"
    JOB_FAILED = "job:failed"


_DERIVE_LABEL = b"incident.timeline.audit-key"


@dataclass(frozen=True)
class AuditKeys:
    """The timeline's audit keys: (id, secret) pairs, the first current."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditKeys:
        """``INCIDENT_AUDIT_KEYS``, or (development) a key derived from the secret key."""
        listed = parse_audit_keys(str(settings.audit_keys))
        return cls(tuple(listed)) if listed else cls.derived(str(settings.secret_key))

    @classmethod
    def derived(cls, secret: str) -> AuditKeys:
        """A key derived from the secret key, named by its fingerprint (a changed secret key
        shows as an unknown key, not as altered events)."""
        key = hmac.new(secret.encode(), _DERIVE_LABEL, hashlib.sha256).digest()
        return cls((("derived-" + hashlib.sha256(key).hexdigest()[:8], key),))

    @property
    def current(self) -> tuple[str, bytes]:
        return self.keys[0]

    def get(self, key_id: str) -> bytes | None:
        return next((key for found, key in self.keys if found == key_id), None)


_DEVELOPMENT_KEYS = AuditKeys.derived(DEV_SECRET)


def keys_of(session: Session) -> AuditKeys:
    """The audit keys the session's database was given (the development keys without)."""
    found = session.info.get(AUDIT_KEYS_INFO)
    return found if isinstance(found, AuditKeys) else _DEVELOPMENT_KEYS


def canonical(payload: Any) -> str:
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _digest(
    prev_hash: str,
    incident_id: str,
    seq: int,
    kind: str,
    at: datetime,
    actor: str | None,
    data: dict[str, Any],
    key: bytes | None = None,
) -> str:
    """The event's hash: HMAC-SHA256 under ``key``; a legacy event (no key): SHA-256."""
    body = canonical(
        {
            "incident": incident_id,
            "seq": seq,
            "kind": kind,
            "at": at.isoformat(),
            "actor": actor,
            "data": data,
        }
    )
    if key is None:
        return hashlib.sha256((prev_hash + body).encode()).hexdigest()
    return hmac.new(key, (prev_hash + body).encode(), hashlib.sha256).hexdigest()


def append(
    incident: Incident,
    kind: Kind | str,
    data: dict[str, Any] | None = None,
    *,
    session: Session,
    at: datetime,
    actor: str | None = None,
    dedup_key: str | None = None,
) -> TimelineEvent | None:
    """Append one event; with ``dedup_key``, an event already recorded is not added twice.

    Three Core statements on the session's connection (no unit of work: every state change
    writes one or more events, so this is on the hot path of declaring and firing)."""
    session.flush()  # the incident row and whatever the caller changed go first
    conn = session.connection()
    if dedup_key is not None:
        seen = conn.execute(
            select(_EVENTS.c.id).where(
                _EVENTS.c.incident_id == incident.id, _EVENTS.c.dedup_key == dedup_key
            )
        ).first()
        if seen is not None:
            return None
    # The UPDATE takes the incident's row lock, so concurrent appends get distinct sequences.
    seq, prev = conn.execute(
        update(_INCIDENTS)
        .where(_INCIDENTS.c.id == incident.id)
        .values(timeline_seq=_INCIDENTS.c.timeline_seq + 1)
        .returning(_INCIDENTS.c.timeline_seq, _INCIDENTS.c.timeline_head)
    ).one()
    prev_hash = prev or GENESIS
    payload = data or {}
    key_id, key = keys_of(session).current
    event = TimelineEvent(
        incident_id=incident.id,
        seq=seq,
        kind=str(kind),
        at=at,
        actor=actor,
        data=payload,
        dedup_key=dedup_key,
        prev_hash=prev_hash,
        hash=_digest(prev_hash, incident.id, seq, str(kind), at, actor, payload, key),
        key_id=key_id,
    )
    event.id = conn.execute(
        insert(_EVENTS)
        .values(
            incident_id=event.incident_id,
            seq=seq,
            kind=event.kind,
            at=at,
            actor=actor,
            data=payload,
            dedup_key=dedup_key,
            prev_hash=prev_hash,
            hash=event.hash,
            key_id=key_id,
        )
        .returning(_EVENTS.c.id)
    ).scalar_one()
    conn.execute(
        update(_INCIDENTS).where(_INCIDENTS.c.id == incident.id).values(timeline_head=event.hash)
    )
    session.expire(incident, ["timeline_seq", "timeline_head"])
    return event  # a record of what was written (not in the session)


def events(
    incident_id: str, *, session: Session, after_seq: int = 0, limit: int | None = None
) -> list[TimelineEvent]:
    query = (
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id, TimelineEvent.seq > after_seq)
        .order_by(TimelineEvent.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def verify(incident_id: str, *, session: Session, keys: AuditKeys | None = None) -> list[str]:
    """Return what is wrong with the incident's chain (empty when intact)."""
    keys = keys or keys_of(session)
    incident = session.get(Incident, incident_id)
    if incident is None:
        return [f"{incident_id}: no such incident"]
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    keyed = False
    for ev in events(incident_id, session=session):
        if ev.seq != expected_seq:
            problems.append(f"{incident_id}: event #{expected_seq} missing (found #{ev.seq})")
            expected_seq = ev.seq
        if ev.prev_hash != prev:
            problems.append(f"{incident_id}: event #{ev.seq} does not follow the event before it")
        key = None if ev.key_id is None else keys.get(ev.key_id)
        if ev.key_id is not None and key is None:
            problems.append(
                f"{incident_id}: event #{ev.seq} is keyed with an unknown audit key "
                f"{ev.key_id!r} (add it to INCIDENT_AUDIT_KEYS)"
            )
        elif ev.key_id is None and keyed:
            problems.append(f"{incident_id}: event #{ev.seq} is unkeyed after keyed events")
        else:
            recomputed = _digest(
                ev.prev_hash, incident_id, ev.seq, ev.kind, ev.at, ev.actor, ev.data, key
            )
            if not hmac.compare_digest(recomputed, ev.hash):
                problems.append(f"{incident_id}: event #{ev.seq} was altered")
        keyed = keyed or ev.key_id is not None
        prev = ev.hash
        expected_seq += 1
    if incident.timeline_seq != expected_seq - 1 or (incident.timeline_head or GENESIS) != prev:
        problems.append(
            f"{incident_id}: chain ends at #{expected_seq - 1} but the incident records "
            f"#{incident.timeline_seq}: events were removed or added"
        )
    return problems


# -- checkpoints: chain heads signed for keeping outside the database -----------------------
_CHECKPOINT_FIELDS = ("incident", "seq", "hash", "time", "key")


def _sign(entry: dict[str, Any], key: bytes) -> str:
    body = canonical({name: entry.get(name) for name in _CHECKPOINT_FIELDS})
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def checkpoint(
    *, session: Session, now: datetime, keys: AuditKeys | None = None
) -> list[dict[str, Any]]:
    """The signed head of every incident's chain: incident, seq, hash, time, key, hmac."""
    keys = keys or keys_of(session)
    key_id, key = keys.current
    heads = session.execute(
        select(Incident.id, Incident.timeline_seq, Incident.timeline_head)
        .where(Incident.timeline_seq > 0)
        .order_by(Incident.id)
    ).all()
    entries = []
    for incident_id, seq, head in heads:
        entry: dict[str, Any] = {
            "incident": incident_id,
            "seq": int(seq),
            "hash": head,
            "time": now.isoformat(),
            "key": key_id,
        }
        entry["hmac"] = _sign(entry, key)
        entries.append(entry)
    return entries


def check_checkpoints(
    entries: Iterable[tuple[str, dict[str, Any]]],
    *,
    session: Session,
    keys: AuditKeys | None = None,
    incident_ids: Iterable[str] | None = None,
) -> list[str]:
    """What the database no longer agrees with: each (where, entry) is a signed checkpoint
    (``where`` names its file and line); the event it names must still have its hash."""
    keys = keys or keys_of(session)
    only = None if incident_ids is None else set(incident_ids)
    problems: list[str] = []
    for where, entry in entries:
        incident_id = str(entry.get("incident", ""))
        if only is not None and incident_id not in only:
            continue
        key = keys.get(str(entry.get("key", "")))
        signature = str(entry.get("hmac", ""))
        if key is None or not hmac.compare_digest(_sign(entry, key), signature):
            problems.append(f"{where}: the checkpoint's signature does not verify")
            continue
        seq, when = entry.get("seq"), entry.get("time")
        found = session.execute(
            select(TimelineEvent.hash).where(
                TimelineEvent.incident_id == incident_id, TimelineEvent.seq == seq
            )
        ).scalar_one_or_none()
        if session.get(Incident, incident_id) is None:
            problems.append(f"{incident_id}: removed after the checkpoint of {when} ({where})")
        elif found is None:
            problems.append(
                f"{incident_id}: event #{seq} was removed after the checkpoint of {when} ({where})"
            )
        elif not hmac.compare_digest(str(found), str(entry.get("hash"))):
            problems.append(
                f"{incident_id}: the chain up to event #{seq} was rewritten after the "
                f"checkpoint of {when} ({where})"
            )
    return problems
