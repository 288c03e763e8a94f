"""Reading request bodies and query parameters, with clear errors."""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.requests import Request

from incident.web.problems import BadRequest
from incident.web.state import state_of


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past the configured size."""
    limit = state_of(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body is larger than {limit} bytes", status=413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"the body is larger than {limit} bytes", status=413)
    return body


async def read_json_object(request: Request) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object, and its raw bytes."""
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype not in ("application/json", "application/merge-patch+json", ""):
        raise BadRequest("send the body as application/json", status=415)
    raw = await read_body(request)
    try:
        value = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    return value, raw


def limit_param(request: Request, default: int = 50, maximum: int = 500) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
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
