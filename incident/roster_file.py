"""Roster files: read the YAML that describes departments, people and the rota, and check it.

Every problem is collected with its line, so one run of ``incident roster load`` shows them all.
The format is documented in ``docs/roster.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from incident.errors import Problem, RosterError
from incident.urlguard import check_url

BUILTIN_ROLES = ("duty_director", "director", "deputy_director", "section_head", "on_duty_agent")
LANGUAGES = ("zh-CN", "en")
DEFAULT_ESCALATION: tuple[str, ...] = (
    "on_duty",
    "section_head",
    "deputy_director",
    "duty_director",
)
DEFAULT_TIMEZONE = "Asia/Shanghai"
ON_DUTY = "on_duty"
SECTION_HEAD = "section_head"
PERSON_PREFIX = "person:"

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")

_TOP = ("timezone", "departments", "people", "rota", "overrides", "escalation_default")
_DEPARTMENT = ("id", "name", "head", "escalation")
_PERSON = ("id", "name", "language", "department", "roles", "contacts")
_CONTACT = ("url", "label")
_ROTA = ("department", "starts_on", "start_time", "shift_hours", "teams")
_OVERRIDE = ("department", "person", "covers", "from", "to")


@dataclass(frozen=True)
class ContactDoc:
    url: str
    label: str | None = None


@dataclass(frozen=True)
class DepartmentDoc:
    id: str
    name_zh: str
    name_en: str
    head: str | None
    escalation: tuple[str, ...] | None  # None: the file's escalation_default


@dataclass(frozen=True)
class PersonDoc:
    id: str
    name: str
    language: str
    department: str | None
    roles: tuple[str, ...]
    contacts: tuple[ContactDoc, ...]


@dataclass(frozen=True)
class RotaDoc:
    department: str
    starts_on: date
    start_time: str  # "HH:MM" in the roster's time zone
    shift_hours: int
    teams: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class OverrideDoc:
    department: str
    person: str
    covers: str | None
    starts_at: datetime  # aware
    ends_at: datetime  # aware


@dataclass(frozen=True)
class RosterDoc:
    """A parsed, checked roster file."""

    source: str
    timezone: str
    departments: tuple[DepartmentDoc, ...]
    people: tuple[PersonDoc, ...]
    rota: tuple[RotaDoc, ...]
    overrides: tuple[OverrideDoc, ...]
    escalation_default: tuple[str, ...]


def parse_roster_text(text: str, filename: str, *, allow_link_local: bool = False) -> RosterDoc:
    """Parse and check a roster; raise RosterError listing every problem with its line.

    A contact URL naming a link-local address or a cloud metadata service is refused unless
    ``allow_link_local`` (``INCIDENT_ALLOW_LINK_LOCAL_URLS``)."""
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = exc.problem or exc.context or "unreadable"
        raise RosterError([Problem(filename, line, f"invalid YAML: {what}")]) from None
    except YAMLError as exc:
        raise RosterError([Problem(filename, 0, f"invalid YAML: {exc}")]) from None
    reader = _Reader(filename, allow_link_local=allow_link_local)
    doc = reader.read(data)
    if reader.problems or doc is None:
        raise RosterError(sorted(reader.problems, key=lambda p: p.line))
    return doc


def load_roster_file(path: Path, *, allow_link_local: bool = False) -> RosterDoc:
    """Read and parse the roster file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError([Problem(str(path), 0, f"cannot read the roster: {exc}")]) from None
    return parse_roster_text(text, str(path), allow_link_local=allow_link_local)


