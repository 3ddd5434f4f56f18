"""The traces REST API: contracts, idempotent replay, per-item rejections, rollups, filters,
cursor pagination, limits and erasure."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from django.urls import reverse

from tenants.models import AuditEvent, Scope
from tenants.testing import ApiClient, ApiContract, Cast, assert_error
from traces.ingest import MAX_SPANS_PER_BATCH
from traces.models import IngestBatch, IngestRejection, Span, SpanPayload, Trace
from traces.tests.factories import make_trace, span_item

pytestmark = pytest.mark.django_db


class TestTraceList(ApiContract):
    url_name = "trace-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        make_trace(cast.acme, end_user_id="ann@acme.test")
        return reverse(self.url_name)


class TestTraceDetail(ApiContract):
    url_name = "trace-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[make_trace(cast.acme).trace_id])


class TestTraceIngest(ApiContract):
    url_name = "trace-ingest"
    scope = Scope.TRACES_WRITE
    method = "post"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return {"spans": [span_item()]}


class TestEndUserErase(ApiContract):
    url_name = "end-user-detail"
    scope = Scope.ADMIN
    method = "delete"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=["ann"])


def ingest(api: ApiClient, spans: list[Any]) -> dict[str, Any]:
    response = api.post(reverse("trace-ingest"), {"spans": spans})
    assert response.status_code == 200, response.content[:500]
    return response.json()


def test_a_replayed_batch_creates_nothing_twice(acme_admin_api: ApiClient, cast: Cast) -> None:
    trace_id = secrets.token_hex(16)
    batch = [span_item(trace_id, name=f"step {i}", usage={"input_tokens": 10, "output_tokens": 1}) for i in range(50)]
    first = ingest(acme_admin_api, batch)
    second = ingest(acme_admin_api, batch)
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (50, 0, 0)
    assert (second["accepted"], second["duplicates"], second["rejected"]) == (0, 50, 0)
    assert {r["status"] for r in second["results"]} == {"duplicate"}
    assert first["receipt_id"] != second["receipt_id"]
    assert Span.objects.for_tenant(cast.acme).filter(trace_id=trace_id).count() == 50
    trace = Trace.objects.for_tenant(cast.acme).get(trace_id=trace_id)
    assert (trace.span_count, trace.input_tokens, trace.output_tokens) == (50, 500, 50)
    detail = acme_admin_api.get(reverse("trace-detail", args=[trace_id])).json()
    assert len(detail["spans"]) == 50


def test_the_same_span_twice_in_one_batch_is_stored_once(acme_admin_api: ApiClient, cast: Cast) -> None:
    item = span_item()
    body = ingest(acme_admin_api, [item, item])
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate"]
    assert Trace.objects.for_tenant(cast.acme).get(trace_id=item["trace_id"]).span_count == 1


def test_invalid_items_are_rejected_one_by_one_with_a_reason_and_counted(acme_admin_api: ApiClient, cast: Cast) -> None:
    good = span_item()
    items: list[Any] = [
        good,
        span_item(trace_id="xyz"),
        {**span_item(), "kind": "banana"},
        {**span_item(), "end_time": "2026-11-25T09:00:00Z"},
        {**span_item(), "name": ""},
        "not an object",
        {**span_item(), "usage": {"input_tokens": -1}},
    ]
    body = ingest(acme_admin_api, items)
    reasons = [r.get("reason") for r in body["results"]]
    assert reasons == [
        None,
        "invalid_id",
        "invalid_kind",
        "invalid_time",
        "missing_name",
        "invalid_span",
        "invalid_usage",
    ]
    assert body["accepted"] == 1 and body["rejected"] == 6
    assert all(r["message"] for r in body["results"][1:])
    counters = dict(IngestRejection.objects.for_tenant(cast.acme).values_list("reason", "count"))
    assert counters == {
        "invalid_id": 1,
        "invalid_kind": 1,
        "invalid_time": 1,
        "missing_name": 1,
        "invalid_span": 1,
        "invalid_usage": 1,
    }
    batch = IngestBatch.objects.for_tenant(cast.acme).get(pk=body["receipt_id"])
    assert (batch.accepted, batch.rejected, len(batch.rejections)) == (1, 6, 6)


def test_a_batch_over_the_span_limit_is_refused_whole_and_counted(acme_admin_api: ApiClient, cast: Cast) -> None:
    spans = [{"name": "x"}] * (MAX_SPANS_PER_BATCH + 1)
    error = assert_error(acme_admin_api.post(reverse("trace-ingest"), {"spans": spans}), 413, "batch_too_large")
    assert str(MAX_SPANS_PER_BATCH) in error["message"]
    assert IngestRejection.objects.for_tenant(cast.acme).get(reason="batch_too_many_spans").count == len(spans)


def test_a_body_without_spans_is_a_400(acme_admin_api: ApiClient) -> None:
    assert_error(acme_admin_api.post(reverse("trace-ingest"), {"span": []}), 400)
    assert_error(acme_admin_api.post(reverse("trace-ingest"), [1, 2]), 400)


def test_a_large_input_is_capped_on_the_span_and_kept_whole_aside(acme_admin_api: ApiClient, cast: Cast) -> None:
    big = "Ω" * 20_000
    item = span_item(input=big, output={"answer": "short"})
    ingest(acme_admin_api, [item])
    span = Span.objects.for_tenant(cast.acme).get(span_id=item["span_id"])
    assert span.input_truncated and span.input == big[: 8 * 1024] and not span.output_truncated
    assert SpanPayload.objects.for_tenant(cast.acme).get(span_id=item["span_id"], field="input").value == big


def test_rollups_add_up_spans_tokens_errors_and_duration(acme_admin_api: ApiClient, cast: Cast) -> None:
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    ingest(acme_admin_api, [span_item(trace_id, root, name="root", ms=2000, end_user_id="ann", session_id="s1")])
    ingest(
        acme_admin_api,
        [
            span_item(
                trace_id,
                parent_span_id=root,
                offset_ms=100,
                model="m",
                usage={
                    "input_tokens": 7,
                    "cached_input_tokens": 2,
                    "output_tokens": 3,
                    "reasoning_tokens": 1,
                    "cost_usd": 0.5,
                },
            ),
            span_item(
                trace_id,
                parent_span_id=root,
                offset_ms=2500,
                ms=500,
                error={"type": "Timeout", "message": "x"},
                tags=["beta"],
            ),
        ],
    )
    trace = Trace.objects.for_tenant(cast.acme).get(trace_id=trace_id)
    assert (trace.name, trace.span_count, trace.error_count, trace.status) == ("root", 3, 1, "error")
    assert (trace.input_tokens, trace.cached_input_tokens, trace.output_tokens, trace.reasoning_tokens) == (7, 2, 3, 1)
    assert trace.reported_cost_micros == 500_000 and trace.duration_ms == 3000
    assert (trace.end_user_id, trace.session_id, trace.models_used, trace.tags) == ("ann", "s1", ["m"], ["beta"])


def test_a_trace_names_its_agent_and_previews_what_it_was_asked(acme_admin_api: ApiClient, cast: Cast) -> None:
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Refund\n  A-1 "}]}
    child = span_item(trace_id, parent_span_id=root, offset_ms=5, agent_name="helper", input="not this")
    ingest(acme_admin_api, [child])  # a child first: the root's name and input win when it comes
    ingest(acme_admin_api, [span_item(trace_id, root, name="triage", agent_name="Billing bot", input=chat)])
    [listed] = [t for t in acme_admin_api.get(reverse("trace-list")).json()["results"] if t["trace_id"] == trace_id]
    assert (listed["name"], listed["agent_name"], listed["input_preview"]) == ("triage", "Billing bot", "Refund A-1")
    # A root's agent and input (a chat's last user message, in one line); a long one cut.
    long = span_item(name="r", agent_name="Billing bot", input="word " * 100)
    ingest(acme_admin_api, [long])
    stored = acme_admin_api.get(reverse("trace-detail", args=[long["trace_id"]])).json()
    assert stored["agent_name"] == "Billing bot" and len(stored["input_preview"]) == 200
    assert stored["input_preview"].endswith("…") and "  " not in stored["input_preview"]


def test_the_list_filters_and_pages_with_a_cursor(acme_admin_api: ApiClient, cast: Cast) -> None:
    make_trace(cast.acme, end_user_id="ann", session_id="s-1", tags=["vip"])
    make_trace(cast.acme, end_user_id="bob", input="Der Kühlschrank ist kaputt")
    make_trace(cast.acme, end_user_id="bob", input="冷蔵庫が壊れました")
    url = reverse("trace-list")
    assert len(acme_admin_api.get(url).json()["results"]) == 3
    assert [t["end_user_id"] for t in acme_admin_api.get(url + "?end_user=ann").json()["results"]] == ["ann"]
    assert len(acme_admin_api.get(url + "?tag=vip").json()["results"]) == 1
    assert len(acme_admin_api.get(url + "?session=s-1").json()["results"]) == 1
    assert len(acme_admin_api.get(url + "?model=gpt-4o-2024-08-06").json()["results"]) == 3
    assert len(acme_admin_api.get(url + "?q=kühlschrank").json()["results"]) == 1
    assert len(acme_admin_api.get(url + "?q=冷蔵庫").json()["results"]) == 1
    assert len(acme_admin_api.get(url + "?min_latency_ms=5000").json()["results"]) == 0
    page = acme_admin_api.get(url + "?page_size=2").json()
    assert len(page["results"]) == 2 and page["next"]
    rest = acme_admin_api.get(page["next"]).json()
    assert len(rest["results"]) == 1
    ids = {t["trace_id"] for t in page["results"]} | {t["trace_id"] for t in rest["results"]}
    assert len(ids) == 3
    assert_error(acme_admin_api.get(url + "?since=yesterday"), 400)


def test_another_tenants_trace_is_a_404_and_never_listed(api: Any, cast: Cast) -> None:
    trace = make_trace(cast.acme)
    globex = api(Scope.ADMIN, tenant=cast.globex)
    assert_error(globex.get(reverse("trace-detail", args=[trace.trace_id])), 404, "not_found")
    assert globex.get(reverse("trace-list")).json()["results"] == []
    # The same ids ingested by Globex are Globex's own trace, not a duplicate of Acme's.
    item = span_item(trace.trace_id, name="globex span")
    assert ingest(globex, [item])["accepted"] == 1
    assert Trace.objects.for_tenant(cast.acme).get(trace_id=trace.trace_id).span_count == 3


def test_erasing_an_end_user_removes_their_traces_and_returns_a_receipt(acme_admin_api: ApiClient, cast: Cast) -> None:
    make_trace(cast.acme, end_user_id="ann", input="my address is 1 Main St")
    kept = make_trace(cast.acme, end_user_id="bob")
    response = acme_admin_api.delete(reverse("end-user-detail", args=["ann"]))
    assert response.status_code == 200, response.content
    receipt = response.json()
    assert receipt["counts"]["traces"] == 1 and receipt["counts"]["spans"] == 3
    assert receipt["end_user"].startswith("erased-") and "ann" not in receipt["end_user"]
    assert not Span.objects.for_tenant(cast.acme).filter(end_user_id="ann").exists()
    assert not Span.objects.for_tenant(cast.acme).filter(search_text__contains="Main St").exists()
    assert Trace.objects.for_tenant(cast.acme).filter(pk=kept.pk).exists()
    event = AuditEvent.objects.for_tenant(cast.acme).get(action="end_user.erased")
    assert event.target_label == receipt["end_user"] and "ann" not in str(event.after)


def test_the_fast_span_shape_matches_the_documented_serializer(acme_admin_api: ApiClient, cast: Cast) -> None:
    from traces.serializers import SpanSerializer, span_dict

    item = span_item(
        input={"q": "x"},
        error={"type": "E", "message": "m"},
        tags=["t"],
        links=[],
        model="m",
        usage={"input_tokens": 3, "cost_usd": 0.1},
    )
    ingest(acme_admin_api, [item])
    span = Span.objects.for_tenant(cast.acme).get(span_id=item["span_id"])
    assert span_dict(span) == dict(SpanSerializer(span).data)


def test_search_finds_text_of_spans_that_arrived_in_a_later_batch(acme_admin_api: ApiClient, cast: Cast) -> None:
    trace_id = secrets.token_hex(16)
    ingest(acme_admin_api, [span_item(trace_id, name="root", input="hello")])
    ingest(acme_admin_api, [span_item(trace_id, name="late", output="Пожалуйста, верните деньги")])
    found = acme_admin_api.get(reverse("trace-list") + "?q=верните").json()["results"]
    assert [t["trace_id"] for t in found] == [trace_id]
    assert acme_admin_api.get(reverse("trace-list") + "?q=100%25").json()["results"] == []  # % is literal


def test_a_batch_mixing_small_and_huge_counts_and_missing_values_is_stored_exactly(
    acme_admin_api: ApiClient, cast: Cast
) -> None:
    items = [
        span_item(usage={"input_tokens": 5}),
        span_item(usage={"input_tokens": 10**12, "output_tokens": 10**12, "cost_micros": 10**12}),
        span_item(),
    ]
    assert ingest(acme_admin_api, items)["accepted"] == 3
    stored = {s.span_id: s for s in Span.objects.for_tenant(cast.acme)}
    assert stored[items[0]["span_id"]].input_tokens == 5
    huge = stored[items[1]["span_id"]]
    assert (huge.input_tokens, huge.output_tokens, huge.reported_cost_micros) == (10**12, 10**12, 10**12)
    assert stored[items[2]["span_id"]].reported_cost_micros is None


def test_personal_data_and_secrets_are_masked_at_ingestion_unless_the_tenant_turns_it_off(
    acme_admin_api: ApiClient, cast: Cast
) -> None:
    from guardrails.services import guardrail_settings_update
    from tenants.audit import Actor
    from traces.models import Span

    secret = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zB9dF1hJ3lN5"
    item = span_item(
        input={"messages": [{"role": "user", "content": "I am ann@example.com, card 4111 1111 1111 1111"}]},
        output=f"Use the key {secret} to log in.",
        attributes={"note": "call +1 415 555 0100"},
    )
    ingest(acme_admin_api, [item])
    span = Span.objects.for_tenant(cast.acme).get(span_id=item["span_id"])
    stored = json.dumps([span.input, span.output, span.attributes, span.search_text])
    for raw in ("ann@example.com", "4111 1111 1111 1111", secret, "415 555 0100"):
        assert raw not in stored, raw
    assert isinstance(span.input, dict) and span.input["messages"][0]["role"] == "user"  # the shape is kept

    guardrail_settings_update(actor=Actor.system_actor("tests"), tenant=cast.acme, redact_traces=False)
    kept = span_item(output="write to ann@example.com")
    ingest(acme_admin_api, [kept])
    assert Span.objects.for_tenant(cast.acme).get(span_id=kept["span_id"]).output == "write to ann@example.com"


def test_the_whole_trace_answers_each_span_in_span_dicts_shape(acme_admin_api: ApiClient, cast: Cast) -> None:
    from traces.serializers import TraceSerializer, span_dict

    trace_id = secrets.token_hex(16)
    root = span_item(trace_id, name="root", input={"q": 'Grüße \u0001 "x"'}, tags=["a", "b"], model="m")
    items = [
        root,
        span_item(trace_id, parent_span_id=root["span_id"], error={"type": "E", "message": "m"}, output="ok"),
        span_item(
            trace_id,
            parent_span_id=root["span_id"],
            offset_ms=3,
            ms=1,
            usage={"input_tokens": 3, "cost_usd": 0.1},
            links=[],
        ),
        span_item(trace_id, parent_span_id=root["span_id"], offset_ms=7, ms=1500),
    ]
    ingest(acme_admin_api, items)
    body = acme_admin_api.get(reverse("trace-detail", args=[trace_id])).json()
    trace = Trace.objects.for_tenant(cast.acme).get(trace_id=trace_id)
    spans = Span.objects.for_tenant(cast.acme).filter(trace_id=trace_id).order_by("started_at", "id")
    expected = {**TraceSerializer(trace).data, "spans": [span_dict(s) for s in spans], "spans_truncated": False}
    assert json.loads(json.dumps(expected)) == body
    assert list(body) == list(expected) and list(body["spans"][0]) == list(expected["spans"][0])
    assert [type(s["duration_ms"]) for s in body["spans"]] == [type(s["duration_ms"]) for s in expected["spans"]]
