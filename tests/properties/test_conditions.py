"""Playbook conditions, by property: random conditions are written out, parsed back and
evaluated against an independent model of the documented semantics; garbage is refused with
``ConditionSyntaxError`` and a column inside the text, never with another exception."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from incident.playbook import LEVELS, ConditionSyntaxError, level_rank, parse_condition

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NAMES = ("delay", "trains", "line", "closed", "since")
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
MISSING = object()
FAST = settings(max_examples=50, deadline=None)


# -- a model of the grammar: each node renders itself and evaluates by the documented rules ----
@dataclass(frozen=True)
class Lit:
    value: Any
    text: str

    def render(self) -> str:
        return self.text


@dataclass(frozen=True)
class Fact:
    name: str

    def render(self) -> str:
        return self.name


@dataclass(frozen=True)
class Cmp:
    op: str
    left: Lit | Fact
    right: Lit | Fact

    def render(self) -> str:
        return f"{self.left.render()} {self.op} {self.right.render()}"


@dataclass(frozen=True)
class Not:
    item: Node

    def render(self) -> str:
        return f"not ({self.item.render()})"


@dataclass(frozen=True)
class Join:
    word: str  # and | or
    items: tuple[Node, ...]

    def render(self) -> str:
        return f" {self.word} ".join(f"({item.render()})" for item in self.items)


Node = Lit | Fact | Cmp | Not | Join


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return None


def _operand(node: Lit | Fact, facts: Mapping[str, Any]) -> Any:
    if isinstance(node, Lit):
        return node.value
    value = facts.get(node.name)
    return MISSING if value is None else value


def expected(node: Node, facts: Mapping[str, Any]) -> bool:
    """The documented semantics, written independently of the parser."""
    if isinstance(node, Lit | Fact):
        value = _operand(node, facts)
        return value is not MISSING and value is not None and bool(value)
    if isinstance(node, Not):
        return not expected(node.item, facts)
    if isinstance(node, Join):
        results = [expected(item, facts) for item in node.items]
        return all(results) if node.word == "and" else any(results)
    left, right = _operand(node.left, facts), _operand(node.right, facts)
    if isinstance(node.left, Lit) and node.left.value is None:
        present = right is not MISSING
        return present if node.op == "!=" else not present
    if isinstance(node.right, Lit) and node.right.value is None:
        present = left is not MISSING
        return present if node.op == "!=" else not present
    if left is MISSING or right is MISSING:
        return False
    if _kind(left) is None or _kind(left) != _kind(right):
        return False
    return OPS[node.op](left, right)


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


integers = st.integers(min_value=-(10**6), max_value=10**6).map(lambda n: Lit(n, str(n)))
decimals = st.tuples(st.integers(0, 10**4), st.integers(0, 999)).map(
    lambda p: Lit(float(f"{p[0]}.{p[1]:03d}"), f"{p[0]}.{p[1]:03d}")
)
strings = st.text(max_size=6).map(lambda s: Lit(s, _quoted(s)))
words = st.sampled_from([Lit(True, "true"), Lit(False, "false")])
literals = st.one_of(integers, decimals, strings, words)
facts_ = st.sampled_from(NAMES).map(Fact)
comparisons = st.one_of(
    st.builds(Cmp, st.sampled_from(list(OPS)), facts_, literals),
    st.builds(Cmp, st.sampled_from(list(OPS)), literals, facts_),
    st.builds(Cmp, st.sampled_from(list(OPS)), facts_, facts_),
    st.builds(Cmp, st.sampled_from(["==", "!="]), facts_, st.just(Lit(None, "null"))),
)
conditions: st.SearchStrategy[Node] = st.recursive(
    st.one_of(comparisons, facts_),
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(
            Join, st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3).map(tuple)
        ),
    ),
    max_leaves=8,
)
fact_values = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=6),
    st.booleans(),
)
fact_sets = st.fixed_dictionaries({}, optional={name: fact_values for name in NAMES})


@FAST
@given(conditions, fact_sets)
def test_a_written_condition_parses_back_and_evaluates_as_documented(
    node: Node, facts: dict[str, Any]
) -> None:
    parsed = parse_condition(node.render())
    assert parsed.evaluate(facts, NOW) is expected(node, facts)
    assert parsed.names <= set(NAMES)


@FAST
@given(conditions, fact_sets)
def test_not_is_the_negation_and_de_morgan_holds(node: Node, facts: dict[str, Any]) -> None:
    text = node.render()
    holds = parse_condition(text).evaluate(facts, NOW)
    assert parse_condition(f"not ({text})").evaluate(facts, NOW) is (not holds)
    assert parse_condition(f"not (not ({text}))").evaluate(facts, NOW) is holds
    other = "delay >= 60"
    both = parse_condition(f"not (({text}) and ({other}))").evaluate(facts, NOW)
    either = parse_condition(f"(not ({text})) or (not ({other}))").evaluate(facts, NOW)
    assert both is either


@FAST
@given(
    st.sampled_from(list(OPS)),
    st.one_of(st.integers(-(10**9), 10**9), st.floats(-1e9, 1e9, allow_nan=False)),
    st.one_of(integers, decimals),
)
def test_number_comparisons_are_pythons(op: str, value: float, limit: Lit) -> None:
    condition = parse_condition(f"delay {op} {limit.text}")
    assert condition.evaluate({"delay": value}, NOW) is OPS[op](value, limit.value)
    mirrored = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[op]
    assert parse_condition(f"{limit.text} {mirrored} delay").evaluate({"delay": value}, NOW) is OPS[
        op
    ](value, limit.value)


@FAST
@given(st.sampled_from(list(OPS)), st.sampled_from(LEVELS), st.sampled_from(LEVELS))
def test_severity_compares_by_rank_more_severe_is_greater(op: str, level: str, other: str) -> None:
    holds = parse_condition(f"severity {op} '{other}'").evaluate({"severity": level}, NOW)
    assert holds is OPS[op](level_rank(level), level_rank(other))


@FAST
@given(st.sampled_from(list(OPS)), literals)
def test_a_missing_fact_makes_every_comparison_false(op: str, limit: Lit) -> None:
    for facts in ({}, {"delay": None}):
        assert parse_condition(f"delay {op} {limit.text}").evaluate(facts, NOW) is False
    assert parse_condition("delay == null").evaluate({}, NOW) is True
    assert parse_condition("delay != null").evaluate({}, NOW) is False


@FAST
@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**5),
    st.sampled_from([">=", ">", "<", "<="]),
)
def test_minutes_since_holds_from_its_threshold_and_says_when_it_flips(
    ago_s: int, minutes: int, op: str
) -> None:
    since = NOW - timedelta(seconds=ago_s)
    condition = parse_condition(f"minutes_since(since) {op} {minutes}")
    facts = {"since": since.isoformat()}
    assert condition.evaluate(facts, NOW) is OPS[op](ago_s / 60, minutes)
    flip = condition.next_change(facts, NOW)
    if flip is None:
        return
    assert flip > NOW
    assert condition.evaluate(facts, flip) is not condition.evaluate(facts, NOW)
    just_before = flip - timedelta(microseconds=1)
    if just_before > NOW:
        assert condition.evaluate(facts, just_before) is condition.evaluate(facts, NOW)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("abnotr_ ()'\"=<>!-.019\\é")), max_size=24)
    | st.text(max_size=24)
)
def test_garbage_is_refused_with_a_column_inside_the_text(text: str) -> None:
    try:
        parsed = parse_condition(text)
    except ConditionSyntaxError as exc:
        assert 1 <= exc.column <= len(text) + 1
        assert f"(column {exc.column})" in str(exc)
        return
    # What parses evaluates without raising, whatever the facts.
    for facts in ({}, {name: "x" for name in parsed.names}, {name: 1 for name in parsed.names}):
        assert parsed.evaluate(facts, NOW) in (True, False)
        parsed.next_change(facts, NOW)


@FAST
@given(st.integers(min_value=10**10, max_value=10**30))
def test_a_huge_threshold_never_flips_rather_than_crashing(minutes: int) -> None:
    condition = parse_condition("minutes_since(since) >= limit")
    facts = {"since": NOW.isoformat(), "limit": minutes}
    assert condition.evaluate(facts, NOW) is False
    assert condition.next_change(facts, NOW) is None


@FAST
@given(st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"]))
def test_a_moment_outside_utc_is_no_moment(text: str) -> None:
    condition = parse_condition("minutes_since(since) >= 1")
    assert condition.evaluate({"since": text}, NOW) is False
    assert condition.next_change({"since": text}, NOW) is None
