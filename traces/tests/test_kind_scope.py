"""Traces found by the kind and the instrumentation scope of their spans (issue 15: "kind and
scope stored and filterable"), in the API and the console."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tenants.models import Scope
from tenants.testing import ApiClient, Cast, assert_error
from traces import services
from traces.tests.factories import span_item


@pytest.mark.django_db
def test_traces_are_filtered_by_a_spans_kind_and_scope(api: Any, cast: Cast, client: Client) -> None:
    tool_trace, llm_trace = secrets.token_hex(16), secrets.token_hex(16)
    services.spans_ingest(
        tenant=cast.acme,
        items=[
            span_item(tool_trace, name="lookup", kind="tool", scope={"name": "openinference.instrumentation.openai"}),
            span_item(llm_trace, name="chat", kind="llm", scope={"name": "opentelemetry.instrumentation.openai_v2"}),
        ],
    )
    reader: ApiClient = api(Scope.READ)

    def found(query: str) -> set[str]:
        response = reader.get(f"/api/v1/traces?{query}")
        assert response.status_code == 200, response.content
        return {row["trace_id"] for row in response.json()["results"]}

    assert found("kind=tool") == {tool_trace}
    assert found("kind=llm") == {llm_trace}
    assert found("scope=opentelemetry.instrumentation.openai_v2") == {llm_trace}
    assert found("scope=openinference.instrumentation.openai&kind=llm") == set()
    assert list(assert_error(reader.get("/api/v1/traces?kind=robot"), 400)["fields"]) == ["kind"]
    client.force_login(cast.alice)
    page = client.get(reverse("console:traces", args=[cast.acme.slug]), {"kind": "tool"}).content.decode()
    assert tool_trace in page and llm_trace not in page
