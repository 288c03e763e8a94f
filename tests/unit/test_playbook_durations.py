from datetime import timedelta

import pytest

from incident.playbook import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" 5m ", timedelta(minutes=5)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_are_read_in_playbook_form(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "10x", "m", "30m1h", "1h 30m", "-5m", "1.5h", "10M"])
def test_malformed_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="like 90s, 10m, 1h30m or 2d"):
        parse_duration(text)


def test_a_bare_number_is_not_a_duration() -> None:
    with pytest.raises(ValueError, match="with a unit"):
        parse_duration(600)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(days=2, seconds=5), "2d5s"),
        (timedelta(0), "0s"),
        (timedelta(minutes=-5), "-5m"),
    ],
)
def test_durations_are_written_the_way_they_are_read(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text.lstrip("-")) == abs(value)
