"""Hostile request bodies against every write endpoint of the REST API (issue 18's hand-made
cases): invalid UTF-8, NUL bytes and lone surrogates in every string field, nesting deeper than
any parser recurses, numbers too large for any column, bodies of the wrong JSON type, 10 MB. Each
is answered 4xx in the API's error shape, never 500, whatever the endpoint."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from tenants.testing import Cast, make_key

pytestmark = pytest.mark.django_db


def _operations(client: Client) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path with its parameters filled, the request body's schema) of each write."""
    schema = client.get("/api/v1/schema/?format=json").json()
    components = schema["components"]["schemas"]
    found = []
    for template, operations in schema["paths"].items():
        path = template
        for name in [part[1:-1] for part in template.split("/") if part.startswith("{")]:
            path = path.replace("{" + name + "}", str(uuid.uuid4()) if name != "alias" else "default")
        for method, operation in operations.items():
            if method not in ("post", "put", "patch") or not isinstance(operation, dict):
                continue
            content = (operation.get("requestBody") or {}).get("content", {}).get("application/json", {})
            ref = (content.get("schema") or {}).get("$ref", "")
            body_schema = components.get(ref.rsplit("/", 1)[-1], {}) if ref else {}
            found.append((method, path, body_schema))
    return found


def _strings(body_schema: dict[str, Any], value: Any) -> dict[str, Any]:
    return {
        name: value
        for name, prop in body_schema.get("properties", {}).items()
        if prop.get("type") == "string" and not prop.get("readOnly")
    }


def _numbers(body_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        name: 10**40
        for name, prop in body_schema.get("properties", {}).items()
        if prop.get("type") in ("integer", "number") and not prop.get("readOnly")
    }


HOSTILE: list[tuple[str, Any]] = [
    ("invalid UTF-8", lambda schema: b'{"name": "\xff\xfe\xfd"}'),
    ("a NUL in every string", lambda schema: json.dumps(_strings(schema, "a\x00b") or {"name": "a\x00b"}).encode()),
    ("a lone surrogate in every string", lambda schema: json.dumps(_strings(schema, "a\ud800b")).encode()),
    ("numbers past any column", lambda schema: json.dumps(_numbers(schema) or {"limit": 10**40}).encode()),
    ("nesting 100,000 deep", lambda schema: b"[" * 100_000 + b"]" * 100_000),
    ("an object nested 100,000 deep", lambda schema: b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("a JSON array", lambda schema: b"[]"),
    ("a JSON string", lambda schema: b'"text"'),
    ("null", lambda schema: b"null"),
    ("10 MB of JSON", lambda schema: json.dumps({"name": "x" * 10_000_000}).encode()),
]


@pytest.mark.parametrize("case", [name for name, _ in HOSTILE])
def test_a_hostile_body_is_a_4xx_on_every_write_endpoint(case: str, cast: Cast) -> None:
    client = Client(raise_request_exception=False)
    _, key = make_key(cast.acme, ["admin"])
    make = dict(HOSTILE)[case]
    failures = []
    operations = _operations(client)
    assert len(operations) > 40, "the schema's write operations were not found"
    for method, path, body_schema in operations:
        response = getattr(client, method)(
            path, data=make(body_schema), content_type="application/json", headers={"Authorization": f"Bearer {key}"}
        )
        if response.status_code >= 500 or (
            response.status_code >= 400 and "error" not in (response.json() if response.content else {})
        ):
            failures.append((method.upper(), path, response.status_code, response.content[:200]))
    assert failures == [], failures
