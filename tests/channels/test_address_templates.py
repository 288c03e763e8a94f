"""A broadcast's gateway is one URL template for every number: parsed once, filled per
message in the path, the query, the headers and the payload, exactly as apprise would."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest

from incident.channels import Message, Sender, SendPolicy
from tests.peers import HttpReceiver, http_receiver


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def sender() -> Iterator[Sender]:
    s = Sender(SendPolicy(attempts=1, attempt_timeout=2.0))
    yield s
    s.close()


def test_one_template_fills_each_number_in_path_query_headers_and_payload(
    receiver: HttpReceiver, sender: Sender
) -> None:
    template = receiver.url("/ok/sms/{phone}?:to={phone}&-dest={phone}&+X-To={phone}")
    numbers = ["+8613800000001", "+8613800000002", "+447700900123"]
    outcomes = [
        sender.send_now(Message(i, template, f"t{i}", "hello", f"key-{i}", {"phone": n}), 5)
        for i, n in enumerate(numbers)
    ]
    assert all(o.delivered for o in outcomes)
    webhook = sender.channel("json")
    assert len(webhook._apprise) == 1  # type: ignore[attr-defined]  # parsed once, not per number
    got = sorted(receiver.received, key=lambda r: r.body["title"])
    assert [r.path for r in got] == [f"/ok/sms/{n.replace('+', '%2B')}" for n in numbers]
    assert [r.body["to"] for r in got] == numbers
    assert [parse_qs(r.query)["dest"] for r in got] == [[n] for n in numbers]
    assert [r.headers["x-to"] for r in got] == numbers
    assert all("{phone}" not in str(r.body) for r in got)


def test_a_plain_address_sends_its_get_parameters_too(
    receiver: HttpReceiver, sender: Sender
) -> None:
    outcome = sender.send_now(Message(1, receiver.url("/ok/x?-a=1&-b=two"), "s", "b", "k"), 5)
    assert outcome.delivered
    assert parse_qs(receiver.received[0].query) == {"a": ["1"], "b": ["two"]}


def test_a_placeholder_in_the_host_is_filled_before_parsing(sender: Sender) -> None:
    message = Message(1, "json://{phone}.invalid/x", "s", "b", "k", {"phone": "host"})
    assert message.resolved_address() == "json://host.invalid/x"