def ids_in_doc(doc: RosterDoc) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(department ids, roles held by anyone plus the built-in roles, person ids) of a file."""
    roles = {role for person in doc.people for role in person.roles}
    return (
        frozenset(d.id for d in doc.departments),
        frozenset(roles.union(BUILTIN_ROLES)),
        frozenset(p.id for p in doc.people),
    )


def _line(node: Any, fallback: int = 0) -> int:
    lc = getattr(node, "lc", None)
    return int(lc.line) + 1 if lc is not None else fallback


def _key_line(mapping: CommentedMap, key: str) -> int:
    return int(mapping.lc.key(key)[0]) + 1


def _value_line(mapping: CommentedMap, key: str) -> int:
    return int(mapping.lc.value(key)[0]) + 1


def _item_line(seq: CommentedSeq, index: int) -> int:
    return int(seq.lc.item(index)[0]) + 1


class _Reader:
    """Walks the YAML tree once, collecting problems; references are checked at the end."""

    def __init__(self, filename: str, *, allow_link_local: bool = False) -> None:
        self.filename = filename
        self.allow_link_local = allow_link_local
        self.problems: list[Problem] = []
        self.person_refs: list[tuple[str, int, str]] = []  # (id, line, what refers to it)
        self.department_refs: list[tuple[str, int, str]] = []
        self.level_refs: list[tuple[str, int, str]] = []

    def fail(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.filename, line, message))

    def read(self, data: Any) -> RosterDoc | None:
        if not isinstance(data, CommentedMap):
            self.fail(_line(data, 1), "a roster is a mapping with departments, people and rota")
            return None
        self.keys(data, _TOP, ("departments", "people"), "the roster")
        timezone = self.timezone(data)
        departments = [self.department(m, w) for m, w in self.maps(data, "departments")]
        people = [self.person(m, w) for m, w in self.maps(data, "people")]
        rota = [self.rota(m, w) for m, w in self.maps(data, "rota")]
        overrides = [
            self.override(m, w, ZoneInfo(timezone)) for m, w in self.maps(data, "overrides")
        ]
        default = DEFAULT_ESCALATION
        if "escalation_default" in data:
            default = self.levels(data, "escalation_default", "escalation_default") or default
        self.unique(data, "departments", "department")
        self.unique(data, "people", "person")
        self.check_references(departments, people)
        return RosterDoc(
            source=self.filename,
            timezone=timezone,
            departments=tuple(d for d in departments if d is not None),
            people=tuple(p for p in people if p is not None),
            rota=tuple(r for r in rota if r is not None),
            overrides=tuple(o for o in overrides if o is not None),
            escalation_default=default,
        )

    # -- structure ------------------------------------------------------------------------

    def keys(
        self, mapping: CommentedMap, allowed: tuple[str, ...], required: tuple[str, ...], where: str
    ) -> None:
        for key in mapping:
            if key not in allowed:
                self.fail(
                    _key_line(mapping, key),
                    f"{where}: unknown key {key!r} (allowed: {', '.join(allowed)})",
                )
        for key in required:
            if key not in mapping:
                self.fail(_line(mapping), f"{where}: missing {key!r}")

    def maps(self, data: CommentedMap, key: str) -> list[tuple[CommentedMap, str]]:
        """The mappings listed under ``key``, each with a name for messages."""
        if key not in data:
            return []
        seq = data[key]
        if seq is None and key not in ("departments", "people"):
            return []  # an empty optional section such as "overrides:"
        if not isinstance(seq, CommentedSeq):
            self.fail(_value_line(data, key), f"{key} must be a list")
            return []
        found = []
        for index, item in enumerate(seq):
            if not isinstance(item, CommentedMap):
                self.fail(_item_line(seq, index), f"{key} item {index + 1} must be a mapping")
                continue
            ident = item.get("id")
            where = f"{key} item {index + 1}" + (f" ({ident})" if isinstance(ident, str) else "")
            found.append((item, where))
        return found

    def text(self, mapping: CommentedMap, key: str, where: str, limit: int = 200) -> str | None:
        if key not in mapping:
            return None
        value = mapping[key]
        if not isinstance(value, str) or not value.strip() or len(value.strip()) > limit:
            self.fail(
                _value_line(mapping, key), f"{where}: {key} must be text of 1 to {limit} characters"
            )
            return None
        return str(value).strip()

    def ident(
        self,
        mapping: CommentedMap,
        key: str,
        where: str,
        refs: list[tuple[str, int, str]] | None = None,
    ) -> str | None:
        """An id; with ``refs``, also a reference to check once every id is known."""
        value = self.text(mapping, key, where)
        if value is not None and not _ID.fullmatch(value):
            self.fail(
                _value_line(mapping, key),
                f"{where}: {key} {value!r} must be lower-case letters, digits, '.', '_' or '-'",
            )
            return None
        if value is not None and refs is not None:
            refs.append((value, _value_line(mapping, key), f"{where}: {key}"))
        return value

    def timezone(self, data: CommentedMap) -> str:
        name = self.text(data, "timezone", "the roster")
        if name is None:
            return DEFAULT_TIMEZONE
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(_value_line(data, "timezone"), f"timezone: unknown time zone {name!r}")
            return DEFAULT_TIMEZONE
        return name

    def unique(self, data: CommentedMap, key: str, noun: str) -> None:
        seen: dict[str, int] = {}
        seq = data.get(key)
        for item in seq if isinstance(seq, CommentedSeq) else []:
            if not isinstance(item, CommentedMap):
                continue
            ident = item.get("id")
            if not isinstance(ident, str):
                continue
            line = _value_line(item, "id")
            if ident in seen:
                self.fail(line, f"duplicate {noun} id {ident!r} (first at line {seen[ident]})")
            else:
                seen[ident] = line

    # -- entries --------------------------------------------------------------------------

    def department(self, m: CommentedMap, where: str) -> DepartmentDoc | None:
        self.keys(m, _DEPARTMENT, ("id", "name"), where)
        ident = self.ident(m, "id", where)
        names = self.names(m, where)
        head = self.ident(m, "head", where, self.person_refs)
        escalation = self.levels(m, "escalation", where) if "escalation" in m else None
        if ident is None or names is None:
            return None
        return DepartmentDoc(ident, names[0], names[1], head, escalation)

    def names(self, m: CommentedMap, where: str) -> tuple[str, str] | None:
        value = m.get("name")
        if isinstance(value, str) and value.strip():
            return value.strip(), value.strip()
        if isinstance(value, CommentedMap):
            self.keys(value, ("zh", "en"), ("zh", "en"), f"{where}: name")
            zh, en = self.text(value, "zh", where), self.text(value, "en", where)
            return (zh, en) if zh is not None and en is not None else None
        if "name" in m:
            self.fail(_value_line(m, "name"), f"{where}: name must be text or {{zh: ..., en: ...}}")
        return None

    def person(self, m: CommentedMap, where: str) -> PersonDoc | None:
        self.keys(m, _PERSON, ("id", "name", "contacts"), where)
        ident = self.ident(m, "id", where)
        name = self.text(m, "name", where)
        language = self.text(m, "language", where) or "zh-CN"
        if language not in LANGUAGES:
            self.fail(
                _value_line(m, "language"),
                f"{where}: language {language!r} must be one of {', '.join(LANGUAGES)}",
            )
        department = self.ident(m, "department", where, self.department_refs)
        roles = self.roles(m, where)
        contacts = self.contacts(m, where)
        if ident is None or name is None:
            return None
        return PersonDoc(ident, name, language, department, roles, contacts)

    def roles(self, m: CommentedMap, where: str) -> tuple[str, ...]:
        seq = self.seq(m, "roles", where)
        if seq is None:
            return ()
        roles: list[str] = []
        for index, role in enumerate(seq):
            if not isinstance(role, str) or not _ROLE.fullmatch(role):
                self.fail(
                    _item_line(seq, index), f"{where}: role {role!r} must be like on_duty_agent"
                )
            elif role not in roles:
                roles.append(str(role))
        return tuple(roles)

    def contacts(self, m: CommentedMap, where: str) -> tuple[ContactDoc, ...]:
        seq = self.seq(m, "contacts", where)
        if seq is None:
            return ()
        if not seq:
            self.fail(_value_line(m, "contacts"), f"{where}: contacts must list at least one URL")
        found: list[ContactDoc] = []
        for index, item in enumerate(seq):
            line = _item_line(seq, index)
            url, label = item, None
            if isinstance(item, CommentedMap):
                self.keys(item, _CONTACT, ("url",), f"{where}: contact")
                url, label = item.get("url"), self.text(item, "label", where, limit=100)
            if not isinstance(url, str) or not _URL.fullmatch(url.strip()) or len(url) > 2000:
                self.fail(line, f"{where}: contact {url!r} must be a URL like inbox://name")
            elif refused := check_url(url, allow_link_local=self.allow_link_local):
                self.fail(line, f"{where}: contact refused: {refused}")
            elif any(c.url == url.strip() for c in found):
                self.fail(line, f"{where}: contact {url.strip()!r} is listed twice")
            else:
                found.append(ContactDoc(url.strip(), label))
        return tuple(found)

    def seq(self, m: CommentedMap, key: str, where: str) -> CommentedSeq | None:
        if key not in m:
            return None
        value = m[key]
        if not isinstance(value, CommentedSeq):
            self.fail(_value_line(m, key), f"{where}: {key} must be a list")
            return None
        return value

    def rota(self, m: CommentedMap, where: str) -> RotaDoc | None:
        self.keys(m, _ROTA, _ROTA, where)
        department = self.ident(m, "department", where, self.department_refs)
        starts_on = self.day(m, "starts_on", where)
        start_time = self.clock_time(m, where)
        hours = m.get("shift_hours")
        if "shift_hours" in m and (type(hours) is not int or not 1 <= hours <= 24):
            self.fail(_value_line(m, "shift_hours"), f"{where}: shift_hours must be 1 to 24")
            hours = None
        teams = self.teams(m, where)
        if department is None or starts_on is None or start_time is None:
            return None
        if hours is None or teams is None:
            return None
        return RotaDoc(department, starts_on, start_time, hours, teams)

    def day(self, m: CommentedMap, key: str, where: str) -> date | None:
        value = m.get(key)
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        elif isinstance(value, date) and not isinstance(value, datetime):
            return value
        if key in m:
            self.fail(
                _value_line(m, key), f"{where}: {key} {value!r} must be a date like 2026-01-01"
            )
        return None

    def clock_time(self, m: CommentedMap, where: str) -> str | None:
        value = m.get("start_time")
        match = _TIME.fullmatch(value) if isinstance(value, str) else None
        if match is None or int(match[1]) > 23 or int(match[2]) > 59:
            if "start_time" in m:
                self.fail(
                    _value_line(m, "start_time"),
                    f'{where}: start_time {value!r} must be a time like "08:00"',
                )
            return None
        return f"{int(match[1]):02d}:{match[2]}"

    def teams(self, m: CommentedMap, where: str) -> tuple[tuple[str, ...], ...] | None:
        seq = self.seq(m, "teams", where)
        if seq is None:
            return None
        if not seq:
            self.fail(_value_line(m, "teams"), f"{where}: teams must list at least one team")
            return None
        teams: list[tuple[str, ...]] = []
        for index, team in enumerate(seq):
            if not isinstance(team, CommentedSeq):
                self.fail(
                    _item_line(seq, index), f"{where}: team {index + 1} must be a list of people"
                )
                return None
            members: list[str] = []
            for position, member in enumerate(team):
                line = _item_line(team, position)
                if not isinstance(member, str):
                    self.fail(line, f"{where}: team {index + 1}: {member!r} is not a person id")
                elif member in members:
                    self.fail(line, f"{where}: team {index + 1}: {member!r} is listed twice")
                else:
                    members.append(member)
                    self.person_refs.append((member, line, f"{where}: team {index + 1}"))
            teams.append(tuple(members))
        return tuple(teams)

    def override(self, m: CommentedMap, where: str, zone: ZoneInfo) -> OverrideDoc | None:
        self.keys(m, _OVERRIDE, ("department", "person", "from", "to"), where)
        department = self.ident(m, "department", where, self.department_refs)
        person = self.ident(m, "person", where, self.person_refs)
        covers = self.ident(m, "covers", where, self.person_refs)
        if person is not None and person == covers:
            self.fail(_value_line(m, "covers"), f"{where}: {person!r} cannot cover themselves")
        starts_at, ends_at = self.moment(m, "from", where, zone), self.moment(m, "to", where, zone)
        if starts_at is not None and ends_at is not None and ends_at <= starts_at:
            self.fail(_value_line(m, "to"), f"{where}: 'to' must be after 'from'")
            return None
        if department is None or person is None or starts_at is None or ends_at is None:
            return None
        return OverrideDoc(department, person, covers, starts_at, ends_at)

    def moment(self, m: CommentedMap, key: str, where: str, zone: ZoneInfo) -> datetime | None:
        if key not in m:
            return None
        value = m[key]
        moment: datetime | None = None
        if isinstance(value, datetime):
            # ruamel hands back its own datetime subclass; keep a plain one.
            moment = datetime.combine(value.date(), value.timetz())
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                moment = None
        if moment is None:
            self.fail(
                _value_line(m, key),
                f"{where}: {key} {str(value)!r} must be a time like 2026-11-22T08:00+08:00",
            )
            return None
        # A time without an offset is read in the roster's time zone.
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)

    def levels(self, m: CommentedMap, key: str, where: str) -> tuple[str, ...] | None:
        seq = self.seq(m, key, where)
        if seq is None:
            return None
        if not seq:
            self.fail(_value_line(m, key), f"{where}: {key} must list at least one level")
            return None
        levels: list[str] = []
        for index, level in enumerate(seq):
            line = _item_line(seq, index)
            if not isinstance(level, str):
                self.fail(line, f"{where}: escalation level {level!r} is not text")
            elif level in levels:
                self.fail(line, f"{where}: escalation level {level!r} is listed twice")
            else:
                levels.append(level)
                self.level_refs.append((level, line, where))
        return tuple(levels)

    # -- references -----------------------------------------------------------------------

    def check_references(
        self, departments: list[DepartmentDoc | None], people: list[PersonDoc | None]
    ) -> None:
        department_ids = {d.id for d in departments if d is not None}
        person_ids = {p.id for p in people if p is not None}
        roles = {role for p in people if p is not None for role in p.roles}.union(BUILTIN_ROLES)
        for ident, line, where in self.department_refs:
            if ident not in department_ids:
                self.fail(line, f"{where}: unknown department {ident!r}")
        for ident, line, where in self.person_refs:
            if ident not in person_ids:
                self.fail(line, f"{where}: unknown person {ident!r}")
        for level, line, where in self.level_refs:
            if level in (ON_DUTY, SECTION_HEAD):
                continue
            if level.startswith(PERSON_PREFIX):
                if level.removeprefix(PERSON_PREFIX) not in person_ids:
                    self.fail(line, f"{where}: escalation level {level!r}: unknown person")
            elif level not in roles:
                self.fail(
                    line,
                    f"{where}: escalation level {level!r} must be on_duty, section_head, "
                    "person:ID or a role someone holds",
                )
