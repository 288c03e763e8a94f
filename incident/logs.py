"""structlog, configured once: JSON in production, console in development.

A processor masks phone numbers and drops secrets from every event, whatever logged it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# Phone-like digit runs: +86 138 1234 5678, 13812345678, 138-1234-5678, +8613812345678, and
# URL-encoded in a path or query (%2B8613812345678, tel%3A%2B86%20138...: apprise logs the URLs
# it loads at DEBUG, aiohttp's errors carry them), or before a file extension (.../138...json).
_PHONE = re.compile(
    r"(?:(?<=%[0-9A-Fa-f]{2})|(?<![\w.])\+?)\d(?:(?:[\s-]|%20|%2[Dd])?\d){6,14}(?!\w|\.\d)"
)
_SECRET_KEYS = {"password", "token", "secret", "secret_key", "authorization", "cookie"}


def mask_text(text: str) -> str:
    """Replace phone-like digit runs with a masked form keeping the last two digits."""

    def _mask(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        return "*" * max(len(digits) - 2, 0) + digits[-2:]

    return _PHONE.sub(_mask, text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {
            k: ("**********" if str(k).lower() in _SECRET_KEYS else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def scrub_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask phone numbers, hide secrets."""
    return _scrub(event_dict)  # type: ignore[no-any-return]


class _ScrubFilter(logging.Filter):
    """Masks records of foreign loggers (uvicorn, apprise) before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):
                record.msg = str(record.msg)
            record.args = None
        if isinstance(record.msg, str):
            record.msg = mask_text(record.msg)
        return True


def drop_simulated(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Simulations run the real engine on a throwaway database: their lines are not news."""
    if event_dict.get("simulation"):
        raise structlog.DropEvent
    return event_dict


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    """Configure structlog and the standard library logging to share one pipeline."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_simulated,
        scrub_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_ScrubFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
