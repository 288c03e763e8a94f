"""Inputs that once made the API fail with a 500, found while fuzzing: each now gets a clear
problem+json 4xx naming what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fuzz.conftest import FuzzApp

NO_UTC = "0001-01-01T00:00:00+01:00"  # before the first moment UTC can hold
PAST_UTC = "9999-12-31T23:59:59-14:00"  # after the last one
HUGE = "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"  # a cursor of 9999...9 (past any row id)
GROUP = {"train": "G1", "count": 1}
STRINGS = "/api/incidents/{incident_id}/passenger-groups"
RATED = {"ratings": [{"task": "Page the director", "rating": "P"}]}
EVALUATE = "/api/drills/{incident_id}/evaluations"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("GET", "/api/complaints?kind=inquiry", None, 200, None),
        ("POST", EVALUATE, {"ratings": [{"task": "x", "rating": ["P"]}]}, 422, "ratings.0.rating"),
        ("POST", EVALUATE, {**RATED, "strengths": 5}, 422, "strengths"),
        ("POST", EVALUATE, {**RATED, "improvements": 5}, 422, "improvements"),
        ("POST", EVALUATE, {**RATED, "corrective_actions": "ab"}, 422, "corrective_actions"),
        ("POST", STRINGS, {**GROUP, "needs": [["water"]]}, 422, "needs"),
        ("POST", STRINGS, {**GROUP, "needs": [{}]}, 422, "needs"),
        ("POST", STRINGS, {**GROUP, "since": NO_UTC}, 422, "since"),
        (
            "POST",
            "/api/passenger-groups/{group_id}/care",
            {"need": "water", "what": "x", "provided_at": NO_UTC},
            422,
            "provided_at",
        ),
        (
            "POST",
            "/api/incidents/{incident_id}/inquiries",
            {"question": "q", "phone": "13812340001", "callback_due": PAST_UTC},
            422,
            "callback_due",
        ),
        (
            "POST",
            "/api/incidents",
            {
                "playbook": "mass-delay",
                "severity": "I",
                "title": "x",
                "facts": {
                    "line": "G",
                    "trains_affected": 1,
                    "expected_delay_min": 1,
                    "stopped_since": PAST_UTC,
                },
            },
            422,
            "facts.stopped_since",
        ),
        (
            "POST",
            "/api/passenger-groups/{group_id}/broadcasts",
            {"texts": {"zh": "x"}, "offer": {"a": 1}},
            422,
            None,
        ),
        ("GET", "/api/incidents?cursor=MDAwMS0wMS0wMVQwMDowMCswMTowMHx4", None, 400, None),
        ("GET", "/api/incidents?cursor=MjAyNi0wMS0wMVQwMDowMHx4", None, 400, None),  # naive
        ("GET", "/api/incidents?limit=²", None, 400, None),
        ("GET", "/api/incidents/{incident_id}/timeline?cursor=" + HUGE, None, 400, None),
        ("GET", "/api/broadcasts/{broadcast_id}?cursor=" + HUGE, None, 400, None),
        ("GET", "/api/passenger-groups/{group_id}/passengers?cursor=" + HUGE, None, 400, None),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    fuzz_app: FuzzApp, method: str, path: str, body: Any, status: int, field: str | None
) -> None:
    response = fuzz_app.client.request(
        method, path.format(**fuzz_app.known), json=body, headers=fuzz_app.headers
    )
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == status and problem["detail"]
        if field is not None:
            assert field in {e["field"] for e in problem["errors"]}, problem
    else:
        assert all(item["kind"] == "complaint" for item in response.json()["items"])
