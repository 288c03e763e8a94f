"""Passenger personal data: encryption at rest, keyed-hash lookup, masking, phone numbers.

Personal fields are stored as one Fernet token per row (a small JSON object), encrypted with
the first of ``INCIDENT_DATA_KEYS`` and readable with any of them (MultiFernet), so keys
rotate: put a new key first, run ``incident passengers rotate-keys``, drop the old key.
Phone numbers are found by HMAC-SHA256 over the E.164 number with a lookup key derived from
each data key; lookups try every key's hash, so they work during a rotation too.

Without ``INCIDENT_DATA_KEYS`` a key is derived from ``INCIDENT_SECRET_KEY``: fine for the
demo, not for production (the secret key then protects both links and data).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import phonenumbers
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from phonenumbers.phonemetadata import PhoneMetadata

from incident.errors import ConfigError
from incident.settings import Settings

__all__ = ["InvalidToken", "Vault", "mask_name", "mask_phone", "normalise_phone", "vault_for"]

_LOOKUP_LABEL = b"incident.passengers.phone-lookup"
_DEV_LABEL = b"incident.passengers.dev-data-key\x00"


class Vault:
    """Encrypts and decrypts personal data; hashes phone numbers for lookup."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigError("INCIDENT_DATA_KEYS: at least one key is needed")
        try:
            self._fernets = [Fernet(k) for k in keys]
        except (ValueError, TypeError):
            raise ConfigError(
                "INCIDENT_DATA_KEYS: each key must be a Fernet key (32 url-safe base64 bytes;"
                " make one with `python -c 'from cryptography.fernet import Fernet;"
                " print(Fernet.generate_key().decode())'`)"
            ) from None
        self._multi = MultiFernet(self._fernets)
        self._lookup = [
            hmac.new(base64.urlsafe_b64decode(k), _LOOKUP_LABEL, hashlib.sha256).digest()
            for k in keys
        ]

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return vault_for(str(settings.data_keys), str(settings.secret_key))

    # -- encryption ------------------------------------------------------------------------
    def seal(self, fields: dict[str, Any]) -> str:
        """Encrypt a small JSON object with the current key."""
        raw = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        return self._multi.encrypt(raw).decode()

    def open(self, token: str) -> dict[str, Any]:
        """Decrypt what :meth:`seal` made; raises InvalidToken with no key that fits."""
        value = json.loads(self._multi.decrypt(token.encode()))
        return value if isinstance(value, dict) else {}

    def seal_text(self, text: str) -> str:
        return self._multi.encrypt(text.encode()).decode()

    def open_text(self, token: str) -> str:
        return self._multi.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        """Re-encrypt a token with the current key."""
        return self._multi.rotate(token.encode()).decode()

    # -- lookup ----------------------------------------------------------------------------
    def phone_hash(self, e164: str) -> str:
        """The keyed hash stored beside a phone number (current key)."""
        return hmac.new(self._lookup[0], e164.encode(), hashlib.sha256).hexdigest()

    def phone_hashes(self, e164: str) -> list[str]:
        """The number's hash under every key: what a lookup matches against."""
        return [hmac.new(k, e164.encode(), hashlib.sha256).hexdigest() for k in self._lookup]


@lru_cache(maxsize=8)
def vault_for(data_keys: str, secret_key: str) -> Vault:
    """The vault for these settings (cached: building one derives keys)."""
    keys = [k.strip().encode() for k in data_keys.split(",") if k.strip()]
    if not keys:
        digest = hashlib.sha256(_DEV_LABEL + secret_key.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest)]
    return Vault(keys)


# Mainland mobile numbers, the bulk of every manifest, are checked against phonenumbers' own
# metadata pattern directly (a regex instead of a full parse: 1 µs instead of 20 µs); every
# other form goes through phonenumbers.parse.
def _cn_mobile_pattern() -> re.Pattern[str]:
    metadata = PhoneMetadata.metadata_for_region("CN")
    pattern = metadata.mobile.national_number_pattern if metadata and metadata.mobile else None
    return re.compile(str(pattern) if pattern else r"(?!)")


_CN_MOBILE = _cn_mobile_pattern()
_SEPARATORS = str.maketrans("", "", " -().\u00a0")


def _cn_mobile(text: str) -> str | None:
    compact = text.translate(_SEPARATORS)
    for prefix in ("+86", "0086"):
        if compact.startswith(prefix):
            compact = compact[len(prefix) :]
            break
    valid = len(compact) == 11 and compact.isascii() and compact.isdigit()
    return "+86" + compact if valid and _CN_MOBILE.fullmatch(compact) else None


def normalise_phone(raw: str, region: str = "CN") -> str:
    """The E.164 form of a phone number; ValueError when it is not a valid number."""
    text = raw.strip()
    if not text:
        raise ValueError("no phone number")
    if region == "CN" or text.startswith(("+86", "0086")):
        fast = _cn_mobile(text)
        if fast is not None:
            return fast
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _national(e164: str) -> str:
    if e164.startswith("+86"):
        return e164[3:]
    try:
        return str(phonenumbers.parse(e164, None).national_number)
    except phonenumbers.NumberParseException:
        return e164.lstrip("+")


def mask_phone(e164: str | None) -> str | None:
    """``138****5678``: the first three and last four digits of the national number."""
    if not e164:
        return None
    digits = _national(e164)
    if len(digits) <= 7:
        return "*" * (len(digits) - 2) + digits[-2:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_name(name: str | None) -> str | None:
    """``张*`` / ``J***``: the first character only."""
    if not name:
        return None
    return name[0] + "*" * max(len(name) - 1, 1)


def parse_numbers(text: str, region: str = "CN") -> list[str]:
    """Comma-separated numbers (a setting) in E.164; invalid ones raise ConfigError."""
    found: list[str] = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            found.append(normalise_phone(part, region))
        except ValueError:
            raise ConfigError("INCIDENT_DRILL_TEST_NUMBERS: a number is not valid") from None
    return list(dict.fromkeys(found))


def hashes_of(vault: Vault, numbers: Iterable[str]) -> list[str]:
    return [h for n in numbers for h in vault.phone_hashes(n)]
