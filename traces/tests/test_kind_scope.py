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


@pytest.mark.django_db
def test_a_trace_with_one_unpriced_call_says_so_next_to_the_cost_of_the_priced_one(
    api: Any, cast: Cast, client: Client
) -> None:
    from catalog.models import LanguageModel

    priced = LanguageModel.objects.filter(tenant=cast.acme, input_price__gt=0).first()
    assert priced is not None, "the cast has a priced model"
    trace_id = secrets.token_hex(16)
    usage = {"input_tokens": 1000, "output_tokens": 100}
    services.spans_ingest(
        tenant=cast.acme,
        items=[
            span_item(trace_id, name="priced", kind="llm", model=priced.model_id, usage=usage),
            span_item(trace_id, name="unpriced", kind="llm", model="some-floating-model", usage=usage),
            span_item(trace_id, name="no tokens", kind="tool"),
        ],
    )
    trace = api(Scope.READ).get(f"/api/v1/traces/{trace_id}").json()
    assert trace["cost_micros"] > 0 and trace["unpriced_spans"] == 1 and trace["priced"] is False
    client.force_login(cast.alice)
    listed = client.get(reverse("console:traces", args=[cast.acme.slug])).content.decode()
    assert "+ 1 not priced" in listed
    page = client.get(reverse("console:trace", args=[cast.acme.slug, trace_id])).content.decode()
    assert "+ 1 call of a model not priced, not counted" in page
