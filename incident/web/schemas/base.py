"""The building blocks of the schemas: types, parameters, bodies, responses, problems."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

PROBLEM_JSON = "application/problem+json"
HTML = "text/html"


def ref(name: str) -> Schema:
    """A reference to ``COMPONENTS[name]``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """The schema, or null."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object of exactly these properties, all required but ``optional``: a response
    field the schema does not name fails the fuzz tests, a request field is refused."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def page_of(item: Schema, **extra: Schema) -> Schema:
    """A list as the API returns them: ``{items, next_cursor}``."""
    return obj({"items": array(item), "next_cursor": CURSOR, **extra})


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
WHEN: Schema = {"type": "string", "format": "date-time"}
MAYBE_WHEN = nullable(WHEN)
MAYBE_STR = nullable(STR)
MAYBE_INT = nullable(INT)
MAYBE_NUM = nullable(NUM)
CURSOR = MAYBE_STR
STRINGS = array(STR)
LEVEL = enum("I", "II", "III", "IV")
MODE = enum("live", "drill")
BILINGUAL: Schema = {"type": "object", "additionalProperties": STR}


def param(name: str, where: str, schema: Schema, description: str = "") -> Schema:
    out: Schema = {"name": name, "in": where, "required": where == "path", "schema": schema}
    if description:
        out["description"] = description
    return out


def ids(*names: str) -> list[Schema]:
    """Path parameters: opaque ids."""
    return [param(name, "path", {"type": "string", "minLength": 1}) for name in names]


LIMIT = param("limit", "query", {"type": "integer", "minimum": 1}, "page size")
PAGE_CURSOR = param("cursor", "query", STR, "next_cursor of the previous page")


# The body of an action that takes no fields (fire, acknowledge, publish, re-send).
NO_FIELDS: Schema = {
    "required": False,
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": False}}},
}


def json_body(schema: Schema, *, example: Any = None) -> Schema:
    content: Schema = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"required": True, "content": {"application/json": content}}


def ok(schema: Schema, status: int = 200, *, location: bool = False) -> dict[str, Schema]:
    """A JSON success response."""
    response: Schema = {
        "description": "success",
        "content": {"application/json": {"schema": schema}},
    }
    if location:
        response["headers"] = {"Location": {"schema": STR, "required": True}}
    return {str(status): response}


def body_of(*media: str, schema: Schema | None = None, status: int = 200) -> dict[str, Schema]:
    """A success response that is not (only) JSON; ``schema`` describes a JSON alternative."""
    content: Schema = {m: {"schema": STR} for m in media}
    if "application/json" in content and schema is not None:
        content["application/json"] = {"schema": schema}
    return {str(status): {"description": "success", "content": content}}


WHY = {
    400: "the body is not a JSON object, or a query parameter is malformed",
    401: "no valid bearer token",
    403: "the caller's role may not do this",
    404: "no such object",
    409: "the object's state does not allow this",
    410: "the link was used or has expired",
    413: "the body is too large",
    415: "the body is not JSON",
    422: "a field is not valid (see errors)",
    429: "too many requests; retry later",
}


def problems(*statuses: int) -> dict[str, Schema]:
    """Problem+json responses for these statuses."""
    return {
        str(status): {
            "description": WHY[status],
            "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
        }
        for status in statuses
    }


# Who may call: read (any role), write (a role is required; 403 otherwise), and what a body
# can go wrong with.
READ = (401, 429)
WRITE = (401, 403, 429)
BODY = (400, 413, 415, 422)


def op(
    *,
    responses: dict[str, Schema],
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    public: bool = False,
) -> Schema:
    """An operation's fragment; ``public`` needs no bearer token."""
    fragment: Schema = {"responses": responses}
    if parameters:
        fragment["parameters"] = parameters
    if body is not None:
        fragment["requestBody"] = body
    if public:
        fragment["security"] = []
    return fragment
