"""Conditions over an incident's facts: a small grammar of our own, never ``eval``.

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand    := NUMBER | STRING | true | false | null | NAME
                | "minutes_since" "(" NAME ")" | "(" condition ")"

A missing or null fact makes every comparison that involves it false (``x == null`` and
``x != null`` test for presence); so does comparing values of different types. ``severity`` is
compared by rank: ``>`` means more severe, so ``severity >= 'II'`` holds for I and II.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["LEVELS", "Condition", "ConditionSyntaxError", "level_rank", "parse_condition"]

LEVELS = ("I", "II", "III", "IV")
"""Incident levels, I the most severe."""

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_TICK = timedelta(microseconds=1)


class ConditionSyntaxError(ValueError):
    """A condition that does not parse; ``column`` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (column {column})")
        self.message = message
        self.column = column


@dataclass(frozen=True)
class Literal:
    value: Any
    column: int = field(compare=False)


@dataclass(frozen=True)
class Name:
    name: str
    column: int = field(compare=False)


@dataclass(frozen=True)
class MinutesSince:
    name: str
    column: int = field(compare=False)


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node
    by_rank: bool = False  # severity against a level: compare ranks
    presence: bool = False  # against null: test whether the fact is there


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Literal | Name | MinutesSince | Compare | Not | And | Or


def level_rank(level: str) -> int:
    """Rank a level so that a larger rank is more severe: I is 4, IV is 1."""
    try:
        return len(LEVELS) - LEVELS.index(level)
    except ValueError:
        raise ValueError(f"'{level}' is not a level; use one of I, II, III, IV") from None


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Condition:
    """A parsed condition; evaluate it against an incident's facts at a moment."""

    source: str
    names: frozenset[str]
    time_facts: frozenset[str]
    root: Node = field(repr=False, compare=False)

    def evaluate(self, facts: Mapping[str, Any], now: datetime) -> bool:
        """Say whether the condition holds for these facts at ``now`` (an aware datetime)."""
        _require_aware(now)
        return _truth(_value(self.root, facts, now))

    def next_change(self, facts: Mapping[str, Any], now: datetime) -> datetime | None:
        """Find the earliest moment after ``now`` when a ``minutes_since`` comparison flips."""
        _require_aware(now)
        moments = [m for m in _flip_moments(self.root, facts, now) if m > now]
        return min(moments, default=None)


def parse_condition(text: str) -> Condition:
    """Parse a condition; raise `ConditionSyntaxError` with a 1-based column if it is wrong."""
    root = _Parser(text).condition()
    names: set[str] = set()
    time_facts: set[str] = set()
    for node in _walk(root):
        if isinstance(node, Name):
            names.add(node.name)
        elif isinstance(node, MinutesSince):
            names.add(node.name)
            time_facts.add(node.name)
    return Condition(text, frozenset(names), frozenset(time_facts), root)


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, And | Or):
        for item in node.items:
            yield from _walk(item)
    elif isinstance(node, Not):
        yield from _walk(node.item)
    elif isinstance(node, Compare):
        yield from _walk(node.left)
        yield from _walk(node.right)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("conditions are evaluated at an aware datetime")


def _truth(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    return bool(value)


def _value(node: Node, facts: Mapping[str, Any], now: datetime) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        value = facts.get(node.name)
        return MISSING if value is None else value
    if isinstance(node, MinutesSince):
        moment = as_datetime(facts.get(node.name))
        return MISSING if moment is None else (now - moment).total_seconds() / 60
    if isinstance(node, Not):
        return not _truth(_value(node.item, facts, now))
    if isinstance(node, And):
        return all(_truth(_value(item, facts, now)) for item in node.items)
    if isinstance(node, Or):
        return any(_truth(_value(item, facts, now)) for item in node.items)
    assert isinstance(node, Compare)
    return _compare(node, _value(node.left, facts, now), _value(node.right, facts, now))


def _compare(node: Compare, left: Any, right: Any) -> bool:
    if node.presence:
        null_on_left = isinstance(node.left, Literal) and node.left.value is None
        present = (right if null_on_left else left) not in (MISSING, None)
        return present if node.op == "!=" else not present
    if left is MISSING or right is MISSING:
        return False
    if node.by_rank:
        if left not in LEVELS or right not in LEVELS:
            return False
        left, right = level_rank(left), level_rank(right)
    elif _kind(left) != _kind(right) or _kind(left) is None:
        return False
    try:
        return _OPS[node.op](left, right)
    except TypeError:  # an aware datetime against a naive one
        return False


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, datetime):
        return "datetime"
    return None


