"""Manifests: a CSV of a group's passengers, checked row by row, stored encrypted.

:class:`~incident.passengers.manifest_csv.ManifestReader` turns the uploaded bytes into checked
rows. The caller stages rows in batches, one short transaction each (:func:`stage_batch`),
into an upload that nobody sees until :func:`complete_upload` makes it the group's current one
in a last small transaction; a failed upload (:func:`fail_upload`) is never visible and its
rows are deleted by jobs, ``DISCARD_ROWS`` per job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from incident import jobs, timeline
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.models import Incident, ManifestUpload, Passenger, PassengerGroup, new_id
from incident.passengers.events import PassengerEvent
from incident.passengers.manifest_csv import ManifestReader, Report, Row
from incident.passengers.privacy import Vault

__all__ = [
    "BATCH_ROWS",
    "DISCARD_JOB",
    "DISCARD_ROWS",
    "ManifestReader",
    "Report",
    "Row",
    "begin_upload",
    "complete_upload",
    "current_passengers",
    "discard_rows",
    "fail_upload",
    "get_upload",
    "merge_staged",
    "record_export",
    "seal_rows",
    "stage_batch",
]

BATCH_ROWS = 2000
DISCARD_JOB = "manifest.discard"
DISCARD_ROWS = 5000


# -- staging ----------------------------------------------------------------------------------
def begin_upload(
    group: PassengerGroup, *, session: Session, now: datetime, actor: str | None
) -> ManifestUpload:
    """Open a staging upload for a group (invisible until completed)."""
    incident = session.get(Incident, group.incident_id)
    assert incident is not None
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    if group.passengers_purged_at is not None:
        raise Conflict("this group's passenger data was purged")
    upload = ManifestUpload(
        id=new_id("upl"),
        group_id=group.id,
        status="staging",
        rows_read=0,
        rows_stored=0,
        rows_rejected=0,
        rows_merged=0,
        rejected=[],
        started_at=now,
        uploaded_by=actor,
    )
    session.add(upload)
    session.flush()
    return upload


def seal_rows(rows: list[Row], vault: Vault, upload_id: str, group_id: str) -> list[dict[str, Any]]:
    """The database rows for a batch: personal fields sealed, phone hashed (no session)."""
    return [
        {
            "upload_id": upload_id,
            "group_id": group_id,
            "line": row.line,
            "personal": vault.seal(row.personal()),
            "phone_hash": vault.phone_hash(row.phone) if row.phone else None,
            "coach": row.coach,
            "seat": row.seat,
            "language": row.language,
        }
        for row in rows
    ]


def stage_batch(
    upload_id: str,
    sealed: list[dict[str, Any]],
    report: Report,
    *,
    session: Session,
) -> None:
    """Add a batch of sealed rows to a staging upload."""
    upload = session.get(ManifestUpload, upload_id)
    if upload is None or upload.status != "staging":
        raise Conflict("the upload is no longer being staged")
    if sealed:
        session.execute(insert(Passenger), sealed)
    upload.rows_read = report.rows_read
    upload.rows_stored = report.rows_accepted
    upload.rows_rejected = report.rows_rejected
    upload.rows_merged = report.rows_merged


def complete_upload(
    upload_id: str,
    report: Report,
    *,
    session: Session,
    now: datetime,
    actor: str | None,
) -> ManifestUpload:
    """Make a staged upload the group's manifest; the one it replaces is discarded."""
    upload = session.get(ManifestUpload, upload_id)
    if upload is None or upload.status != "staging":
        raise Conflict("the upload is no longer being staged")
    group = session.get(PassengerGroup, upload.group_id)
    assert group is not None
    stored = session.scalar(
        select(func.count()).select_from(Passenger).where(Passenger.upload_id == upload_id)
    )
    if not stored:
        raise ValidationFailed(
            "no row of the manifest could be stored; the current manifest stays",
            [FieldError(f"line {r['line']}", r["reason"]) for r in report.rejected[:100]]
            or [FieldError("file", "the manifest has a header but no rows")],
        )
    upload.status = "complete"
    upload.finished_at = now
    upload.encoding = report.encoding
    upload.rows_read = report.rows_read
    upload.rows_stored = int(stored or 0)
    upload.rows_rejected = report.rows_rejected
    upload.rows_merged = report.rows_merged
    upload.rejected = report.rejected
    previous = group.current_upload_id
    group.current_upload_id = upload.id
    group.updated_at = now
    if previous:
        old = session.get(ManifestUpload, previous)
        if old is not None:
            old.status = "superseded"
        _enqueue_discard(previous, 0, session=session, now=now, incident_id=group.incident_id)
    incident = session.get(Incident, group.incident_id)
    assert incident is not None
    timeline.append(
        incident,
        PassengerEvent.MANIFEST_UPLOADED,
        {
            "group": group.id,
            "upload": upload.id,
            "stored": upload.rows_stored,
            "rejected": upload.rows_rejected,
            "merged": upload.rows_merged,
            "replaces": previous,
        },
        session=session,
        at=now,
        actor=actor,
    )
    return upload


