"""Keeping personal data only as long as needed, and re-encrypting it with a new key.

Purge: ``INCIDENT_PASSENGER_RETENTION_DAYS`` after an incident closes, its passengers'
manifest rows are deleted and the personal data of its inquiries and broadcast addresses
(and those deliveries' error texts, which may quote the gateway URL with the number) is
blanked; groups, counts, uploads' statistics, deliveries' statuses stay for reports. Closing
queues a ``passengers.purge`` job; its first run schedules the purge at ``closed_at +
retention``, which then runs in rounds of ``PURGE_ROWS`` (one short transaction each).

Rotation: :func:`rotate_batch` re-encrypts a batch of rows with the current key and hashes
their phone numbers with the current lookup key; ``incident passengers rotate-keys`` runs
it over every table, after which the old key can be dropped from ``INCIDENT_DATA_KEYS``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from incident import jobs, timeline
from incident.errors import Conflict
from incident.logs import get_logger
from incident.models import (
    BroadcastRecipient,
    Delivery,
    DeliveryAttempt,
    Incident,
    Inquiry,
    ManifestUpload,
    Passenger,
    PassengerGroup,
)
from incident.passengers.broadcasts import SEALED_SCHEME
from incident.passengers.events import PassengerEvent
from incident.passengers.manifests import fail_upload
from incident.passengers.privacy import Vault

log = get_logger(__name__)

PURGE_JOB = "passengers.purge"
PURGE_ROWS = 5000
ROTATE_ROWS = 1000
PURGED_ADDRESS = "sms://purged"
STALE_STAGING = timedelta(hours=6)


def schedule_purge(incident: Incident, *, session: Session, now: datetime) -> None:
    """Queue the purge of a closed incident's personal data (its job sets the time)."""
    jobs.enqueue(
        session,
        PURGE_JOB,
        {"incident_id": incident.id, "round": 0},
        key=f"purge:{incident.id}:scheduled",
        run_at=now,
        incident_id=incident.id,
    )


def purge_due(incident: Incident, retention: timedelta) -> datetime | None:
    return None if incident.closed_at is None else incident.closed_at + retention


def run_purge_job(
    incident_id: str, round_: int, *, session: Session, now: datetime, retention: timedelta
) -> int:
    """The purge job: wait until the retention ends, then purge a round at a time."""
    incident = session.get(Incident, incident_id)
    due = purge_due(incident, retention) if incident is not None else None
    if incident is None or due is None or incident.status != "closed":
        return 0
    if now < due:
        jobs.enqueue(
            session,
            PURGE_JOB,
            {"incident_id": incident.id, "round": 0},
            key=f"purge:{incident.id}:{due.isoformat()}:0",
            run_at=due,
            incident_id=incident.id,
        )
        return 0
    deleted, done = purge_round(incident, session=session, now=now)
    if not done:
        jobs.enqueue(
            session,
            PURGE_JOB,
            {"incident_id": incident.id, "round": round_ + 1},
            key=f"purge:{incident.id}:{due.isoformat()}:{round_ + 1}",
            run_at=now,
            incident_id=incident.id,
        )
    return deleted


def purge_round(incident: Incident, *, session: Session, now: datetime) -> tuple[int, bool]:
    """Delete up to PURGE_ROWS manifest rows of the incident; when none are left, blank the
    rest of its personal data. Return (rows deleted, finished)."""
    if incident.status != "closed":
        raise Conflict("only a closed incident's passenger data is purged")
    group_ids = select(PassengerGroup.id).where(PassengerGroup.incident_id == incident.id)
    ids = (
        select(Passenger.id)
        .where(Passenger.group_id.in_(group_ids.scalar_subquery()))
        .limit(PURGE_ROWS)
    )
    result = session.execute(
        delete(Passenger).where(Passenger.id.in_(ids.scalar_subquery())),
        execution_options={"synchronize_session": False},
    )
    deleted = int(result.rowcount)  # type: ignore[attr-defined]
    if deleted >= PURGE_ROWS:
        return deleted, False
    inquiries = session.execute(
        update(Inquiry)
        .where(Inquiry.incident_id == incident.id, Inquiry.personal.is_not(None))
        .values(personal=None, phone_hash=None),
        execution_options={"synchronize_session": False},
    ).rowcount  # type: ignore[attr-defined]
    addresses = session.execute(
        update(Delivery)
        .where(
            Delivery.incident_id == incident.id,
            Delivery.purpose == "broadcast",
            Delivery.address != PURGED_ADDRESS,
        )
        .values(address=PURGED_ADDRESS),
        execution_options={"synchronize_session": False},
    ).rowcount  # type: ignore[attr-defined]
    broadcast_ids = select(Delivery.id).where(
        Delivery.incident_id == incident.id, Delivery.purpose == "broadcast"
    )
    # A gateway's error text can quote the URL with the number in it: errors go too.
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(broadcast_ids.scalar_subquery()), Delivery.last_error.is_not(None))
        .values(last_error=None),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(DeliveryAttempt)
        .where(
            DeliveryAttempt.delivery_id.in_(broadcast_ids.scalar_subquery()),
            DeliveryAttempt.error.is_not(None),
        )
        .values(error=None),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(BroadcastRecipient)
        .where(BroadcastRecipient.delivery_id.in_(broadcast_ids.scalar_subquery()))
        .values(phone_hash=None),
        execution_options={"synchronize_session": False},
    )
    groups = session.scalars(
        select(PassengerGroup).where(PassengerGroup.incident_id == incident.id)
    ).all()
    for group in groups:
        group.passengers_purged_at = group.passengers_purged_at or now
    timeline.append(
        incident,
        PassengerEvent.PURGED,
        {"groups": len(groups), "inquiries": int(inquiries), "addresses": int(addresses)},
        session=session,
        at=now,
        dedup_key="passengers:purged",
    )
    log.info("passengers_purged", incident_id=incident.id)
    return deleted, True


