"""A gateway limited to 50 messages a second never gets more in any second (measured at the
receiver) while two incidents' broadcasts share it, and the two take turns (#15)."""

from __future__ import annotations

import time
from dataclasses import replace

from incident.channels import Sender
from incident.handlers import gateway_rates
from tests.passengers.conftest import Rig, manifest
from tests.passengers.test_broadcasts import start
from tests.passengers.test_manifests import open_group, upload


def test_a_gateway_limited_to_50_a_second_never_gets_more_and_two_broadcasts_take_turns(
    rig: Rig,
) -> None:
    rig.settings = replace(rig.settings, sms_gateway_rate="50/s")
    policy = replace(rig.sender.policy, rates=tuple(gateway_rates(rig.settings).items()))
    rig.sender = Sender(policy)
    rig.worker = rig.make_worker(rig.settings)
    duty = rig.auth("duty_manager")
    broadcasts = []
    for first in (1000, 2000):
        group = open_group(rig, rig.declare(), duty)
        people = manifest(
            [
                (f"乘客{n}", f"1381234{n:04d}", "01A", "01", "zh", f"T{n}")
                for n in range(first, first + 100)
            ]
        )
        assert upload(rig, group, people, duty).status_code == 201
        broadcasts.append(start(rig, group, duty))
    try:  # the clock keeps pace with real time: broadcasts are paced at the gateway's rate
        deadline = time.monotonic() + 30
        while len(rig.gateway.received) < 200 and time.monotonic() < deadline:
            rig.worker.run_due()
            time.sleep(0.01)
            rig.clock.advance(seconds=0.01)
        rig.worker.drain()
    finally:
        rig.sender.close()
    got = sorted(rig.gateway.received, key=lambda sms: sms.at)
    assert len(got) == 200 and len({sms.key for sms in got}) == 200
    times = [sms.at for sms in got]
    busiest = max(
        sum(1 for t in times[i:] if t < start_at + 1.0) for i, start_at in enumerate(times)
    )
    assert busiest <= 50, f"{busiest} messages reached the gateway within one second"
    half = got[:100]
    shares = [sum(1 for sms in half if sms.title.startswith(b)) for b in broadcasts]
    assert min(shares) >= 35, f"the two broadcasts did not take turns: {shares}"
