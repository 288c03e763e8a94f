"""The roster's names, so that the console shows people and departments rather than ids."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident.models import Department, Person
from incident.web.console.labels import TABLES, Pair


@dataclass(frozen=True)
class Names:
    departments: dict[str, Pair] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> Names:
        departments = {d.id: (d.name_zh, d.name_en) for d in session.scalars(select(Department))}
        people = {p.id: p.name for p in session.scalars(select(Person))}
        return cls(departments, people)

    def person(self, person_id: str | None) -> str:
        if person_id is None:
            return ""
        return self.people.get(person_id, person_id)

    def department(self, department_id: str) -> Pair:
        return self.departments.get(department_id, (department_id, department_id))

    def target(self, kind: str, ident: str) -> Pair:
        """What a page targets, in words: a department, a role, a person, everyone paged."""
        if kind == "department":
            return self.department(ident)
        if kind == "person":
            name = self.person(ident)
            return (name, name)
        if kind == "duty" and ident not in ("duty_director", ""):
            zh, en = self.level(ident)  # a silent duty director's alert goes one up
            return (f"{zh}（告警）", f"{en} (alert)")
        if kind == "duty":
            return ("值班领导（告警）", "Duty director (alert)")
        if kind == "group":
            return ("已呼叫的所有人", "Everyone paged so far")
        return self.level(ident)

    def level(self, level: object) -> Pair:
        """An escalation level: ``on_duty``, a role, ``person:<id>``, or several at once."""
        if isinstance(level, list):
            parts = [self.level(item) for item in level]
            return (" + ".join(p[0] for p in parts), " + ".join(p[1] for p in parts))
        text = str(level)
        if text.startswith("person:"):
            name = self.person(text.removeprefix("person:"))
            return (name, name)
        return TABLES["level"].get(text, (text, text.replace("_", " ")))

    def spec(self, spec: str) -> Pair:
        """``department:coordination`` and its kin (timeline data) in words."""
        kind, _, ident = spec.partition(":")
        return self.target(kind, ident) if ident else (spec, spec)
