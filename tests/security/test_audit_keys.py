"""#16: the timeline's chain is keyed (HMAC-SHA256 under a key kept out of the database,
rotatable, legacy events still verifiable) and anchored outside the database by signed
checkpoints that catch an alteration, a deletion or a re-hash after them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from incident import timeline
from incident.catalog import Catalog
from incident.clock import FrozenClock
from incident.db import Database
from incident.models import Incident, TimelineEvent
from incident.settings import Secret, Settings
from incident.worker import Worker
from tests.faults.test_audit_chain import _incident

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "a" * 40
KEY_B = "b" * 40


def keys(text: str) -> timeline.AuditKeys:
    return timeline.AuditKeys.from_settings(Settings(audit_keys=Secret(text)))


def rehash(session: Session, incident_id: str, *, keep_key_ids: bool) -> None:
    """What someone with the database but not the key can do: change event #2, then
    recompute every hash after it with the stored data (SHA-256: the key is not there)."""
    rows = session.scalars(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id)
        .order_by(TimelineEvent.seq)
    ).all()
    prev = timeline.GENESIS
    for ev in rows:
        data = {**ev.data, "title": "rewritten"} if ev.seq == 2 else ev.data
        digest = timeline._digest(prev, incident_id, ev.seq, ev.kind, ev.at, ev.actor, data)
        session.execute(
            update(TimelineEvent)
            .where(TimelineEvent.id == ev.id)
            .values(
                data=data,
                prev_hash=prev,
                hash=digest,
                key_id=ev.key_id if keep_key_ids else None,
            )
        )
        prev = digest
    session.execute(update(Incident).where(Incident.id == incident_id).values(timeline_head=prev))


def test_events_are_keyed_and_a_rehash_without_the_key_is_detected(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = _incident(seeded, catalog, clock, worker)
    with seeded.reading() as session:
        key_ids = set(
            session.scalars(
                select(TimelineEvent.key_id).where(TimelineEvent.incident_id == incident_id)
            )
        )
        assert None not in key_ids and len(key_ids) == 1
        assert timeline.verify(incident_id, session=session) == []
    with seeded.transaction() as session:
        rehash(session, incident_id, keep_key_ids=True)
    with seeded.reading() as session:
        problems = timeline.verify(incident_id, session=session)
    assert f"{incident_id}: event #2 was altered" in problems


def test_keys_rotate_old_events_verify_with_the_old_key_and_unknown_keys_are_named(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    seeded.audit_keys = keys(f"a:{KEY_A}")
    incident_id = _incident(seeded, catalog, clock, worker)
    seeded.audit_keys = keys(f"b:{KEY_B},a:{KEY_A}")  # b is current, a still verifies
    with seeded.transaction() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        timeline.append(incident, "note", {"n": 1}, session=session, at=clock.now())
    with seeded.reading() as session:
        used = list(
            session.scalars(
                select(TimelineEvent.key_id)
                .where(TimelineEvent.incident_id == incident_id)
                .order_by(TimelineEvent.seq)
            )
        )
        assert used[0] == "a" and used[-1] == "b"
        assert timeline.verify(incident_id, session=session) == []
        without_a = timeline.verify(incident_id, session=session, keys=keys(f"b:{KEY_B}"))
    assert without_a and all("unknown audit key 'a'" in p for p in without_a)


def test_legacy_unkeyed_events_stay_verifiable_but_not_after_keyed_ones(
    seeded: Database, catalog: Catalog, clock: FrozenClock, worker: Worker
) -> None:
    incident_id = _incident(seeded, catalog, clock, worker)
    with seeded.transaction() as session:
        rehash(session, incident_id, keep_key_ids=False)  # as written before keys existed
    with seeded.reading() as session:
        assert timeline.verify(incident_id, session=session) == []
    with seeded.transaction() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        timeline.append(incident, "note", {"n": 1}, session=session, at=clock.now())
        last = incident.timeline_seq
        session.execute(
            update(TimelineEvent)
            .where(TimelineEvent.incident_id == incident_id, TimelineEvent.seq == 2)
            .values(key_id="derived-00000000")
        )
    with seeded.reading() as session:
        assert timeline.verify(incident_id, session=session) != []
    assert last > 2


# -- checkpoints, through the command line ---------------------------------------------------
def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env.update(
        INCIDENT_DATABASE_URL=database_url,
        INCIDENT_PLAYBOOKS_DIR=str(ROOT / "playbooks"),
        INCIDENT_LOG_LEVEL="WARNING",
    )
    return subprocess.run(
        [sys.executable, "-m", "incident", "audit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def truncate(session: Session, incident_id: str) -> None:
    """Delete the last event and move the incident's head back: the chain still verifies."""
    last = session.scalars(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id)
        .order_by(TimelineEvent.seq.desc())
    ).first()
    assert last is not None
    session.execute(delete(TimelineEvent).where(TimelineEvent.id == last.id))
    session.execute(
        update(Incident)
        .where(Incident.id == incident_id)
        .values(timeline_seq=last.seq - 1, timeline_head=last.prev_hash)
    )


