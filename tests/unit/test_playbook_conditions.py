from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from incident.playbook import LEVELS, Condition, level_rank, parse_condition
from incident.playbook.conditions import ConditionSyntaxError

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def holds(text: str, now: datetime = NOW, **facts: Any) -> bool:
    return parse_condition(text).evaluate(facts, now)


def test_levels_rank_from_i_the_most_severe() -> None:
    assert LEVELS == ("I", "II", "III", "IV")
    assert [level_rank(level) for level in LEVELS] == [4, 3, 2, 1]
    with pytest.raises(ValueError, match="not a level"):
        level_rank("V")


@pytest.mark.parametrize(
    ("condition", "true_for"),
    [
        ("severity >= 'II'", {"I", "II"}),
        ("severity > 'II'", {"I"}),
        ("severity <= 'III'", {"III", "IV"}),
        ("severity < 'III'", {"IV"}),
        ("severity == 'I'", {"I"}),
        ("severity != 'I'", {"II", "III", "IV"}),
        ("'II' <= severity", {"I", "II"}),
        ('severity >= "II"', {"I", "II"}),
    ],
)
def test_severity_compares_by_rank_with_greater_meaning_more_severe(
    condition: str, true_for: set[str]
) -> None:
    assert {level for level in LEVELS if holds(condition, severity=level)} == true_for


def test_severity_against_another_fact_compares_by_rank_too() -> None:
    assert holds("severity >= threshold", severity="I", threshold="III")
    assert not holds("severity >= threshold", severity="IV", threshold="III")
    assert not holds("severity >= threshold", severity="I", threshold=3)


def test_and_binds_tighter_than_or() -> None:
    assert holds("a or b and c", a=True, b=False, c=False)
    assert not holds("(a or b) and c", a=True, b=False, c=False)


def test_not_binds_tighter_than_and() -> None:
    assert holds("not a and b", a=False, b=True)
    assert not holds("not (a and b)", a=True, b=True)
    assert holds("not not a", a=True)


def test_numbers_strings_and_booleans_compare() -> None:
    assert holds("expected_delay_min >= 120", expected_delay_min=120)
    assert holds("ratio < 1.5 and ratio > -1", ratio=0.5)
    assert holds("line == 'G' and overnight == true", line="G", overnight=True)
    assert holds("count == 2.0", count=2)


def test_a_missing_fact_makes_every_comparison_with_it_false() -> None:
    for text in ("x > 1", "x < 1", "x == 1", "x != 1", "severity >= 'IV'", "x == y"):
        assert not holds(text)
        assert not holds(text, x=None, severity=None)
    assert holds("not (x > 1)")
    assert not holds("x")


def test_null_tests_whether_a_fact_is_there() -> None:
    assert holds("x == null") and holds("x == null", x=None)
    assert not holds("x != null")
    assert holds("x != null", x=0) and holds("null != x", x=0)


def test_values_of_different_types_never_compare_and_never_raise() -> None:
    assert not holds("line == 3", line="3")
    assert not holds("line != 3", line="3")
    assert not holds("line > 3", line="G")
    assert not holds("flag == 1", flag=True)
    assert not holds("severity >= 'II'", severity="high")
    assert not holds("when < other", when=NOW, other=NOW.replace(tzinfo=None))


def test_a_bare_fact_is_true_when_present_and_truthy() -> None:
    assert holds("overnight", overnight=True)
    assert not holds("overnight", overnight=False)
    assert holds("overnight or severity == 'I'", severity="I")


def test_minutes_since_counts_from_a_datetime_fact_to_now() -> None:
    stopped = NOW - timedelta(minutes=30)
    assert holds("minutes_since(stopped_since) >= 30", stopped_since=stopped)
    assert not holds("minutes_since(stopped_since) > 30", stopped_since=stopped)
    assert not holds("minutes_since(stopped_since) >= 31", stopped_since=stopped)


