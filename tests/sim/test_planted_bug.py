"""The simulator finds a planted bug within the CI seed budget: an escalation that takes no
notice of an acknowledgement (the deadline jobs are not cancelled when a page is acknowledged,
and the deadline handler escalates the page whatever its status). The invariant it breaks is
``ack_never_lost``: an acknowledgement that was committed is overwritten."""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from incident import paging
from incident.models import Incident, Page
from incident.paging import acks, escalation, pages
from incident.playbook import Playbook
from incident.sim import invariants
from incident.sim.batch import explain, run_seed
from incident.sim.world import Rig
from tests.sim.conftest import report_line

BUDGET = 100  # seeds: the size of one CI chunk


def careless_on_deadline(
    page_id: str,
    level: int,
    *,
    session: Session,
    now: datetime,
    policy: paging.PagingPolicy,
    playbook: Playbook | None,
) -> None:
    """on_deadline and escalate without their ``status == "acked"`` checks."""
    page = session.get(Page, page_id)
    if page is None or page.level != level or page.target_kind in ("duty", "group"):
        return
    page.status = "escalated"
    incident = session.get(Incident, page.incident_id)
    assert incident is not None
    pages.page_level(incident, playbook, page, level + 1, session=session, now=now, policy=policy)


def test_the_simulator_finds_an_escalation_that_ignores_acknowledgements(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kept: Any = types.SimpleNamespace(cancel_keys=lambda *args, **kwargs: 0)
    monkeypatch.setattr(acks, "jobs", kept)
    monkeypatch.setattr(paging, "on_deadline", careless_on_deadline)
    assert escalation.on_deadline is not careless_on_deadline  # only the handlers' view
    for seed in range(BUDGET):
        result = run_seed(rig, seed)
        if any(v.invariant == invariants.ACK_KEPT for v in result.violations):
            report_line(capsys, f"\nplanted bug found at seed {seed}")
            assert "acked at" in explain(result)
            return
    pytest.fail(f"no {invariants.ACK_KEPT} violation in {BUDGET} seeds")
