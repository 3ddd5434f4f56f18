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


def _numbers(body_schema: dict[str, Any], value: int | float = 10**40) -> dict[str, Any]:
    return {
        name: value
        for name, prop in body_schema.get("properties", {}).items()
        if prop.get("type") in ("integer", "number") and not prop.get("readOnly")
    }


HOSTILE: list[tuple[str, Any]] = [
    ("invalid UTF-8", lambda schema: b'{"name": "\xff\xfe\xfd"}'),
    ("a NUL in every string", lambda schema: json.dumps(_strings(schema, "a\x00b") or {"name": "a\x00b"}).encode()),
    ("a lone surrogate in every string", lambda schema: json.dumps(_strings(schema, "a\ud800b")).encode()),
    ("numbers past any column", lambda schema: json.dumps(_numbers(schema) or {"limit": 10**40}).encode()),
    (
        "numbers below any column",
        lambda schema: json.dumps(_numbers(schema, -(10**40)) or {"limit": -(10**40)}).encode(),
    ),
    ("negative numbers", lambda schema: json.dumps(_numbers(schema, -1) or {"limit": -1}).encode()),
    ("fractions where integers go", lambda schema: json.dumps(_numbers(schema, 0.5) or {"limit": 0.5}).encode()),
    ("a float past any double", lambda schema: b'{"limit": 1e400, "input_tokens": 1e400, "max_output_tokens": -1e400}'),
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


# --- OTLP/HTTP (/v1/traces): not in the OpenAPI schema, the same hostile bodies ---------------------

OTLP_HOSTILE: list[tuple[str, str, bytes]] = [
    ("10 MB of JSON", "application/json", json.dumps({"resourceSpans": [{"x": "y" * 10_000_000}]}).encode()),
    ("10 MB of protobuf", "application/x-protobuf", b"\x0a\xff\xff\xff\x04" + b"\x00" * 10_000_000),
    ("invalid protobuf", "application/x-protobuf", b"\xff\xfe\xfd\xfc not a message"),
    ("invalid UTF-8 JSON", "application/json", b'{"resourceSpans": [{"resource": "\xff\xfe"}]}'),
    ("a NUL in JSON", "application/json", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "a\\u0000b"}]}]}]}'),
    ("nesting 100,000 deep", "application/json", b"[" * 100_000 + b"]" * 100_000),
    ("an object nested 100,000 deep", "application/json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("a JSON array", "application/json", b"[]"),
    (
        "huge and negative numbers",
        "application/json",
        json.dumps(
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": "0" * 32,
                                        "spanId": "1" * 16,
                                        "name": "n",
                                        "startTimeUnixNano": str(10**40),
                                        "endTimeUnixNano": "-1",
                                        "kind": -(10**30),
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        ).encode(),
    ),
]


@pytest.mark.parametrize("case", [name for name, _, _ in OTLP_HOSTILE])
def test_a_hostile_otlp_body_is_a_4xx_with_a_message(case: str, cast: Cast) -> None:
    client = Client(raise_request_exception=False)
    _, key = make_key(cast.acme, ["traces:write"])
    _, content_type, body = next(c for c in OTLP_HOSTILE if c[0] == case)
    response = client.post(
        "/v1/traces", data=body, content_type=content_type, headers={"Authorization": f"Bearer {key}"}
    )
    if response.status_code < 400:
        # Accepted in part: OTLP's partial success says how many spans it rejected, and why.
        partial = response.json().get("partialSuccess", {}) if content_type == "application/json" else {}
        assert partial.get("rejectedSpans") and partial.get("errorMessage"), (case, response.content[:300])
        return
    assert 400 <= response.status_code < 500, (case, response.status_code, response.content[:300])
    if response["Content-Type"].startswith("application/json"):
        assert response.json().get("message"), (case, response.content[:300])
    else:
        assert response.content, case  # a google.rpc.Status, its message inside
