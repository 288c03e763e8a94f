"""The passengers' stranding rig (loopback SMS gateway, real worker) for the privacy tests."""

from tests.passengers.conftest import fast_sender, gateway, rig

__all__ = ["fast_sender", "gateway", "rig"]
