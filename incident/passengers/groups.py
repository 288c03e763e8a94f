"""Passenger groups: who is stranded where, since when, what they need, and the care given.

A group's count and ``since`` feed the incident's facts (``passengers_stranded`` and the
moment stranding began) through :func:`fact_changes`; the caller applies them with
``response.change`` so that the playbook's conditions are evaluated again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import timeline
from incident.errors import Conflict, FieldError, NotFound, ValidationFailed
from incident.models import CareEntry, Incident, PassengerGroup, new_id
from incident.passengers import checks
from incident.passengers.events import PassengerEvent
from incident.playbook import Playbook
from incident.playbook.conditions import as_datetime

NEEDS = ("water", "food", "medical", "accommodation", "onward_transport", "accessibility")
VULNERABLE = ("elderly", "children", "reduced_mobility")
NEED_STATES = ("open", "met")
STATUSES = ("stranded", "cleared")
# Derived facts, and the playbook inputs that may carry each (the first one declared wins
# for ``stranded_since``; see docs/passengers.md).
STRANDED_SINCE_INPUTS = ("stranded_since", "stopped_since")


def _vulnerable(body: Mapping[str, Any], errors: list[FieldError]) -> dict[str, int] | None:
    value = body.get("vulnerable")
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - set(VULNERABLE):
        errors.append(FieldError("vulnerable", f"an object of counts: {', '.join(VULNERABLE)}"))
        return None
    out: dict[str, int] = {}
    for name in value:
        n = checks.count(value, name, errors)
        if n is not None:
            out[name] = n
    return out


def _needs(body: Mapping[str, Any], errors: list[FieldError]) -> dict[str, str] | None:
    """``needs`` as a list (all open) or as ``{need: open|met}``."""
    value = body.get("needs")
    if value is None:
        return None
    if isinstance(value, list):
        if not all(isinstance(need, str) for need in value):
            errors.append(FieldError("needs", "a list of needs, or {need: open|met}"))
            return None
        value = dict.fromkeys(value, "open")
    if not isinstance(value, dict):
        errors.append(FieldError("needs", "a list of needs, or {need: open|met}"))
        return None
    out: dict[str, str] = {}
    for need, state in value.items():
        if need not in NEEDS:
            errors.append(FieldError("needs", f"{need!r} is not one of {', '.join(NEEDS)}"))
        elif state not in NEED_STATES:
            errors.append(FieldError(f"needs.{need}", "must be open or met"))
        else:
            out[str(need)] = str(state)
    return out


def open_group(
    incident: Incident,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
) -> PassengerGroup:
    """Register stranded passengers on a train and/or at a station."""
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    errors: list[FieldError] = []
    data = dict(body)
    train = checks.text(data, "train", errors, limit=40)
    station = checks.text(data, "station", errors, limit=100)
    location = checks.text(data, "location", errors, limit=200)
    count = checks.count(data, "count", errors, required=True)
    since = checks.moment(data, "since", errors)
    vulnerable = _vulnerable(data, errors) or {}
    needs = _needs(data, errors) or {}
    if (
        train is None
        and station is None
        and not any(e.field in ("train", "station") for e in errors)
    ):
        errors.append(FieldError("train", "name a train, a station, or both"))
    unknown = set(data) - {"train", "station", "location", "count", "since", "vulnerable", "needs"}
    errors.extend(FieldError(name, "is not a field of a passenger group") for name in unknown)
    if since is not None and since > now:
        errors.append(FieldError("since", "is in the future"))
    if errors:
        raise ValidationFailed("the passenger group is not valid", errors)
    assert count is not None
    if since is None:
        since = as_datetime(incident.facts.get("stopped_since")) or now
    group = PassengerGroup(
        id=new_id("grp"),
        incident_id=incident.id,
        train=train,
        station=station,
        location=location or station or train or "",
        count=count,
        vulnerable={k: vulnerable.get(k, 0) for k in VULNERABLE},
        needs=needs,
        since=since.astimezone(UTC),
        status="stranded",
        created_at=now,
        created_by=actor,
        updated_at=now,
    )
    session.add(group)
    session.flush()
    timeline.append(
        incident,
        PassengerEvent.GROUP_OPENED,
        {
            "group": group.id,
            "train": train,
            "station": station,
            "count": count,
            "vulnerable": group.vulnerable,
            "needs": sorted(needs),
            "since": group.since.isoformat(),
        },
        session=session,
        at=now,
        actor=actor,
    )
    return group


def change_group(
    group: PassengerGroup,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
) -> PassengerGroup:
    """Change a group (fields left out stay; ``vulnerable`` and ``needs`` merge)."""
    incident = session.get(Incident, group.incident_id)
    assert incident is not None
    if incident.status == "closed":
        raise Conflict("the incident is closed")
    errors: list[FieldError] = []
    data = dict(body)
    unknown = set(data) - {
        "train",
        "station",
        "location",
        "count",
        "since",
        "vulnerable",
        "needs",
        "status",
    }
    errors.extend(FieldError(name, "cannot be changed") for name in unknown)
    changed: dict[str, Any] = {}
    for name, limit in (("train", 40), ("station", 100), ("location", 200)):
        if name in data:
            value = checks.text(data, name, errors, limit=limit)
            if value != getattr(group, name) and value is not None:
                setattr(group, name, value)
                changed[name] = value
    if "count" in data:
        count = checks.count(data, "count", errors, required=True)
        if count is not None and count != group.count:
            changed["count"] = {"from": group.count, "to": count}
            group.count = count
    since = checks.moment(data, "since", errors)
    if since is not None and since > now:
        errors.append(FieldError("since", "is in the future"))
    elif since is not None and since != group.since:
        group.since = since.astimezone(UTC)
        changed["since"] = group.since.isoformat()
    vulnerable = _vulnerable(data, errors)
    if vulnerable:
        merged = {**group.vulnerable, **vulnerable}
        if merged != group.vulnerable:
            group.vulnerable = merged
            changed["vulnerable"] = merged
    needs = _needs(data, errors)
    if needs:
        merged_needs = {**group.needs, **needs}
        if merged_needs != group.needs:
            group.needs = merged_needs
            changed["needs"] = merged_needs
    status = checks.choice(data, "status", STATUSES, errors)
    if errors:
        raise ValidationFailed("the change is not valid", errors)
    if status is not None and status != group.status:
        group.status = status
        group.cleared_at = now if status == "cleared" else None
        changed["status"] = status
    if changed:
        group.updated_at = now
        timeline.append(
            incident,
            PassengerEvent.GROUP_CHANGED,
            {"group": group.id, **changed},
            session=session,
            at=now,
            actor=actor,
        )
    return group


def record_care(
    group: PassengerGroup,
    body: Mapping[str, Any],
    *,
    session: Session,
    now: datetime,
    actor: str | None,
) -> CareEntry:
    """Log care given to a group; ``met: true`` marks that need met."""
    errors: list[FieldError] = []
    data = dict(body)
    need = checks.choice(data, "need", (*NEEDS, "other"), errors)
    if need is None and "need" not in data:
        errors.append(FieldError("need", f"is required: one of {', '.join(NEEDS)} or other"))
    what = checks.text(data, "what", errors, required=True, limit=1000)
    quantity = checks.count(data, "quantity", errors)
    provided_at = checks.moment(data, "provided_at", errors)
    provided_by = checks.text(data, "provided_by", errors, limit=100)
    met = data.get("met", False)
    if not isinstance(met, bool):
        errors.append(FieldError("met", "must be true or false"))
    unknown = set(data) - {"need", "what", "quantity", "provided_at", "provided_by", "met"}
    errors.extend(FieldError(name, "is not a field of a care entry") for name in unknown)
    if provided_at is not None and provided_at > now:
        errors.append(FieldError("provided_at", "is in the future"))
    if errors:
        raise ValidationFailed("the care entry is not valid", errors)
    assert need is not None and what is not None
    entry = CareEntry(
        group_id=group.id,
        need=need,
        what=what,
        quantity=quantity,
        provided_at=provided_at or now,
        provided_by=provided_by or actor or "unknown",
        recorded_at=now,
        recorded_by=actor,
    )
    session.add(entry)
    if met and need in NEEDS:
        group.needs = {**group.needs, need: "met"}
    group.updated_at = now
    session.flush()
    incident = session.get(Incident, group.incident_id)
    assert incident is not None
    timeline.append(
        incident,
        PassengerEvent.CARE_RECORDED,
        {"group": group.id, "need": need, "quantity": quantity, "met": bool(met)},
        session=session,
        at=now,
        actor=actor,
    )
    return entry


def get_group(group_id: str, *, session: Session) -> PassengerGroup:
    group = session.get(PassengerGroup, group_id)
    if group is None:
        raise NotFound(f"no passenger group {group_id!r}")
    return group


def groups_of(incident_id: str, *, session: Session) -> list[PassengerGroup]:
    return list(
        session.scalars(
            select(PassengerGroup)
            .where(PassengerGroup.incident_id == incident_id)
            .order_by(PassengerGroup.created_at, PassengerGroup.id)
        )
    )


def care_of(group_id: str, *, session: Session) -> list[CareEntry]:
    return list(
        session.scalars(
            select(CareEntry)
            .where(CareEntry.group_id == group_id)
            .order_by(CareEntry.provided_at, CareEntry.id)
        )
    )


def derived_facts(incident: Incident, *, session: Session) -> dict[str, Any]:
    """``passengers_stranded`` (sum of counts) and ``stranded_since`` (earliest) of the
    groups still stranded; ``stranded_since`` is None when none is."""
    stranded = [g for g in groups_of(incident.id, session=session) if g.status == "stranded"]
    earliest = min((g.since for g in stranded), default=None)
    return {
        "passengers_stranded": sum(g.count for g in stranded),
        "stranded_since": earliest.isoformat() if earliest else None,
    }


def fact_changes(incident: Incident, playbook: Playbook, *, session: Session) -> dict[str, Any]:
    """The incident facts the groups change, limited to inputs the playbook declares.

    ``passengers_stranded`` follows the groups (when the playbook accepts the value: a
    required count with ``min: 1`` keeps its last value when every group is cleared).
    The moment stranding began goes to ``stranded_since`` or else ``stopped_since``; groups
    only ever move it earlier, so that a group registered late never delays the care that
    ``minutes_since(...)`` conditions schedule (correct a wrong time with PATCH)."""
    derived = derived_facts(incident, session=session)
    wanted: dict[str, Any] = {}
    if "passengers_stranded" in playbook.inputs:
        wanted["passengers_stranded"] = derived["passengers_stranded"]
    target = next((n for n in STRANDED_SINCE_INPUTS if n in playbook.inputs), None)
    earliest = as_datetime(derived["stranded_since"])
    if target is not None and earliest is not None:
        current = as_datetime(incident.facts.get(target))
        if current is None or earliest < current:
            wanted[target] = earliest.isoformat()
    coerced, problems = playbook.validate_facts(wanted, partial=True)
    bad = {name for name, _ in problems}
    return {
        name: value
        for name, value in coerced.items()
        if name not in bad and incident.facts.get(name) != value
    }
