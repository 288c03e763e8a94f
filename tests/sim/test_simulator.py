"""The simulator (#14) over the real engine: 1,000 seeded worst days per database, in chunks
of 100 so that a failure names its chunk. Replay a failing seed with
``python -m incident.sim --seed N -v`` (add ``--database URL`` for PostgreSQL).

Known engine defects are allowed by the invariant they break, one entry each, until they are
fixed: remove the entry with the fix. The checks themselves are never weakened here; a seed
that breaks any invariant not listed fails its chunk.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from incident.sim import invariants
from incident.sim.batch import explain, run_seeds
from incident.sim.world import Rig
from tests.sim.conftest import report_line

CHUNK = 100
CHUNKS = int(os.environ.get("INCIDENT_SIM_CHUNKS", "10"))

# invariant -> the engine defect behind it (see docs/simulator.md for seeds and traces)
KNOWN_DEFECTS: dict[str, str] = {
    # incident/worker.py + channels.py: a send that outlives the worker's lease (a receiver
    # slower than the lease) is claimed and sent again by another worker, and both arrive.
    # incident/worker.py record_finished: a recording transaction that fails with anything
    # but an outage drops the batch's outcomes; the jobs are sent again after their lease.
    invariants.ONCE: "sends outliving their lease; a failed outcome recording drops a batch",
    # incident/paging (on_deadline, escalate, acknowledge): page transitions take no row lock;
    # on PostgreSQL an acknowledgement committed while the deadline handler runs is
    # overwritten by the escalation (status back to "escalated"). SQLite serialises writers.
    invariants.ACK_KEPT: "row locks on page transitions (paging/escalation.py, acks.py)",
    # incident/paging/escalation.py on_delivery_outcome: a bundle (pages held by the flood
    # limit, sent as one message) has no recipient; when it fails for good nobody moves on
    # to the next contact method, and the people it carried stay "pending" (seed 302).
    invariants.REACHED: "bundles never failing over (paging/escalation.py, pages.py)",
}

SEEN: Counter[str] = Counter()


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_worst_days(rig: Rig, chunk: int, capsys: pytest.CaptureFixture[str]) -> None:
    seeds = range(chunk * CHUNK, (chunk + 1) * CHUNK)
    report = run_seeds(rig, seeds)
    SEEN.update(report.by_invariant)
    known = {n: c for n, c in report.by_invariant.items() if n in KNOWN_DEFECTS}
    report_line(
        capsys,
        f"\nsim seeds {seeds.start}-{seeds.stop - 1} ({rig.store.engine.dialect.name}): "
        f"{report.rate:.1f} scenarios/s; known defects seen {known or 'none'}",
    )
    unexpected = [
        r for r in report.failed if {v.invariant for v in r.violations} - set(KNOWN_DEFECTS)
    ]
    assert not unexpected, "\n\n".join(explain(r) for r in unexpected[:3])