def alter(session: Session, incident_id: str) -> None:
    session.execute(
        update(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id, TimelineEvent.seq == 2)
        .values(actor="someone else")
    )


def test_checkpoints_catch_an_alteration_a_deletion_and_a_rehash_after_them(
    seeded: Database,
    catalog: Catalog,
    clock: FrozenClock,
    worker: Worker,
    database_url: str,
    tmp_path: Path,
) -> None:
    intact = _incident(seeded, catalog, clock, worker)
    altered = _incident(seeded, catalog, clock, worker)
    deleted = _incident(seeded, catalog, clock, worker)
    rehashed = _incident(seeded, catalog, clock, worker)
    seeded.dispose()
    made = _cli(database_url, "checkpoint", "--out", str(tmp_path / "anchors"))
    assert made.returncode == 0, made.stderr
    [written] = list((tmp_path / "anchors").glob("checkpoint-*.jsonl"))
    heads = [json.loads(line) for line in written.read_text().splitlines()]
    assert {h["incident"] for h in heads} == {intact, altered, deleted, rehashed}
    assert all(set(h) == {"incident", "seq", "hash", "time", "key", "hmac"} for h in heads)
    clean = _cli(database_url, "verify", "--checkpoints", str(tmp_path / "anchors"))
    assert clean.returncode == 0, clean.stdout + clean.stderr

    with seeded.transaction() as session:
        alter(session, altered)
        truncate(session, deleted)
        rehash(session, rehashed, keep_key_ids=False)  # a whole legacy-looking chain
    seeded.dispose()
    without = _cli(database_url, "verify")  # the database alone misses two of them
    assert without.returncode == 1
    assert deleted not in without.stdout and rehashed not in without.stdout

    result = _cli(database_url, "verify", "--checkpoints", str(tmp_path / "anchors"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{altered}: event #2 was altered" in lines
    assert any(line.startswith(f"{deleted}: event #") and "removed after" in line for line in lines)
    assert any(line.startswith(f"{rehashed}: the chain up to") for line in lines)
    assert intact not in result.stdout


def test_a_forged_checkpoint_is_refused(
    seeded: Database,
    catalog: Catalog,
    clock: FrozenClock,
    worker: Worker,
    database_url: str,
    tmp_path: Path,
) -> None:
    _incident(seeded, catalog, clock, worker)
    seeded.dispose()
    assert _cli(database_url, "checkpoint", "--out", str(tmp_path)).returncode == 0
    [written] = list(tmp_path.glob("checkpoint-*.jsonl"))
    entry = json.loads(written.read_text())
    written.write_text(json.dumps({**entry, "seq": 1}) + "\n")
    result = _cli(database_url, "verify", "--checkpoints", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.strip().endswith("the checkpoint's signature does not verify")
