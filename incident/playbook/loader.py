"""Read playbook files and check all of them, reporting every problem at its file:line."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

from incident.errors import PlaybookError, Problem
from incident.playbook.conditions import Condition, ConditionSyntaxError, parse_condition
from incident.playbook.durations import parse_duration
from incident.playbook.schema import (
    ACTIONS,
    BUILTIN_FACTS,
    INCIDENT_ROLES,
    INPUT_TYPES,
    NOTICE_KINDS,
    ROLE_SOURCES,
    TARGET_NAMES,
    Action,
    InputSpec,
    Playbook,
    RosterRefs,
    StageSpec,
    Trigger,
)
from incident.playbook.templates import (
    LANGUAGES,
    PAGE_ONLY_BUILTINS,
    TEMPLATE_BUILTINS,
    template_problems,
)

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_RESERVED = frozenset({"and", "or", "not", "true", "false", "null", "minutes_since"})
_PLAIN_TRIGGERS = ("declared", "manual", "resolved")
_PAGE_KEYS = ("departments", "roles", "people", "ack_within", "template", "paged_so_far", "ask")
_INPUT_KEYS = ("required", "title", "choices", "min", "max", "default")
_TRIGGER_HELP = 'declared, manual, resolved, {after: 10m}, {every: 20m} or {if: "..."}'


def parse_playbook_text(text: str, filename: str, roster: RosterRefs | None = None) -> Playbook:
    """Check a playbook's text; PlaybookError lists every problem found, each with its line."""
    return _Reader(filename, roster).playbook(text)


def _at(node: Any, how: str, key: Any, default: int) -> int:
    """The 0-based line of a mapping's key or value, or a sequence's item."""
    if how == "value" and isinstance(node, dict) and node.get(key) is None:
        how = "key"  # an empty value has no position of its own
    try:
        return int(getattr(node.lc, how)(key)[0])
    except (AttributeError, KeyError, IndexError, TypeError):
        return default


