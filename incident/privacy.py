"""Masking personal data out of free text that is stored or shown: delivery errors.

Error texts of HTTP clients (aiohttp, apprise) quote the URL they failed on, and an SMS
gateway's URL holds the passenger's number, often URL-encoded (``.../sms/%2B8613812345678``).
:func:`mask_error` is what such a text goes through before it is stored (the delivery code
calls it) or shown (the API and console call it): the same masking as the logs, applied to the
text and to its URL-decoded form.
"""

from __future__ import annotations

from urllib.parse import unquote

from incident.logs import mask_text

ERROR_MAX = 500


def mask_error(text: str) -> str:
    """``text`` with every phone-like number masked (also URL-encoded ones), at most
    ``ERROR_MAX`` characters."""
    decoded = text
    for _ in range(3):  # %252B -> %2B -> +
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
    return mask_text(decoded)[:ERROR_MAX]


def mask_optional(text: str | None) -> str | None:
    """:func:`mask_error` of a text that may be missing."""
    return None if text is None else mask_error(text)
