"""Who is calling: bearer tokens for the API."""

from __future__ import annotations

from starlette.requests import Request

from incident.errors import AuthError
from incident.security import Principal, principal_for_token
from incident.web.state import state_of


def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 without a valid one."""
    cached = request.scope.get("incident.principal")
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("send Authorization: Bearer <token>")
    with state_of(request).db.reading() as session:
        found = principal_for_token(token.strip(), session=session)
    if found is None:
        raise AuthError("the token is unknown, revoked, or its user is deactivated")
    request.scope["incident.principal"] = found
    return found
