"""Remembered results of POSTs sent with an ``Idempotency-Key`` (kept 24 hours)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from incident.errors import IdempotencyMismatch, ValidationFailed
from incident.models import IdempotencyRecord

KEEP = timedelta(hours=24)
KEY_MAX = 200


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def recall(
    user_id: str, route: str, key: str, request_digest: str, *, session: Session, now: datetime
) -> tuple[int, dict[str, Any]] | None:
    """The stored response for this key, or None; a different body with the key is refused."""
    if not key or len(key) > KEY_MAX:
        raise ValidationFailed(f"Idempotency-Key must have 1 to {KEY_MAX} characters")
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id,
            IdempotencyRecord.route == route,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at > now - KEEP,
        )
    )
    if record is None:
        return None
    if record.request_digest != request_digest:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request body")
    return record.status_code, record.response


def remember(
    user_id: str,
    route: str,
    key: str,
    request_digest: str,
    status: int,
    response: dict[str, Any],
    *,
    session: Session,
    now: datetime,
) -> None:
    session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id,
            IdempotencyRecord.route == route,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at <= now - KEEP,
        )
    )
    session.add(
        IdempotencyRecord(
            user_id=user_id,
            route=route,
            key=key,
            request_digest=request_digest,
            status_code=status,
            response=response,
            created_at=now,
        )
    )
    session.flush()
