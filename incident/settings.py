"""Settings, read once from ``INCIDENT_*`` environment variables and passed explicitly."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from incident.errors import ConfigError
from incident.urlguard import check_url

PREFIX = "INCIDENT_"
SECRET_MIN_BYTES = 32
DEV_SECRET = "dev-insecure-secret-change-me"


class Secret(str):
    """A string that never shows itself in reprs or logs."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'**********'"


def _default_db() -> str:
    return "sqlite:///var/incident.db"


@dataclass(frozen=True)
class Settings:
    """Every setting of the service; each field is ``INCIDENT_<NAME>`` in the environment."""

    database_url: str = field(default_factory=_default_db)
    playbooks_dir: Path = Path("playbooks")
    public_url: str = "http://127.0.0.1:8000"
    secret_key: Secret = field(default_factory=lambda: Secret(DEV_SECRET))
    timezone: str = "Asia/Shanghai"
    log_format: str = "console"
    log_level: str = "INFO"
    embedded_worker: bool = True
    worker_lease_seconds: float = 30.0
    worker_poll_seconds: float = 1.0
    database_wait_seconds: float = 60.0
    worker_heartbeat_seconds: float = 1.0
    worker_takeover_seconds: float = 3.0
    worker_stop_seconds: float = 8.0
    worker_listen: bool = True
    auditor_interval_seconds: float = 10.0
    auditor_worker_stale_seconds: float = 30.0
    auditor_late_seconds: float = 120.0
    auditor_failed_job_hours: float = 24.0
    ops_alert_urls: Secret = field(default_factory=lambda: Secret(""))
    job_max_attempts: int = 10
    max_body_bytes: int = 262_144
    ack_link_minutes: int = 240
    page_flood_limit: int = 5
    page_flood_window_minutes: int = 15
    delivery_attempts: int = 4
    delivery_attempt_timeout_seconds: float = 10.0
    delivery_total_seconds: float = 25.0
    delivery_backoff_seconds: float = 0.5
    delivery_in_flight: int = 256
    channel_rates: str = ""
    sms_gateway_rate: str = ""
    inbound_secret: Secret = field(default_factory=lambda: Secret(""))
    notice_four_eyes: bool = False
    public_channels: Secret = field(default_factory=lambda: Secret(""))
    drill_notice_channel: str = "inbox://drill-notices"
    # Security (#16): channels a drill may name, as name=url pairs set by an admin
    drill_channels: Secret = field(default_factory=lambda: Secret(""))
    allow_link_local_urls: bool = False
    audit_keys: Secret = field(default_factory=lambda: Secret(""))
    metrics_token: Secret = field(default_factory=lambda: Secret(""))
    cap_sender: str = ""
    notice_cache_seconds: float = 1.0
    demo_inbox: bool = True
    demo_roster: Path = Path("incident/demo/roster.yaml")
    # Stranded passengers (#5)
    data_keys: Secret = field(default_factory=lambda: Secret(""))
    phone_region: str = "CN"
    sms_gateway: Secret = field(default_factory=lambda: Secret(""))
    drill_test_numbers: str = ""
    callback_minutes: int = 30
    passenger_retention_days: int = 30
    manifest_max_bytes: int = 67_108_864
    console_session_hours: int = 12
    # Request budgets per minute (#9); 0 turns one off, rate_limit_per_minute=0 all of them
    rate_limit_per_minute: int = 300
    rate_limit_login_per_minute: int = 10
    rate_limit_ack_per_minute: int = 30
    rate_limit_public_per_minute: int = 1200

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def drill_channel_urls(self) -> dict[str, str]:
        """The channels a drill may name: ``INCIDENT_DRILL_CHANNELS`` and ``default`` (the
        drill notice channel)."""
        return {
            DEFAULT_DRILL_CHANNEL: self.drill_notice_channel,
            **parse_pairs(self.drill_channels),
        }

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_DRILL_CHANNEL = "default"
_CHANNEL_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def parse_pairs(text: str) -> dict[str, str]:
    """``name=url,name=url`` (a URL's own commas are not supported); ValueError when malformed."""
    found: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, url = part.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not _CHANNEL_NAME.fullmatch(name) or "://" not in url:
            raise ValueError("expected name=url pairs, names of a-z, 0-9, '.', '_', '-'")
        found[name] = url
    return found


