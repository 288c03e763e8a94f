"""Notice text rules: headline from the first line, instructions for CAP, cleaning."""

from __future__ import annotations

import pytest

from incident.errors import ConfigError, FieldError
from incident.notices import cap_sender
from incident.notices.texts import Text, check_texts, clean, items
from incident.settings import load_settings


def test_the_first_non_empty_line_of_a_rendered_template_is_the_headline() -> None:
    text = Text.from_rendered("\n\n  G部分列车晚点  \n目前G有40趟列车晚点。\n请您：查询车次。\n")
    assert text.headline == "G部分列车晚点"
    assert text.body == "目前G有40趟列车晚点。\n请您：查询车次。"


def test_what_to_do_lines_become_the_cap_instruction() -> None:
    zh = Text("G晚点", "目前G有列车晚点。\n对您的影响：可能晚点。\n请您：出行前查询。")
    assert zh.description_and_instruction() == (
        "目前G有列车晚点。\n对您的影响：可能晚点。",
        "请您：出行前查询。",
    )
    en = Text("Delays", "Trains are late.\nWhat to do: check 12306.")
    assert en.description_and_instruction() == ("Trains are late.", "What to do: check 12306.")
    told = Text("Delays", "Trains are late.", instruction="Stay at home.")
    assert told.description_and_instruction() == ("Trains are late.", "Stay at home.")


def test_control_characters_are_dropped_and_line_ends_normalised() -> None:
    assert clean("a\x00b\x1bc\r\nd\re\t") == "abc\nd\ne"


def test_headlines_are_one_line() -> None:
    errors: list[FieldError] = []
    texts = check_texts(
        {"zh": {"headline": "G线\n晚点", "body": "正文"}}, errors=errors, body_required=True
    )
    assert errors == [] and texts["zh"].headline == "G线 晚点"


def test_lists_of_lines_stations_and_trains_come_from_text_or_lists() -> None:
    assert items("G, D、K") == ["G", "D", "K"]
    assert items(["G101", " G101 ", "", "D7"]) == ["G101", "D7"]
    assert items(None) == []


def test_a_cap_sender_with_a_comma_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="INCIDENT_CAP_SENDER"):
        load_settings({"INCIDENT_CAP_SENDER": "centre,railway"})
    assert cap_sender(load_settings({"INCIDENT_PUBLIC_URL": "https://trains.example"})) == (
        "notices@trains.example"
    )
