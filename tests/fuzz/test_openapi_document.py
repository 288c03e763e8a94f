"""The OpenAPI document itself: every route has a schema, every success response names its
required fields, every path parameter is declared, errors are problem+json."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from incident.web import schemas
from incident.web.system import openapi_document
from tests.fuzz.conftest import served_document

METHODS = ("get", "put", "post", "patch", "delete")
NO_BODY = ("204", "304")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return served_document()


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def test_every_route_has_an_operation_schema(document: dict[str, Any]) -> None:
    missing = sorted(k for k, op in _operations(document).items() if op.get("x-undocumented"))
    assert not missing, f"add these to OPERATIONS in incident/web/schemas/: {missing}"


def test_no_operation_schema_outlives_its_route(document: dict[str, Any]) -> None:
    assert set(schemas.OPERATIONS) <= set(_operations(document))
    assert set(schemas.NON_JSON) <= set(schemas.OPERATIONS)


def test_a_route_without_a_schema_is_marked_and_its_path_parameters_declared() -> None:
    async def new_thing(request: Request) -> Response:
        """Something added later."""
        return JSONResponse({})

    route = Route("/api/things/{thing_id}/parts/{n:int}", new_thing, methods=["GET"])
    operation = openapi_document([route])["paths"][route.path]["get"]
    assert operation["x-undocumented"] is True and operation["summary"] == "Something added later."
    assert {(p["name"], p["schema"]["type"]) for p in operation["parameters"]} == {
        ("thing_id", "string"),
        ("n", "integer"),
    }


def test_every_json_success_response_names_its_required_fields(document: dict[str, Any]) -> None:
    empty = []
    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            if not status.startswith("2") or status in NO_BODY:
                continue
            content = response.get("content", {})
            assert content, f"{key} {status} says nothing of its body"
            for media, body in content.items():
                if media != "application/json":
                    assert media in schemas.NON_JSON.get(key, ()), (
                        f"{key} {status}: {media} is not in schemas.NON_JSON"
                    )
                    continue
                schema = _resolve(document, body["schema"])
                required = schema.get("required", [])
                if schema.get("type") != "object" or not required:
                    empty.append(f"{key} {status}")
                    continue
                assert set(required) <= set(schema["properties"]), f"{key} {status}"
    assert not empty, f"success responses without required fields: {empty}"


def test_non_json_routes_say_which_media_types_they_serve(document: dict[str, Any]) -> None:
    operations = _operations(document)
    for key, media_types in schemas.NON_JSON.items():
        served = {
            media
            for status, response in operations[key]["responses"].items()
            if status.startswith("2")
            for media in response.get("content", {})
        }
        assert served == set(media_types), key


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    for key, operation in _operations(document).items():
        path = key.split(" ", 1)[1]
        named = set(re.findall(r"{(\w+)(?::\w+)?}", path))
        declared = {
            p["name"]
            for p in operation.get("parameters", [])
            if p["in"] == "path" and p["required"] is True
        }
        assert named == declared, key


def test_every_error_response_is_problem_json(document: dict[str, Any]) -> None:
    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            if status[0] not in "45":
                continue
            content = response["content"]
            if "text/html" in content:  # the ack pages answer a browser with a page
                assert key.endswith("/ack/{token}"), key
                continue
            if key == "GET /readyz":
                continue
            assert content["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }, f"{key} {status}"


def test_writes_refuse_unknown_fields_in_their_schema(document: dict[str, Any]) -> None:
    """Routes that refuse fields they do not take say so (``additionalProperties: false``)."""
    for key, operation in _operations(document).items():
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None or key.startswith("POST /inbound/"):
            continue
        schema = _resolve(document, body["schema"])
        assert schema.get("additionalProperties") is False, key