def _suggest(word: object, options: Collection[str]) -> str:
    close = difflib.get_close_matches(str(word), sorted(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Reader:
    def __init__(self, filename: str, roster: RosterRefs | None) -> None:
        self.file = filename
        self.roster = roster
        self.problems: list[Problem] = []
        self.inputs: dict[str, InputSpec] = {}
        self.template_uses: dict[str, list[tuple[str, int]]] = {}

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line + 1, message))

    def playbook(self, text: str) -> Playbook:
        data = self.yaml(text)
        if not self.problems and not isinstance(data, dict):
            self.problem(0, "a playbook is a mapping with id, version, title, kind and stages")
        if self.problems:
            raise PlaybookError(self.problems)
        required = ("id", "version", "title", "kind", "stages")
        optional = ("description", "inputs", "targets", "templates", "roles")
        self.keys(data, 0, "the playbook", required, optional)
        line = {key: _at(data, "value", key, 0) for key in data}
        playbook_id = self.pattern(data["id"], line["id"], "id", _SLUG) if "id" in data else ""
        version = data.get("version")
        if "version" in data and (type(version) is bool or not isinstance(version, int)):
            self.problem(line["version"], "version must be a whole number, such as 1")
        elif isinstance(version, int) and version < 1:
            self.problem(line["version"], "version must be 1 or more")
        title = self.text(data["title"], line["title"], "title") if "title" in data else {}
        kind = self.pattern(data["kind"], line["kind"], "kind", _NAME) if "kind" in data else ""
        description = None
        if "description" in data:
            description = self.text(data["description"], line["description"], "description")
        self.inputs = self.read_inputs(data.get("inputs"), line.get("inputs", 0))
        targets = self.read_targets(data.get("targets"), line.get("targets", 0))
        roles = self.read_roles(data.get("roles"), line.get("roles", 0))
        templates = self.read_templates(data.get("templates"), line.get("templates", 0))
        stages = self.read_stages(data["stages"], line["stages"]) if "stages" in data else []
        self.check_templates(templates)
        if self.problems:
            raise PlaybookError(sorted(self.problems, key=lambda problem: problem.line))
        return Playbook(
            id=playbook_id,
            version=int(version),
            title=title,
            kind=kind,
            description=description,
            inputs=self.inputs,
            targets=targets,
            stages=stages,
            templates={
                name: {k: v[0] for k, v in texts.items()} for name, texts in templates.items()
            },
            template_lines={
                name: {k: v[1] + 1 for k, v in texts.items()} for name, texts in templates.items()
            },
            source=text,
            digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            path=self.file,
            roles=roles,
        )

    def yaml(self, text: str) -> Any:
        try:
            return YAML(typ="rt").load(text)  # YAML 1.2: `on`, `yes` and `no` stay strings
        except DuplicateKeyError as error:
            found = re.search(r'duplicate key "(.*?)"', str(error.problem))
            key = found.group(1) if found else "?"
            mark, start = error.problem_mark, error.context_mark
            lines = text.splitlines()[start.line if start else 0 : mark.line]
            key_at = re.compile(rf"{re.escape(key)}\s*:")
            first = [
                number
                for number, line in enumerate(lines)
                if not line[: mark.column].strip(" -") and key_at.match(line, mark.column)
            ]
            where = f" (first at line {first[0] + start.line + 1})" if first and start else ""
            self.problem(mark.line, f"duplicate key '{key}'{where}")
        except MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            what = ", ".join(
                str(part).splitlines()[0] for part in (error.context, error.problem) if part
            )
            self.problem(mark.line if mark else 0, f"bad YAML: {what}")
        except YAMLError as error:
            self.problem(0, f"bad YAML: {str(error).splitlines()[0]}")
        return None

    def keys(
        self, node: Any, line: int, where: str, required: Sequence[str], optional: Sequence[str]
    ) -> bool:
        """Check a mapping's keys; False when it is not a mapping at all."""
        if not isinstance(node, dict):
            self.problem(line, f"{where} must be a mapping")
            return False
        known = (*required, *optional)
        for key in node:
            if key not in known:
                hint = " (write 'when', not 'on')" if key == "on" else _suggest(key, known)
                self.problem(_at(node, "key", key, line), f"unknown key '{key}' in {where}{hint}")
        missing = [key for key in required if key not in node]
        if missing:
            self.problem(line, f"{where} is missing {', '.join(repr(key) for key in missing)}")
        return True

    def pattern(self, value: Any, line: int, what: str, pattern: re.Pattern[str]) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self.problem(line, f"{what} '{value}' must be lower case letters, digits, - or _")
            return ""
        return str(value)

    def text(self, node: Any, line: int, where: str) -> dict[str, str]:
        """Read a {zh, en} text."""
        if not self.keys(node, line, where, LANGUAGES, ()):
            return {}
        texts = {}
        for lang in LANGUAGES:
            value = node.get(lang)
            if lang in node and (not isinstance(value, str) or not value.strip()):
                self.problem(_at(node, "value", lang, line), f"{where} {lang} must be some text")
            elif lang in node:
                texts[lang] = str(value)
        return texts

    def duration(self, value: Any, line: int, what: str, *, positive: bool = True) -> timedelta:
        try:
            result = parse_duration(value)
        except ValueError as error:
            self.problem(line, f"{what}: {error}")
            return timedelta(0)
        if positive and not result:
            self.problem(line, f"{what} must be longer than 0s")
        return result

    def read_inputs(self, node: Any, line: int) -> dict[str, InputSpec]:
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.problem(line, "inputs must be a mapping of names to {type: ...}")
            return {}
        inputs = {}
        for name, spec in node.items():
            at = _at(node, "key", name, line)
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.problem(at, f"input '{name}' must be lower case letters, digits or _")
            elif name in BUILTIN_FACTS | TEMPLATE_BUILTINS | _RESERVED:
                self.problem(at, f"input '{name}' has a name that is already built in")
            else:
                inputs[str(name)] = self.read_input(name, spec, _at(node, "value", name, at))
        return inputs

    def read_input(self, name: str, node: Any, line: int) -> InputSpec:
        where = f"input '{name}'"
        if not self.keys(node, line, where, ("type",), _INPUT_KEYS):
            return InputSpec("str")
        at = {key: _at(node, "value", key, line) for key in node}
        kind = node.get("type")
        if kind not in INPUT_TYPES:
            types = ", ".join(INPUT_TYPES)
            self.problem(at.get("type", line), f"{where} has type '{kind}'; use one of {types}")
            return InputSpec("str")
        required = node.get("required", False)
        if not isinstance(required, bool):
            self.problem(at["required"], f"{where} required must be true or false")
        title = self.text(node["title"], at["title"], f"{where} title") if "title" in node else None
        bare = InputSpec(kind)
        choices = node.get("choices")
        if choices is not None and (not isinstance(choices, list) or not choices):
            self.problem(at["choices"], f"{where} choices must be a list of values")
            choices = None
        elif choices is not None:
            choices = [
                self.coerce(bare, name, item, _at(choices, "item", i, line))
                for i, item in enumerate(choices)
            ]
        limits = {}
        for key in ("min", "max"):
            if key in node and kind not in ("int", "float"):
                self.problem(at[key], f"{where} is {kind}; only numbers have a {key}")
            elif key in node:
                limits[key] = self.coerce(bare, f"{where} {key}", node[key], at[key])
        spec = InputSpec(
            kind, required is True, title, choices, limits.get("min"), limits.get("max")
        )
        if "default" in node:
            default = self.coerce(spec, f"{where} default", node["default"], at["default"])
            spec = InputSpec(kind, spec.required, title, choices, spec.min, spec.max, default)
        return spec

    def coerce(self, spec: InputSpec, name: str, value: Any, line: int) -> Any:
        try:
            return spec.coerce(name, _plain(value))
        except ValueError as error:
            self.problem(line, str(error))
            return None

    def read_targets(self, node: Any, line: int) -> dict[str, timedelta]:
        if node is None or not self.keys(node, line, "targets", (), TARGET_NAMES):
            return {}
        return {
            name: self.duration(value, _at(node, "value", name, line), f"target {name}")
            for name, value in node.items()
            if name in TARGET_NAMES
        }

    def read_roles(self, node: Any, line: int) -> dict[str, dict[str, str]]:
        """Read ``roles``: command role -> {department|role|person: roster id}."""
        if node is None or not self.keys(node, line, "roles", (), INCIDENT_ROLES):
            return {}
        roles: dict[str, dict[str, str]] = {}
        groups = {"department": "departments", "role": "roles", "person": "people"}
        for name, source in node.items():
            at = _at(node, "value", name, line)
            where = f"role '{name}'"
            if name not in INCIDENT_ROLES:
                continue  # reported by keys()
            if not isinstance(source, dict) or len(source) != 1:
                self.problem(at, f"{where} is filled by one of {', '.join(ROLE_SOURCES)}")
                continue
            kind, value = next(iter(source.items()))
            if kind not in ROLE_SOURCES:
                hint = _suggest(kind, ROLE_SOURCES)
                self.problem(
                    at, f"{where}: unknown key '{kind}'{hint}; use {', '.join(ROLE_SOURCES)}"
                )
                continue
            found = self.ref(value, _at(source, "value", kind, at), kind, self.known(groups[kind]))
            if found is None:
                self.problem(at, f"{where} {kind} needs a name")
                continue
            roles[str(name)] = {str(kind): found}
        return roles

    def read_templates(self, node: Any, line: int) -> dict[str, dict[str, tuple[str, int]]]:
        """Read templates: name -> language -> (text, 0-based line where the text starts)."""
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.problem(line, "templates must be a mapping of names to {zh, en} texts")
            return {}
        templates: dict[str, dict[str, tuple[str, int]]] = {}
        for name, texts in node.items():
            at = _at(node, "value", name, line)
            where = f"template '{name}'"
            if not isinstance(name, str) or not _SLUG.fullmatch(name):
                self.problem(at, f"{where} must be named with lower case letters, digits, - or _")
            elif self.keys(texts, at, where, ("zh",), ("en",)):
                name = str(name)
                templates[name] = {}
                for lang in LANGUAGES:
                    value, start = texts.get(lang), _at(texts, "value", lang, at)
                    if lang in texts and not isinstance(value, str):
                        self.problem(start, f"{where} {lang} must be some text")
                    elif lang in texts:
                        block = isinstance(value, LiteralScalarString | FoldedScalarString)
                        templates[name][lang] = (str(value), start + block)
        return templates

    def check_templates(self, templates: dict[str, dict[str, tuple[str, int]]]) -> None:
        for name, uses in self.template_uses.items():
            for kind, line in uses if name not in templates else ():
                hint = _suggest(name, templates)
                self.problem(
                    line, f"{kind} action uses template '{name}', which is not defined{hint}"
                )
        common = (TEMPLATE_BUILTINS - PAGE_ONLY_BUILTINS) | set(self.inputs)
        for name, texts in templates.items():
            pages_only = all(kind == "page" for kind, _ in self.template_uses.get(name, ()))
            allowed = common | PAGE_ONLY_BUILTINS if pages_only else common
            for lang, (text, start) in texts.items():
                for offset, message in template_problems(text, allowed):
                    self.problem(start + offset, f"template '{name}' ({lang}): {message}")

    def read_stages(self, node: Any, line: int) -> list[StageSpec]:
        if not isinstance(node, list) or not node:
            self.problem(line, "stages must be a list with at least one stage")
            return []
        stages: list[StageSpec] = []
        first_line: dict[str, int] = {}
        for index, item in enumerate(node):
            at = _at(node, "item", index, line)
            stage = self.read_stage(item, at, index)
            if stage.id in first_line:
                self.problem(
                    at,
                    f"stage id '{stage.id}' is used twice (first at line {first_line[stage.id]})",
                )
            elif stage.id:
                first_line[stage.id] = at + 1
            stages.append(stage)
        return stages

    def read_stage(self, node: Any, line: int, index: int) -> StageSpec:
        named = isinstance(node, dict) and isinstance(node.get("id"), str)
        where = f"stage '{node['id']}'" if named else f"stage {index + 1}"
        if not self.keys(node, line, where, ("id", "when", "actions"), ("title", "target")):
            return StageSpec("", None, Trigger("manual"), [], line=line + 1)
        at = {key: _at(node, "value", key, line) for key in node}
        stage_id = self.pattern(node["id"], at["id"], "stage id", _SLUG) if "id" in node else ""
        title = self.text(node["title"], at["title"], f"{where} title") if "title" in node else None
        when = Trigger("manual")
        if "when" in node:
            when = self.trigger(node["when"], at["when"], where)
        target = None
        if "target" in node:
            target = self.duration(node["target"], at["target"], f"{where} target")
        actions = []
        if "actions" in node:
            actions = self.actions(node["actions"], at["actions"], where)
        return StageSpec(stage_id, title, when, actions, target, line + 1)

    def trigger(self, node: Any, line: int, where: str) -> Trigger:
        if isinstance(node, str) and node in _PLAIN_TRIGGERS:
            return Trigger(node)
        if isinstance(node, dict) and len(node) == 1:
            kind, value = next(iter(node.items()))
            at = _at(node, "value", kind, line)
            if kind in ("after", "every"):
                delay = self.duration(value, at, f"{where} {kind}", positive=kind == "every")
                return Trigger(kind, delay=delay)
            if kind == "if":
                return Trigger("if", condition=self.condition(value, at, where))
        shown = next(iter(node)) if isinstance(node, dict) and len(node) == 1 else node
        hint = _suggest(shown, (*_PLAIN_TRIGGERS, "after", "every", "if"))
        self.problem(line, f"{where} has an unknown trigger '{shown}'{hint}; use {_TRIGGER_HELP}")
        return Trigger("manual")

    def condition(self, text: Any, line: int, where: str) -> Condition | None:
        if not isinstance(text, str):
            self.problem(line, f"{where}: a condition is a string, like \"severity >= 'II'\"")
            return None
        try:
            condition = parse_condition(str(text))
        except ConditionSyntaxError as error:
            self.problem(line, f"{where}: condition {text!r}: {error}")
            return None
        known = set(self.inputs) | BUILTIN_FACTS
        for name in sorted(condition.names - known):
            hint = _suggest(name, known)
            self.problem(
                line,
                f"{where}: condition uses '{name}', which is neither an input nor "
                f"a built-in fact (severity, mode, declared_at, title){hint}",
            )
        for name in sorted(condition.time_facts & set(self.inputs)):
            if self.inputs[name].type != "datetime":
                self.problem(
                    line,
                    f"{where}: minutes_since({name}) needs a datetime fact, "
                    f"but {name} is {self.inputs[name].type}",
                )
        for name in sorted(condition.time_facts & (BUILTIN_FACTS - {"declared_at"})):
            self.problem(line, f"{where}: minutes_since({name}) needs a datetime fact")
        return condition

    def actions(self, node: Any, line: int, where: str) -> list[Action]:
        if not isinstance(node, list) or not node:
            self.problem(line, f"{where} actions must be a list with at least one action")
            return []
        actions = []
        for index, item in enumerate(node):
            at = _at(node, "item", index, line)
            if not isinstance(item, dict) or len(item) != 1:
                self.problem(
                    at, f"{where}: an action is a mapping with one key: {', '.join(ACTIONS)}"
                )
                continue
            kind, params = next(iter(item.items()))
            if kind not in ACTIONS:
                hint = _suggest(kind, ACTIONS)
                self.problem(
                    at, f"{where} has an unknown action '{kind}'{hint}; use {', '.join(ACTIONS)}"
                )
                continue
            params_line = _at(item, "value", kind, at)
            read = getattr(self, f"read_{kind}")
            params = _plain(read(params, params_line, f"{where} {kind}"))
            actions.append(Action(str(kind), params, at + 1))
        return actions

    def read_page(self, node: Any, line: int, where: str) -> dict[str, Any]:
        if not self.keys(node, line, where, (), _PAGE_KEYS):
            return {}
        at = {key: _at(node, "value", key, line) for key in node}
        params: dict[str, Any] = {
            "departments": self.refs(node, "departments", line, self.known("departments")),
            "roles": self.refs(node, "roles", line, self.known("roles")),
            "people": self.refs(node, "people", line, self.known("people")),
            "ack_within": self.duration(
                node.get("ack_within", "5m"), at.get("ack_within", line), f"{where} ack_within"
            ),
            "template": self.template_ref(
                node.get("template", "page"), at.get("template", line), "page"
            ),
            "paged_so_far": node.get("paged_so_far", False),
            "ask": self.text(node["ask"], at["ask"], f"{where} ask") if "ask" in node else None,
        }
        if not isinstance(params["paged_so_far"], bool):
            self.problem(at["paged_so_far"], f"{where} paged_so_far must be true or false")
        if not any(params[key] for key in ("departments", "roles", "people", "paged_so_far")):
            self.problem(
                line, f"{where} pages no one: give departments, roles, people or paged_so_far"
            )
        return params

    def read_notice(self, node: Any, line: int, where: str) -> dict[str, Any]:
        if not self.keys(node, line, where, ("template",), ("kind",)):
            return {}
        kind = node.get("kind", "initial")
        if kind not in NOTICE_KINDS:
            at = _at(node, "value", "kind", line)
            self.problem(at, f"{where} kind '{kind}' must be one of {', '.join(NOTICE_KINDS)}")
        template = self.template_ref(
            node.get("template"), _at(node, "value", "template", line), "notice"
        )
        return {"template": template, "kind": str(kind)}

    def read_passenger_message(self, node: Any, line: int, where: str) -> dict[str, Any]:
        if not self.keys(node, line, where, ("template",), ("offer",)):
            return {}
        offer = node.get("offer")
        if offer is not None and not isinstance(offer, str):
            self.problem(
                _at(node, "value", "offer", line), f"{where} offer must be a word, like refund"
            )
        at = _at(node, "value", "template", line)
        return {
            "template": self.template_ref(node.get("template"), at, "passenger_message"),
            "offer": offer,
        }

    def read_task(self, node: Any, line: int, where: str) -> dict[str, Any]:
        if not self.keys(node, line, where, ("title",), ("department", "person", "due")):
            return {}
        at = {key: _at(node, "value", key, line) for key in node}
        if ("department" in node) == ("person" in node):
            self.problem(line, f"{where} needs a department or a person (one of them)")
        department, person = (
            self.ref(node.get(key), at.get(key, line), key, self.known(group))
            for key, group in (("department", "departments"), ("person", "people"))
        )
        due = self.duration(node["due"], at["due"], f"{where} due") if "due" in node else None
        title = self.text(node["title"], at["title"], f"{where} title") if "title" in node else {}
        return {"department": department, "person": person, "title": title, "due": due}

    def read_authority_report(self, node: Any, line: int, where: str) -> dict[str, Any]:
        if node is None:
            node = {}
        if not self.keys(node, line, where, (), ("due",)):
            return {}
        due = None
        if "due" in node:
            due = self.duration(node["due"], _at(node, "value", "due", line), f"{where} due")
        return {"due": due}

    def known(self, what: str) -> frozenset[str] | None:
        return None if self.roster is None else frozenset(getattr(self.roster, what))

    def refs(self, node: Any, key: str, line: int, known: frozenset[str] | None) -> list[str]:
        if key not in node:
            return []
        value, at = node[key], _at(node, "value", key, line)
        if not isinstance(value, list):
            self.problem(at, f"{key} must be a list, like [a, b]")
            return []
        what = {"departments": "department", "roles": "role", "people": "person"}[key]
        return [
            self.ref(item, _at(value, "item", i, at), what, known) or ""
            for i, item in enumerate(value)
        ]

    def ref(self, value: Any, line: int, what: str, known: frozenset[str] | None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(line, f"{what} '{value}' must be a name")
            return None
        if known is not None and value not in known:
            self.problem(
                line,
                f"unknown {what} '{value}'{_suggest(value, known)}; the roster has "
                f"{', '.join(sorted(known)) or 'none'}",
            )
        return str(value)

    def template_ref(self, name: Any, line: int, kind: str) -> str:
        if not isinstance(name, str):
            self.problem(line, f"{kind} template must be the name of a template")
            return ""
        self.template_uses.setdefault(name, []).append((kind, line))
        return str(name)


def _plain(value: Any) -> Any:
    """Turn ruamel's round-trip scalars and collections into plain Python values."""
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