def as_datetime(value: Any) -> datetime | None:
    """Read an aware datetime or an ISO 8601 string with an offset; None otherwise."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is no moment in UTC
            return None
        return value
    return None


def _flip_moments(node: Node, facts: Mapping[str, Any], now: datetime) -> Iterator[datetime]:
    for item in _walk(node):
        if not isinstance(item, Compare):
            continue
        if isinstance(item.left, MinutesSince) and not isinstance(item.right, MinutesSince):
            clock, other, op = item.left, item.right, item.op
        elif isinstance(item.right, MinutesSince) and not isinstance(item.left, MinutesSince):
            clock, other, op = item.right, item.left, _MIRROR[item.op]
        else:
            continue
        start = as_datetime(facts.get(clock.name))
        limit = _value(other, facts, now)
        if start is None or _kind(limit) != "number":
            continue
        try:
            threshold = start + timedelta(minutes=limit)
            # `>=` and `<` flip at the threshold itself; `>` and `<=` just after it.
            yield threshold if op in (">=", "<") else threshold + _TICK
        except OverflowError:  # past the last representable moment: it never flips
            continue


_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|<=|>=|<|>)
      | (?P<punct>[()\-])""",
    re.VERBOSE,
)
_WORDS = frozenset({"and", "or", "not", "true", "false", "null", "minutes_since"})
_LITERAL_WORDS = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, op, punct, end
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            if char in "'\"":
                raise ConditionSyntaxError("this string is never closed", pos + 1)
            if char == "=":
                raise ConditionSyntaxError("use == to compare", pos + 1)
            raise ConditionSyntaxError(f"unexpected character '{char}'", pos + 1)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), pos + 1))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "name" and token.text == word

    def condition(self) -> Node:
        if self.peek().kind == "end":
            raise ConditionSyntaxError("the condition is empty", 1)
        node = self.either()
        token = self.peek()
        if token.kind != "end":
            raise ConditionSyntaxError(f"unexpected '{token.text}'", token.column)
        return node

    def either(self) -> Node:
        items = [self.both()]
        while self.at_word("or"):
            self.take()
            items.append(self.both())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def both(self) -> Node:
        items = [self.negation()]
        while self.at_word("and"):
            self.take()
            items.append(self.negation())
        return items[0] if len(items) == 1 else And(tuple(items))

    def negation(self) -> Node:
        if self.at_word("not"):
            self.take()
            return Not(self.negation())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        if self.peek().kind != "op":
            if isinstance(left, MinutesSince):
                raise ConditionSyntaxError(
                    f"compare minutes_since({left.name}) with a number, "
                    f"e.g. minutes_since({left.name}) >= 30",
                    left.column,
                )
            return left
        op = self.take()
        right = self.operand()
        if self.peek().kind == "op":
            raise ConditionSyntaxError(
                "comparisons cannot be chained; join them with 'and'", self.peek().column
            )
        return _checked_compare(op, left, right)

    def operand(self) -> Node:
        token = self.take()
        if token.kind == "number":
            return Literal(_number(token.text), token.column)
        if token.kind == "punct" and token.text == "-" and self.peek().kind == "number":
            return Literal(-_number(self.take().text), token.column)
        if token.kind == "string":
            return Literal(re.sub(r"\\(.)", r"\1", token.text[1:-1]), token.column)
        if token.kind == "punct" and token.text == "(":
            node = self.either()
            self.expect(")", "a ')' to close the '(' at column " + str(token.column))
            return node
        if token.kind == "name":
            if token.text in _LITERAL_WORDS:
                return Literal(_LITERAL_WORDS[token.text], token.column)
            if token.text == "minutes_since":
                self.expect("(", "'(' after minutes_since")
                name = self.take()
                if name.kind != "name" or name.text in _WORDS:
                    raise ConditionSyntaxError(
                        "minutes_since takes the name of a fact", name.column
                    )
                self.expect(")", "')' after the name of the fact")
                return MinutesSince(name.text, name.column)
            if token.text not in _WORDS:
                return Name(token.text, token.column)
        if token.kind == "end":
            raise ConditionSyntaxError("the condition ends too early", token.column)
        raise ConditionSyntaxError(f"expected a value, found '{token.text}'", token.column)

    def expect(self, text: str, what: str) -> None:
        token = self.take()
        if token.text != text or token.kind not in ("punct", "end"):
            found = f"'{token.text}'" if token.kind != "end" else "the end"
            raise ConditionSyntaxError(f"expected {what}, found {found}", token.column)


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def _checked_compare(op: _Token, left: Node, right: Node) -> Compare:
    """Refuse comparisons that can never mean what the author wanted."""
    sides = (left, right)
    literals = [side for side in sides if isinstance(side, Literal)]
    if any(side.value is None for side in literals):
        if op.text not in ("==", "!="):
            raise ConditionSyntaxError("null can only be compared with == or !=", op.column)
        return Compare(op.text, left, right, presence=True)
    if any(isinstance(side, MinutesSince) for side in sides):
        if op.text in ("==", "!="):
            raise ConditionSyntaxError("compare minutes_since(...) with <, <=, > or >=", op.column)
        for side in literals:
            if not _is_number(side.value):
                raise ConditionSyntaxError(
                    "minutes_since(...) is compared with a number", side.column
                )
    if any(isinstance(side, Name) and side.name == "severity" for side in sides):
        for other in sides:
            if isinstance(other, MinutesSince) or (
                isinstance(other, Literal) and other.value not in LEVELS
            ):
                raise ConditionSyntaxError(
                    "severity is compared with a level: 'I', 'II', 'III' or 'IV'", other.column
                )
        return Compare(op.text, left, right, by_rank=True)
    return Compare(op.text, left, right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