def test_minutes_since_reads_iso_strings_with_an_offset() -> None:
    beijing = timezone(timedelta(hours=8))
    stopped = (NOW - timedelta(minutes=61)).astimezone(beijing).isoformat()
    assert holds("minutes_since(stopped_since) >= 60", stopped_since=stopped)
    in_utc = (NOW - timedelta(minutes=61)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert holds("60 <= minutes_since(stopped_since)", stopped_since=in_utc)


def test_minutes_since_of_a_missing_or_unreadable_time_is_false() -> None:
    for value in (None, "yesterday", "2026-11-22T09:00:00", 5):
        assert not holds("minutes_since(stopped_since) >= 0", stopped_since=value)


def test_conditions_refuse_a_naive_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_condition("x > 1").evaluate({}, NOW.replace(tzinfo=None))


def test_names_and_time_facts_list_what_a_condition_reads() -> None:
    condition = parse_condition("severity >= 'II' or minutes_since(stopped_since) >= 30 and x")
    assert condition.names == {"severity", "stopped_since", "x"}
    assert condition.time_facts == {"stopped_since"}
    assert condition.source == "severity >= 'II' or minutes_since(stopped_since) >= 30 and x"
    assert isinstance(condition, Condition)


def test_next_change_is_when_a_minutes_since_threshold_is_crossed() -> None:
    condition = parse_condition("minutes_since(stopped_since) >= 30")
    stopped = NOW - timedelta(minutes=10)
    moment = condition.next_change({"stopped_since": stopped}, NOW)
    assert moment == stopped + timedelta(minutes=30)
    assert condition.evaluate({"stopped_since": stopped}, moment)
    assert not condition.evaluate({"stopped_since": stopped}, moment - timedelta(microseconds=1))


def test_next_change_is_none_once_every_threshold_has_passed_or_is_unknown() -> None:
    condition = parse_condition("minutes_since(stopped_since) >= 30 or severity == 'I'")
    assert condition.next_change({"stopped_since": NOW - timedelta(minutes=31)}, NOW) is None
    assert condition.next_change({}, NOW) is None
    assert parse_condition("x > 3").next_change({"x": 1}, NOW) is None


def test_next_change_picks_the_earliest_future_threshold() -> None:
    condition = parse_condition(
        "minutes_since(stopped_since) >= 60 or minutes_since(stopped_since) >= 30 "
        "or minutes_since(declared_at) >= 120"
    )
    facts = {"stopped_since": NOW - timedelta(minutes=40), "declared_at": NOW.isoformat()}
    assert condition.next_change(facts, NOW) == NOW + timedelta(minutes=20)


def test_next_change_after_a_strict_comparison_is_just_past_the_threshold() -> None:
    condition = parse_condition("minutes_since(stopped_since) > 30")
    facts = {"stopped_since": NOW - timedelta(minutes=30)}
    moment = condition.next_change(facts, NOW)
    assert moment == NOW + timedelta(microseconds=1)
    assert moment is not None and condition.evaluate(facts, moment)


def test_next_change_uses_a_threshold_held_in_another_fact() -> None:
    condition = parse_condition("max_wait < minutes_since(stopped_since)")
    facts = {"stopped_since": NOW, "max_wait": 45}
    assert condition.next_change(facts, NOW) == NOW + timedelta(minutes=45, microseconds=1)


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("", "empty", 1),
        ("x = 1", "use ==", 3),
        ("x > 1 and", "ends too early", 10),
        ("(x > 1", "')'", 7),
        ("x > 'open", "never closed", 5),
        ("a < b < c", "cannot be chained", 7),
        ("x > 1 y", "unexpected 'y'", 7),
        ("and x", "expected a value", 1),
        ("x # 1", "unexpected character '#'", 3),
        ("severity >= 'V'", "compared with a level", 13),
        ("severity >= 2", "compared with a level", 13),
        ("x > null", "null can only be compared", 3),
        ("minutes_since(t)", "compare minutes_since(t) with a number", 15),
        ("minutes_since(t) == 30", "<, <=, > or >=", 18),
        ("minutes_since(t) >= '30'", "compared with a number", 21),
        ("minutes_since(3) > 1", "takes the name of a fact", 15),
        ("minutes_since t > 1", "'('", 15),
        ("__import__('os')", "unexpected '('", 11),
    ],
)
def test_syntax_errors_say_what_is_wrong_and_where(text: str, message: str, column: int) -> None:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text)
    assert message in caught.value.message
    assert caught.value.column == column
    assert isinstance(caught.value, ValueError)
    assert f"column {column}" in str(caught.value)