def fail_upload(
    upload_id: str, error: str, report: Report | None, *, session: Session, now: datetime
) -> None:
    """Mark a staging upload failed; its rows are deleted by jobs, never shown."""
    upload = session.get(ManifestUpload, upload_id)
    if upload is None or upload.status != "staging":
        return
    upload.status = "failed"
    upload.error = error[:2000]
    upload.finished_at = now
    if report is not None:
        upload.rows_read = report.rows_read
        upload.rows_rejected = report.rows_rejected
        upload.rejected = report.rejected
    group = session.get(PassengerGroup, upload.group_id)
    _enqueue_discard(
        upload_id, 0, session=session, now=now, incident_id=group.incident_id if group else None
    )


def _enqueue_discard(
    upload_id: str, round_: int, *, session: Session, now: datetime, incident_id: str | None
) -> None:
    jobs.enqueue(
        session,
        DISCARD_JOB,
        {"upload_id": upload_id, "round": round_},
        key=f"discard:{upload_id}:{round_}",
        run_at=now,
        incident_id=incident_id,
    )


def discard_rows(upload_id: str, round_: int, *, session: Session, now: datetime) -> int:
    """Delete up to DISCARD_ROWS rows of an upload that is not current; queue the next round
    while rows remain (each round is one short transaction). Return how many went."""
    upload = session.get(ManifestUpload, upload_id)
    if upload is None or upload.status in ("complete", "staging"):
        return 0
    ids = select(Passenger.id).where(Passenger.upload_id == upload_id).limit(DISCARD_ROWS)
    result = session.execute(
        delete(Passenger).where(Passenger.id.in_(ids.scalar_subquery())),
        execution_options={"synchronize_session": False},
    )
    deleted = int(result.rowcount)  # type: ignore[attr-defined]
    if deleted >= DISCARD_ROWS:
        group = session.get(PassengerGroup, upload.group_id)
        _enqueue_discard(
            upload_id,
            round_ + 1,
            session=session,
            now=now,
            incident_id=group.incident_id if group else None,
        )
    elif upload.status == "superseded":
        upload.status = "discarded"
    return deleted


def get_upload(upload_id: str, *, session: Session) -> ManifestUpload:
    upload = session.get(ManifestUpload, upload_id)
    if upload is None:
        raise NotFound(f"no manifest upload {upload_id!r}")
    return upload


def merge_staged(
    upload_id: str, merges: list[tuple[int, Row]], vault: Vault, *, session: Session
) -> None:
    """Fill rows already staged from their later duplicates (rare: re-read, re-seal)."""
    for line, later in merges:
        staged = session.scalar(
            select(Passenger).where(Passenger.upload_id == upload_id, Passenger.line == line)
        )
        if staged is None or staged.personal is None:
            continue
        fields = vault.open(staged.personal)
        first = Row(
            line=line,
            name=fields.get("name"),
            phone=fields.get("phone"),
            seat=staged.seat,
            coach=staged.coach,
            language=staged.language,
            ticket=fields.get("ticket"),
        )
        if first.fill_from(later):
            staged.personal = vault.seal(first.personal())
            staged.phone_hash = vault.phone_hash(first.phone) if first.phone else None
            staged.seat, staged.coach = first.seat, first.coach
    session.flush()


def current_passengers(
    group: PassengerGroup, *, session: Session, after_id: int = 0, limit: int = 500
) -> list[Passenger]:
    """The group's current manifest, by id, a page at a time."""
    if group.current_upload_id is None:
        return []
    return list(
        session.scalars(
            select(Passenger)
            .where(Passenger.upload_id == group.current_upload_id, Passenger.id > after_id)
            .order_by(Passenger.id)
            .limit(limit)
        )
    )


def record_export(
    group: PassengerGroup, *, session: Session, now: datetime, actor: str | None
) -> int:
    """Put an export of the manifest on the timeline; return how many rows it has."""
    incident = session.get(Incident, group.incident_id)
    assert incident is not None
    if group.passengers_purged_at is not None:
        raise Conflict("this group's passenger data was purged")
    rows = 0
    if group.current_upload_id:
        rows = int(
            session.scalar(
                select(func.count())
                .select_from(Passenger)
                .where(Passenger.upload_id == group.current_upload_id)
            )
            or 0
        )
    timeline.append(
        incident,
        PassengerEvent.EXPORTED,
        {"group": group.id, "upload": group.current_upload_id, "rows": rows},
        session=session,
        at=now,
        actor=actor,
    )
    return rows