def incidents_to_purge(*, session: Session, now: datetime, retention: timedelta) -> list[str]:
    """Closed incidents past their retention whose passenger data is still there."""
    closed = session.scalars(
        select(Incident.id).where(
            Incident.status == "closed", Incident.closed_at <= now - retention
        )
    ).all()
    if not closed:
        return []
    purged = set(
        session.scalars(
            select(PassengerGroup.incident_id)
            .where(PassengerGroup.incident_id.in_(closed))
            .group_by(PassengerGroup.incident_id)
            .having(func.count(PassengerGroup.passengers_purged_at) == func.count())
        )
    )
    return [i for i in closed if i not in purged]


def fail_stale_uploads(*, session: Session, now: datetime) -> int:
    """Staging uploads left behind by a crash: fail them (their rows are then discarded)."""
    stale = session.scalars(
        select(ManifestUpload.id).where(
            ManifestUpload.status == "staging", ManifestUpload.started_at < now - STALE_STAGING
        )
    ).all()
    for upload_id in stale:
        fail_upload(upload_id, "abandoned while staging", None, session=session, now=now)
    return len(stale)


# -- key rotation -----------------------------------------------------------------------------
def rotate_batch(
    table: str, after: int | str, *, session: Session, vault: Vault
) -> tuple[int | str, int] | None:
    """Re-encrypt one batch of ``table`` (passengers, inquiries, deliveries) with the current
    key; return the last id done and how many rows, or None when the table is finished."""
    if table == "passengers":
        rows = session.scalars(
            select(Passenger)
            .where(Passenger.id > int(after), Passenger.personal.is_not(None))
            .order_by(Passenger.id)
            .limit(ROTATE_ROWS)
        ).all()
        for row in rows:
            assert row.personal is not None
            fields = vault.open(row.personal)
            row.personal = vault.seal(fields)
            phone = fields.get("phone")
            row.phone_hash = vault.phone_hash(phone) if phone else None
        return (rows[-1].id, len(rows)) if rows else None
    if table == "inquiries":
        inquiries = session.scalars(
            select(Inquiry)
            .where(Inquiry.id > str(after), Inquiry.personal.is_not(None))
            .order_by(Inquiry.id)
            .limit(ROTATE_ROWS)
        ).all()
        for inquiry in inquiries:
            assert inquiry.personal is not None
            fields = vault.open(inquiry.personal)
            inquiry.personal = vault.seal(fields)
            phone = fields.get("phone")
            inquiry.phone_hash = vault.phone_hash(phone) if phone else None
        return (inquiries[-1].id, len(inquiries)) if inquiries else None
    if table == "deliveries":
        sealed = session.scalars(
            select(Delivery)
            .where(
                Delivery.id > int(after),
                Delivery.purpose == "broadcast",
                Delivery.address.like(f"{SEALED_SCHEME}%"),
                Delivery.address != PURGED_ADDRESS,
            )
            .order_by(Delivery.id)
            .limit(ROTATE_ROWS)
        ).all()
        for d in sealed:
            fields = vault.open(d.address[len(SEALED_SCHEME) :])
            d.address = SEALED_SCHEME + vault.seal(fields)
            session.execute(
                update(BroadcastRecipient)
                .where(BroadcastRecipient.delivery_id == d.id)
                .values(phone_hash=vault.phone_hash(str(fields.get("p", "")))),
                execution_options={"synchronize_session": False},
            )
        return (sealed[-1].id, len(sealed)) if sealed else None
    raise ValueError(f"unknown table {table!r}")


ROTATED_TABLES = ("passengers", "inquiries", "deliveries")
