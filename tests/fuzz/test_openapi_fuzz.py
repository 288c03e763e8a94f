"""Schemathesis against /openapi.json, as an admin: no 5xx, and every response of a
documented status, content type, headers and schema. Each operation gets a bounded number of
examples, its path ids half the time generated and half the time those of the seeded objects
(see conftest), so that handlers are driven past their lookups."""

from __future__ import annotations

from typing import Any

import hypothesis
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.conftest import FuzzApp, served_document

EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
KNOWN: dict[str, str] = {}  # filled from the seeded app before the first case is drawn

schema = schemathesis.openapi.from_dict(served_document())


@schema.hook
def flatmap_path_parameters(
    context: Any, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not path_parameters:
        return st.just(path_parameters)
    real = {name: KNOWN.get(name, value) for name, value in path_parameters.items()}
    return st.sampled_from([path_parameters, real])


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)
def test_the_api_keeps_its_contract(case: schemathesis.Case, fuzz_app: FuzzApp) -> None:
    KNOWN.update(fuzz_app.known)
    case.call_and_validate(app=fuzz_app.app, headers=fuzz_app.headers, checks=CHECKS)
