"""The passengers' stranding rig (loopback SMS gateway, real worker) for the privacy tests,
and console users for the session tests."""

from tests.console.conftest import console_user
from tests.passengers.conftest import fast_sender, gateway, rig

__all__ = ["console_user", "fast_sender", "gateway", "rig"]
