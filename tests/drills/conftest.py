"""Drills run against the real app and worker; the public channel is a loopback webhook."""

from tests.notices.conftest import cap_schema, receiver, settings

__all__ = ["cap_schema", "receiver", "settings"]
