"""Reading request bodies and query parameters, with clear errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from incident.errors import FieldError, ValidationFailed
from incident.web.problems import BadRequest
from incident.web.state import state_of

MAX_ROW_ID = 2**63 - 1  # the largest id a database integer column holds
MAX_JSON_DEPTH = 32  # deeper bodies are refused (400) before anything walks them


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past the configured size."""
    limit = state_of(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body is larger than {limit} bytes", status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"the body is larger than {limit} bytes", status=413)
    return bytes(body)


async def read_json_object(
    request: Request, *, allowed: Collection[str] | None = None
) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object, and its raw bytes; with ``allowed``, a field it does not
    name is refused (422) rather than ignored."""
    raw = await read_body(request)
    value = _json_object(request, raw)
    if allowed is not None:
        reject_unknown(value, allowed)
    return value, raw


async def read_action_body(request: Request) -> bytes:
    """The body of an action that takes no fields (fire, acknowledge, publish, re-send):
    nothing, or ``{}``; any field is refused (422), a large body too (413). Returns the raw
    bytes (an ``Idempotency-Key`` compares them)."""
    raw = await read_body(request)
    if raw.strip():
        reject_unknown(_json_object(request, raw), ())
    return raw


def _json_object(request: Request, raw: bytes) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype not in ("application/json", "application/merge-patch+json", ""):
        raise BadRequest("send the body as application/json", status=415)
    try:
        value = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    if json_depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def unknown_fields(
    body: Mapping[str, Any], allowed: Collection[str], *, prefix: str = ""
) -> list[FieldError]:
    """One error per field of ``body`` that ``allowed`` does not name (``prefix`` places
    them in a nested object, e.g. ``corrective_actions.0.``)."""
    return [
        FieldError(f"{prefix}{name}", "is not a field of this request")
        for name in sorted(set(body) - set(allowed), key=str)
    ]


def reject_unknown(body: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Refuse (422, naming each field) a body with fields the route does not take: a field
    such as ``role``, ``id`` or ``status`` is never silently ignored."""
    errors = unknown_fields(body, allowed)
    if errors:
        names = ", ".join(e.field for e in errors)
        raise ValidationFailed(f"this request does not take the fields: {names}", errors)


def limit_param(request: Request, default: int = 50, maximum: int = 500) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not _is_number(raw) or not 1 <= int(raw) <= maximum:
        raise BadRequest(f"limit must be an integer from 1 to {maximum}")
    return int(raw)


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def decode_cursor(request: Request, count: int) -> list[str] | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        parts = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the cursor is not valid") from None
    if len(parts) != count:
        raise BadRequest("the cursor is not valid")
    return parts


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes '²', which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def seq_cursor(request: Request) -> int:
    """The position a one-part cursor carries (a sequence number or row id; 0 without one)."""
    cursor = decode_cursor(request, 1)
    if cursor is None:
        return 0
    if not _is_number(cursor[0]) or int(cursor[0]) > MAX_ROW_ID:
        raise BadRequest("the cursor is not valid")
    return int(cursor[0])


def time_cursor(request: Request) -> tuple[datetime, str] | None:
    """The (moment, id) a two-part cursor carries, the moment in UTC; None without one."""
    cursor = decode_cursor(request, 2)
    if cursor is None:
        return None
    try:
        moment = datetime.fromisoformat(cursor[0])
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment.astimezone(UTC), cursor[1]
    except (ValueError, OverflowError):
        raise BadRequest("the cursor is not valid") from None
