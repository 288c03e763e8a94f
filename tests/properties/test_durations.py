"""Playbook durations (``90s``, ``10m``, ``1h30m``, ``2d``), by property: what is written
reads back the same, any spelling of a duration reads as its parts add up, and anything else
is refused with a ValueError naming the text, never another exception."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incident.playbook import format_duration, parse_duration

FAST = settings(max_examples=50, deadline=None)
WELL_FORMED = re.compile(r"(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?", re.ASCII)
durations = st.integers(min_value=0, max_value=10**6 * 86400).map(lambda s: timedelta(seconds=s))


@FAST
@given(durations)
def test_a_written_duration_reads_back_the_same(value: timedelta) -> None:
    text = format_duration(value)
    assert parse_duration(text) == value
    assert re.fullmatch(r"0s|(\d+d)?(\d+h)?(\d+m)?(\d+s)?", text)
    assert format_duration(parse_duration(text)) == text  # the written form is canonical


@FAST
@given(
    st.one_of(st.none(), st.integers(0, 10**5)),
    st.one_of(st.none(), st.integers(0, 10**4)),
    st.one_of(st.none(), st.integers(0, 10**5)),
    st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_any_spelling_reads_as_its_parts_add_up(
    days: int | None, hours: int | None, minutes: int | None, seconds: int | None
) -> None:
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    text = "".join(f"{n}{unit}" for n, unit in parts if n is not None)
    if not text:
        return
    expected = timedelta(
        days=days or 0, hours=hours or 0, minutes=minutes or 0, seconds=seconds or 0
    )
    assert parse_duration(text) == expected
    assert parse_duration(f"  {text}\n") == expected


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("0123456789dhms -.x٣²")), max_size=12)
    | st.text(max_size=12)
)
def test_anything_else_is_refused_with_a_value_error_naming_it(text: str) -> None:
    well_formed = text.strip() != "" and WELL_FORMED.fullmatch(text.strip()) is not None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        assert not well_formed or "too long" in str(exc)
        assert "duration" in str(exc)
        return
    assert well_formed, f"{text!r} was read as {value}"
    assert value >= timedelta(0)


@pytest.mark.parametrize("text", ["99999999999d", "1000000000d", "1" + "0" * 30 + "s"])
def test_a_duration_past_any_calendar_is_refused_plainly(text: str) -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration(text)


@pytest.mark.parametrize("value", [None, 5, 1.5, ["10m"]])
def test_a_duration_must_be_text(value: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(value)  # type: ignore[arg-type]
