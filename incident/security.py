"""Users, roles and API tokens. Tokens are shown once and stored as SHA-256 digests;
passwords are hashed with Argon2id."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from incident.errors import Conflict, Forbidden, Gone, NotFound, ValidationFailed
from incident.models import ApiToken, Person, User, new_id

ROLES = ("admin", "duty_manager", "staff", "evaluator", "viewer")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is making a request: the user, and the roster person they answer for."""

    user_id: str
    name: str
    role: str
    person_id: str | None

    def may(self, *roles: str) -> bool:
        return self.role == "admin" or self.role in roles

    def require(self, *roles: str) -> None:
        if not self.may(*roles):
            raise Forbidden(f"this needs the role {' or '.join(roles)}; you are {self.role}")

    @property
    def sees_personal_data(self) -> bool:
        return self.role in ("admin", "duty_manager", "staff")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User, *, session: Session, now: datetime) -> str:
    """Create a new API token for ``user``; the plain value is returned only here."""
    token = "inc_" + secrets.token_urlsafe(32)
    session.add(ApiToken(id=new_id("tok"), user_id=user.id, digest=_digest(token), created_at=now))
    return token


def add_user(
    name: str,
    role: str,
    *,
    session: Session,
    now: datetime,
    person_id: str | None = None,
    password: str | None = None,
) -> tuple[User, str]:
    """Create a user with a first API token; return the user and the token."""
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not name or len(name) > 100:
        raise ValidationFailed("a user name needs 1 to 100 characters")
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"a user named {name!r} exists already")
    if person_id is not None and session.get(Person, person_id) is None:
        raise NotFound(f"no person {person_id!r} in the roster")
    user = User(
        id=new_id("usr"),
        name=name,
        role=role,
        person_id=person_id,
        active=True,
        created_at=now,
        password_hash=_hasher.hash(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user, issue_token(user, session=session, now=now)


def user_named(name: str, *, session: Session) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def revoke_tokens(user: User, *, session: Session, now: datetime) -> int:
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def end_sessions(user_id: str, *, session: Session) -> None:
    """End every console session of the user (their session version goes up)."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_version=User.session_version + 1)
        .execution_options(synchronize_session="fetch")
    )


def deactivate(user: User, *, session: Session, now: datetime) -> None:
    user.active = False
    revoke_tokens(user, session=session, now=now)
    session.flush()
    end_sessions(user.id, session=session)


def set_password(user: User, password: str, *, session: Session) -> None:
    """Change the user's console password; every session signed in before ends."""
    if not password or len(password) > 1000:
        raise ValidationFailed("a password needs 1 to 1000 characters")
    user.password_hash = _hasher.hash(password)
    session.flush()
    end_sessions(user.id, session=session)


def principal_for_token(token: str, *, session: Session) -> Principal | None:
    """The active user holding an unrevoked ``token``, or None."""
    row = session.execute(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.digest == _digest(token), ApiToken.revoked_at.is_(None), User.active.is_(True)
        )
    ).scalar_one_or_none()
    return None if row is None else principal_of(row)


def principal_of(user: User) -> Principal:
    return Principal(user.id, user.name, user.role, user.person_id)


def check_password(user: User, password: str) -> bool:
    if not user.password_hash or not user.active:
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class AckLinks:
    """Signed, short-lived, single-use acknowledgement links (single use is enforced by the
    caller recording the nonce)."""

    def __init__(self, secret: str, public_url: str, ttl: timedelta) -> None:
        self._serializer = URLSafeSerializer(secret, salt="incident.ack")
        self._base = public_url.rstrip("/")
        self.ttl = ttl

    def token(self, recipient_id: int, *, now: datetime) -> str:
        expires = int((now + self.ttl).timestamp())
        return str(
            self._serializer.dumps({"r": recipient_id, "n": secrets.token_hex(6), "e": expires})
        )

    def url(self, recipient_id: int, *, now: datetime) -> str:
        return f"{self._base}/ack/{self.token(recipient_id, now=now)}"

    def read(self, token: str, *, now: datetime) -> tuple[int, str]:
        """The recipient id and nonce of a valid token; raises NotFound or Gone."""
        try:
            data = self._serializer.loads(token)
            recipient_id, nonce, expires = int(data["r"]), str(data["n"]), int(data["e"])
        except (BadSignature, KeyError, TypeError, ValueError):
            raise NotFound("this acknowledgement link is not valid") from None
        if now.timestamp() > expires:
            raise Gone("this acknowledgement link has expired")
        return recipient_id, nonce