_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def parse_audit_keys(text: str) -> list[tuple[str, bytes]]:
    """``id:secret,id:secret`` (the first current); ValueError when malformed."""
    found: list[tuple[str, bytes]] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key_id, sep, secret = part.partition(":")
        if not sep or not _KEY_ID.fullmatch(key_id):
            raise ValueError("expected id:secret pairs, ids of letters, digits, '.', '_', '-'")
        if len(secret.encode()) < SECRET_MIN_BYTES:
            raise ValueError(f"key {key_id!r} is shorter than {SECRET_MIN_BYTES} bytes")
        if any(key_id == seen for seen, _ in found):
            raise ValueError(f"key id {key_id!r} is listed twice")
        found.append((key_id, secret.encode()))
    return found


def _convert(name: str, raw: str, kind: object) -> object:
    if kind is bool or kind == "bool":
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{PREFIX}{name.upper()}: expected true or false, got {raw!r}")
    if kind is int or kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name.upper()}: expected an integer, got {raw!r}") from None
    if kind is float or kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name.upper()}: expected a number, got {raw!r}") from None
    if kind is Path or kind == "Path":
        return Path(raw)
    if kind is Secret or kind == "Secret":
        return Secret(raw)
    return raw


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from an environment mapping (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        key = PREFIX + f.name.upper()
        if key in env:
            values[f.name] = _convert(f.name, env[key], f.type)
    settings = Settings(**values)  # type: ignore[arg-type]
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{PREFIX}TIMEZONE: unknown time zone {settings.timezone!r}") from None
    if settings.log_format not in {"console", "json"}:
        raise ConfigError(f"{PREFIX}LOG_FORMAT: expected console or json")
    if any(c in settings.cap_sender for c in " ,<&"):
        raise ConfigError(f"{PREFIX}CAP_SENDER: no spaces, commas, < or & (CAP 1.2)")
    for key in (k.strip() for k in settings.data_keys.split(",") if k.strip()):
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise ConfigError(
                f"{PREFIX}DATA_KEYS: each key must be a Fernet key (32 bytes, base64)"
            )
    if settings.sms_gateway and "{phone}" not in settings.sms_gateway:
        raise ConfigError(
            f"{PREFIX}SMS_GATEWAY: an apprise URL with {{phone}} where the number goes"
        )
    try:
        parse_audit_keys(settings.audit_keys)
    except ValueError as exc:
        raise ConfigError(f"{PREFIX}AUDIT_KEYS: {exc}") from None
    try:
        channels = settings.drill_channel_urls()
    except ValueError as exc:
        raise ConfigError(f"{PREFIX}DRILL_CHANNELS: {exc}") from None
    urls = {
        "OPS_ALERT_URLS": str(settings.ops_alert_urls).split(","),
        "PUBLIC_CHANNELS": str(settings.public_channels).split(","),
        "DRILL_CHANNELS": list(channels.values()),
        "SMS_GATEWAY": [str(settings.sms_gateway)],
    }
    for name, listed in urls.items():
        for url in (u for u in listed if u.strip()):
            refused = check_url(url, allow_link_local=settings.allow_link_local_urls)
            if refused:
                raise ConfigError(
                    f"{PREFIX}{name}: {refused}; set {PREFIX}ALLOW_LINK_LOCAL_URLS=true to allow it"
                )
    return settings


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def weak_key_problem(
    settings: Settings, *, host: str | None = None, has_passenger_data: bool = False
) -> str | None:
    """Why a process (serve, worker, auditor) must not start with these keys, or None.

    The development secret key, or one shorter than 32 bytes, is refused unless the process
    is a local try-out: bound to loopback (``host``; without one, the public URL's host) with
    the demo inbox on. The same holds for passenger data keys derived from the secret key
    (``INCIDENT_DATA_KEYS`` unset) once passenger data exists. Only process start-up calls
    this: building ``Settings`` never refuses."""
    bound = host if host is not None else urlsplit(settings.public_url).hostname
    if settings.demo_inbox and _loopback(bound):
        return None
    secret = str(settings.secret_key)
    if secret == DEV_SECRET or len(secret.encode()) < SECRET_MIN_BYTES:
        return (
            f"{PREFIX}SECRET_KEY is the development value or shorter than {SECRET_MIN_BYTES} "
            "bytes; set a long random value (e.g. `openssl rand -base64 48`)"
        )
    if has_passenger_data and not str(settings.data_keys).strip():
        return (
            f"{PREFIX}DATA_KEYS is not set and passenger data exists (its key is derived from "
            "the secret key); set a Fernet key and run `incident passengers rotate-keys`"
        )
    return None


def setting_names() -> list[str]:
    """Return the environment variable name of every setting."""
    return [PREFIX + f.name.upper() for f in dataclasses.fields(Settings)]
