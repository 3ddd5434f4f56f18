"""Span ingestion's write path: spans written by COPY, or by INSERT … ON CONFLICT when some are
stored already (the same rows either way), context inherited and pushed down across batches,
concurrent overlapping batches, and redaction done once per distinct text with the same result as
redacting each text."""

from __future__ import annotations

import contextlib
import secrets
import threading
from typing import Any

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone
from psycopg import errors as psycopg_errors

from guardrails.services import redact_text
from tenants import rls
from tenants.models import Tenant
from tenants.testing import ApiClient, Cast
from traces import services
from traces.ingest import SpanRejected, parse_span
from traces.models import Span, Trace
from traces.tests.factories import span_item

COMPARED = [
    f.attname
    for f in Span._meta.concrete_fields
    if f.attname not in ("id", "tenant_id", "ingested_at")  # the tenant and the clock differ by design
]


def stored(tenant: Tenant, trace_ids: list[str]) -> list[tuple[Any, ...]]:
    return list(
        Span.objects.for_tenant(tenant)
        .filter(trace_id__in=trace_ids)
        .order_by("trace_id", "span_id")
        .values_list(*COMPARED)
    )


def varied_items(trace_id: str) -> list[dict[str, Any]]:
    """Spans that use every column: payloads of each JSON shape, a large one, errors, tags, links,
    attributes, usage, context, text COPY must escape (tabs, newlines, backslashes, quotes)."""
    root = secrets.token_hex(8)
    return [
        span_item(
            trace_id,
            root,
            name="invoke_agent\tsupport\\desk",
            kind="agent",
            ms=900,
            end_user_id="ann@acme.test",
            session_id="s-1",
            agent_id="ag-1",
            run_id="run-1",
            tags=["vip", 'quote"d', "back\\slash", "comma,tag", "{brace}"],
            status="ok",
            input={"messages": [{"role": "user", "content": 'line one\nline two\ttab \\ "quoted"'}]},
            output=["a list", 1, 2.5, None, True],
        ),
        span_item(
            trace_id,
            parent_span_id=root,
            name="chat",
            kind="llm",
            offset_ms=10,
            model="gpt-4o-2024-08-06",
            request_model="gpt-4o",
            usage={"input_tokens": 100, "cached_input_tokens": 20, "output_tokens": 30, "cost_usd": 0.0125},
            attributes={"server.address": "10.0.0.1", "nested": {"k": [1, "two", {"x": None}]}, "n": 3},
            input="x" * 9000,  # kept whole aside, capped on the span
            output=42,
            scope={"name": "openai-v2", "version": "1.0"},
            span_kind="client",
            links=[{"trace_id": secrets.token_hex(16), "span_id": secrets.token_hex(8)}],
        ),
        span_item(
            trace_id,
            parent_span_id=root,
            name="tool: lookup",
            kind="tool",
            offset_ms=50,
            tool_name="lookup",
            agent_name="Support",
            error={"type": "TimeoutError", "message": "timed out\nafter 30 s", "stack": "Traceback…\n  line 1"},
            input={"order": "A-1"},
        ),
    ]


@pytest.mark.django_db
def test_copy_and_insert_on_conflict_store_the_same_rows(cast: Cast) -> None:
    trace_id = secrets.token_hex(16)
    items = varied_items(trace_id)
    receipt = services.spans_ingest(tenant=cast.acme, items=items)
    assert receipt.accepted == 3
    # Globex gets the same batch, one span of which it has stored already: COPY fails on the unique
    # constraint and the batch goes through INSERT … ON CONFLICT.
    assert services.spans_ingest(tenant=cast.globex, items=[items[2]]).accepted == 1
    again = services.spans_ingest(tenant=cast.globex, items=items)
    assert (again.accepted, again.duplicates) == (2, 1)
    assert [r.status for r in again.results] == ["accepted", "accepted", "duplicate"]
    copied, inserted = stored(cast.acme, [trace_id]), stored(cast.globex, [trace_id])
    assert len(copied) == 3
    assert copied == inserted
    by_name = {row[COMPARED.index("name")]: row for row in copied}
    root = dict(zip(COMPARED, by_name["invoke_agent\tsupport\\desk"], strict=True))
    assert root["tags"] == ["vip", 'quote"d', "back\\slash", "comma,tag", "{brace}"]
    assert root["input"]["messages"][0]["content"] == 'line one\nline two\ttab \\ "quoted"'
    for tenant in (cast.acme, cast.globex):
        trace = Trace.objects.for_tenant(tenant).get(trace_id=trace_id)
        assert (trace.span_count, trace.error_count, trace.input_tokens, trace.end_user_id) == (
            3,
            1,
            100,
            "ann@acme.test",
        )


@pytest.mark.django_db
def test_a_replayed_batch_is_all_duplicates_and_counts_nothing_twice(cast: Cast) -> None:
    trace_id = secrets.token_hex(16)
    items = varied_items(trace_id)
    services.spans_ingest(tenant=cast.acme, items=items)
    replay = services.spans_ingest(tenant=cast.acme, items=items)
    assert (replay.accepted, replay.duplicates, replay.rejected) == (0, 3, 0)
    trace = Trace.objects.for_tenant(cast.acme).get(trace_id=trace_id)
    assert (trace.span_count, trace.input_tokens) == (3, 100)


@pytest.mark.django_db
def test_spans_stored_before_their_parent_take_its_context_when_it_arrives(cast: Cast) -> None:
    trace_id, root, child = secrets.token_hex(16), secrets.token_hex(8), secrets.token_hex(8)
    # An exporter sends the children first (they end first): a grandchild and a child, no context.
    services.spans_ingest(
        tenant=cast.acme,
        items=[
            span_item(trace_id, parent_span_id=child, name="grandchild", offset_ms=20),
            span_item(trace_id, child, parent_span_id=root, name="child", offset_ms=10),
        ],
    )
    services.spans_ingest(
        tenant=cast.acme,
        items=[span_item(trace_id, root, name="root", end_user_id="u-1", session_id="s-1", agent_id="a-1")],
    )
    context = dict(
        Span.objects.for_tenant(cast.acme).filter(trace_id=trace_id).values_list("name", "end_user_id").order_by("name")
    )
    assert context == {"child": "u-1", "grandchild": "u-1", "root": "u-1"}
    assert Span.objects.for_tenant(cast.acme).get(name="grandchild", trace_id=trace_id).session_id == "s-1"
    assert Trace.objects.for_tenant(cast.acme).get(trace_id=trace_id).end_user_id == "u-1"


@pytest.mark.django_db
def test_a_span_takes_the_context_of_a_parent_stored_in_an_earlier_batch(cast: Cast) -> None:
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    services.spans_ingest(tenant=cast.acme, items=[span_item(trace_id, root, name="root", session_id="s-9")])
    services.spans_ingest(tenant=cast.acme, items=[span_item(trace_id, parent_span_id=root, name="late child")])
    assert Span.objects.for_tenant(cast.acme).get(trace_id=trace_id, name="late child").session_id == "s-9"


@pytest.mark.django_db
def test_only_spans_of_traces_stored_before_are_pushed_down(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    sources: list[list[str]] = []
    push_down = services._push_context_down

    def recording(tenant: Tenant, fresh: list[Any]) -> None:
        sources.append(sorted(row.name for row in fresh))
        push_down(tenant, fresh)

    monkeypatch.setattr(services, "_push_context_down", recording)
    trace_id, root = secrets.token_hex(16), secrets.token_hex(8)
    new_trace = [
        span_item(trace_id, root, name="root", end_user_id="u-2"),
        span_item(trace_id, parent_span_id=root, name="child", offset_ms=5),
    ]
    services.spans_ingest(tenant=cast.acme, items=new_trace)
    # A span of a trace with stored spans may be the parent of one of them.
    services.spans_ingest(tenant=cast.acme, items=[span_item(trace_id, name="second root", session_id="s-2")])
    assert sources == [[], ["second root"]]
    assert Span.objects.for_tenant(cast.acme).get(trace_id=trace_id, name="child").end_user_id == "u-2"


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_batches_store_each_span_once_and_count_it_once(cast: Cast) -> None:
    trace_id = secrets.token_hex(16)
    items = [span_item(trace_id, name=f"s{i}", offset_ms=i, usage={"input_tokens": 1}) for i in range(40)]
    batches = [items[:30], items[10:], items[5:35], items]  # every span is in two to four batches
    barrier = threading.Barrier(len(batches))
    receipts: list[services.Receipt] = []
    failures: list[BaseException] = []

    def send(batch: list[dict[str, Any]]) -> None:
        try:
            barrier.wait()
            receipts.append(services.spans_ingest(tenant=cast.acme, items=batch))
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=rls.carried(send), args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()
    assert not failures, failures
    assert sum(r.accepted for r in receipts) == 40
    assert sum(r.duplicates for r in receipts) == sum(len(b) for b in batches) - 40
    assert Span.objects.for_tenant(cast.acme).filter(trace_id=trace_id).count() == 40
    trace = Trace.objects.for_tenant(cast.acme).get(trace_id=trace_id)
    assert (trace.span_count, trace.input_tokens) == (40, 40)


TEXTS = [
    "Where is my order? Wo ist meine Bestellung?",
    "I am ann@example.com, card 4111 1111 1111 1111",
    "call +1 415 555 0100 or +49 30 1234567",
    "Use the key sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vX7zB9dF1hJ3lN5 to log in.",
    'config: api_key = "Zx8vQ2mL9pW4tR7yK3nB6cD1"',
    "postgres://admin:hunter22secret@db.internal:5432/app",
    "IBAN DE89 3704 0044 0532 0130 00, SSN 078-05-1120, IP 192.168.1.20",
    "Released 2026-12-04T13:19:45.123456+00:00, version 10.0.19045.3803",
    "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
    "",
    "   ",
    "ok",
    "user",
    "ünïcödé text with émoji 🙂 and ann.o'neil@example.co.uk",
    "AKIAIOSFODNN7EXAMPLE and ghp_" + "a" * 36,
]


def spans_with_texts() -> list[dict[str, Any]]:
    """Spans whose payloads, attributes and errors hold the texts above, repeated across spans
    (as system prompts and earlier turns are), in strings, lists and nested objects."""
    items = []
    for i in range(60):
        a, b = TEXTS[i % len(TEXTS)], TEXTS[(i * 7 + 3) % len(TEXTS)]
        items.append(
            span_item(
                name=f"span {i}",
                input={"messages": [{"role": "system", "content": TEXTS[0]}, {"role": "user", "content": a}]},
                output=b if i % 3 else [b, {"text": a}],
                attributes={"note": a, "server.address": "10.1.2.3", "count": i},
                error={"type": "E", "message": b, "stack": a} if i % 5 == 0 else None,
            )
        )
    return items


def test_redacting_each_distinct_text_once_stores_what_redacting_each_text_stores() -> None:
    now = timezone.now()
    memo = services.batch_redactor(redact_text)
    for item in spans_with_texts():
        try:
            expected = parse_span(item, now=now, redact=redact_text)
        except SpanRejected as exc:
            with pytest.raises(SpanRejected, match=exc.message):
                parse_span(item, now=now, redact=memo)
            continue
        assert parse_span(item, now=now, redact=memo) == expected
    # and the texts were masked at all (the comparison is not between two no-ops)
    assert "4111 1111 1111 1111" not in redact_text(TEXTS[1])


def test_the_receipt_is_what_drf_writes_field_by_field() -> None:
    from rest_framework import serializers

    from traces.serializers import IngestReceiptSerializer

    results = [
        services.ItemResult(0, "accepted", "a" * 32, "b" * 16),
        services.ItemResult(1, "duplicate", "a" * 32, "c" * 16),
        services.ItemResult(2, "rejected", reason="invalid_id", message="trace_id must be 32 hex digits"),
    ]
    data = {
        "receipt_id": "0b5f3a52-3b5e-4a7e-9f43-2f6f1a1d2c3b",
        "received_at": timezone.now(),
        "accepted": 1,
        "duplicates": 1,
        "rejected": 1,
        "results": [r.as_dict() for r in results],
    }
    serializer = IngestReceiptSerializer(data)
    field_by_field = serializers.Serializer.to_representation(serializer, data)
    assert serializer.data == field_by_field
    assert list(serializer.data["results"][2]) == ["index", "status", "reason", "message"]


@pytest.mark.django_db
def test_a_lone_surrogate_is_replaced_in_payloads_and_refused_in_fields_never_a_500(
    acme_admin_api: ApiClient, cast: Cast
) -> None:
    trace_id = secrets.token_hex(16)
    # JSON's \ud800 unpaired: it decodes to a str no UTF-8 encoder writes.
    body = (
        '{"spans": ['
        f'{{"trace_id": "{trace_id}", "span_id": "{"a1" * 8}", "name": "kept", "start_time": "2026-11-25T10:00:00Z",'
        ' "input": "bad \\ud800 text", "attributes": {"k\\udfff": "v"}},'
        f'{{"trace_id": "{trace_id}", "span_id": "{"b2" * 8}", "name": "bad \\ud800 name",'
        ' "start_time": "2026-11-25T10:00:00Z"}]}'
    )
    response = acme_admin_api.post("/api/v1/traces/ingest", data=body, content_type="application/json")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert results[1]["reason"] == "invalid_field" and "surrogate" in results[1]["message"]
    span = Span.objects.for_tenant(cast.acme).get(trace_id=trace_id)
    assert span.input == "bad \ufffd text"
    assert span.attributes == {"k\ufffd": "v"}


@pytest.mark.django_db
def test_nuls_and_lone_surrogates_deep_in_payloads_are_replaced_and_look_alikes_kept(
    acme_admin_api: ApiClient, cast: Cast
) -> None:
    """PostgreSQL's jsonb refuses \\u0000 and UTF-8 has no lone surrogate: nested in an input, an
    output or the attributes (values and keys) they become U+FFFD; a text that only spells the
    escape (a backslash, then u0000) is stored as it came."""
    trace_id = secrets.token_hex(16)
    body = (
        '{"spans": ['
        f'{{"trace_id": "{trace_id}", "span_id": "{"c3" * 8}", "name": "deep", "start_time": "2026-11-25T10:00:00Z",'
        ' "input": {"messages": [{"role": "user", "content": "a\\u0000b"}], "k\\u0000": ["x\\udc80"]},'
        ' "output": {"text": "the escape \\\\u0000 spelled out"},'
        ' "attributes": {"nested": {"v": ["ok", "bad\\u0000"]}, "plain": "fine"}}]}'
    )
    response = acme_admin_api.post("/api/v1/traces/ingest", data=body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == ["accepted"]
    span = Span.objects.for_tenant(cast.acme).get(trace_id=trace_id)
    assert span.input == {"messages": [{"role": "user", "content": "a\ufffdb"}], "k\ufffd": ["x\ufffd"]}
    assert span.output == {"text": "the escape \\u0000 spelled out"}
    assert span.attributes == {"nested": {"v": ["ok", "bad\ufffd"]}, "plain": "fine"}


def test_a_text_is_redacted_once_across_batches_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's steps resend its conversation: step n's batch must not mask again what earlier
    batches masked, and what is kept stays under its bound (least recently used out first)."""
    monkeypatch.setattr(services, "_redacted_texts", services._RedactedTexts())
    calls: list[str] = []

    def counting(text: str) -> str:
        calls.append(text)
        return redact_text(text)

    first, second = services.batch_redactor(counting), services.batch_redactor(counting)
    assert first(TEXTS[1]) == redact_text(TEXTS[1]) and "4111 1111 1111 1111" not in first(TEXTS[1])
    assert second(TEXTS[1]) == redact_text(TEXTS[1])
    assert calls == [TEXTS[1]]

    monkeypatch.setattr(services._RedactedTexts, "MAX_CHARS", 100)
    bounded = services._RedactedTexts()
    for i in range(50):
        bounded.get(counting, f"text number {i:03d}")
    assert bounded._chars <= 100
    assert len(bounded._texts) < 50
    kept = next(iter(bounded._texts))[1]
    calls.clear()
    bounded.get(counting, kept)
    assert calls == []  # a kept text is not masked again
    bounded.get(counting, "text number 000")
    assert calls == ["text number 000"]  # the oldest went first


@pytest.mark.django_db
def test_a_runs_spans_carry_the_runs_context_not_a_stored_parents(cast: Cast) -> None:
    """Spans recorded for a run take the run's end user, session and agent (none, when the run has
    none) and inherit nothing from stored parents: the batch reads none."""
    from datetime import timedelta

    from agents.tests.test_services import make_run

    run = make_run(cast.acme, end_user_id="", session_id="")
    trace = secrets.token_hex(16)
    now = timezone.now()
    # A stored parent that names someone (no run span does: this one is recorded without the run).
    parent = services.span_record(
        tenant=cast.acme,
        trace_id=trace,
        kind="agent",
        name="outer",
        started_at=now,
        ended_at=now,
        end_user_id="someone",
        session_id="s-1",
    )
    batch = services.SpanBatch(cast.acme)
    with services.collecting(batch):
        services.span_record(
            tenant=cast.acme,
            trace_id=trace,
            parent_span_id=parent.span_id,
            kind="llm",
            name="step",
            started_at=now,
            ended_at=now + timedelta(milliseconds=5),
            run=run,
        )
    receipt = batch.write()
    assert receipt is not None and receipt.accepted == 1
    stored = Span.objects.get(tenant=cast.acme, trace_id=trace, name="step")
    assert (stored.end_user_id, stored.session_id, stored.agent_id) == ("", "", str(run.agent_id))
    assert str(stored.run_id) == str(run.pk)


@pytest.mark.django_db
def test_a_collected_batch_holding_a_stored_span_falls_back_and_stores_the_rest(cast: Cast) -> None:
    """A collected batch's ids are made for it, so it is COPied without a savepoint of its own;
    should one be stored after all, the batch is ingested again the careful way: the stored span
    stays once, the others are stored."""
    from django.db import transaction

    now = timezone.now()
    trace = secrets.token_hex(16)
    stored = services.span_record(
        tenant=cast.acme, trace_id=trace, kind="custom", name="first", started_at=now, ended_at=now
    )
    batch = services.SpanBatch(cast.acme)
    with services.collecting(batch):
        services.span_record(
            tenant=cast.acme,
            trace_id=trace,
            span_id=stored.span_id,
            kind="custom",
            name="again",
            started_at=now,
            ended_at=now,
        )
        services.span_record(tenant=cast.acme, trace_id=trace, kind="custom", name="new", started_at=now, ended_at=now)
    with transaction.atomic():  # as the engine's step writes it: inside the caller's transaction
        receipt = batch.write()
    assert receipt is not None and (receipt.accepted, receipt.duplicates) == (1, 1)
    assert sorted(Span.objects.for_tenant(cast.acme).filter(trace_id=trace).values_list("name", flat=True)) == [
        "first",
        "new",
    ]


def one_trip_items(trace_id: str) -> list[dict[str, Any]]:
    """varied_items without what sends a batch down the COPY path: context a stored child could
    inherit (a push-down source) and a payload stored apart."""
    items = varied_items(trace_id)
    for item in items:
        for name in ("end_user_id", "session_id", "agent_id"):
            item.pop(name, None)
    items[1]["input"] = "x" * 200
    return items


TRACE_FIGURES = ["span_count", "error_count", "input_tokens", "output_tokens", "cost_micros", "status", "name"]
TRACE_FIGURES += ["started_at", "ended_at", "duration_ms", "models_used", "tags", "search_text", "input_preview"]
TRACE_FIGURES += ["stored_bytes", "unpriced_spans", "agent_name", "run_id"]


@pytest.mark.django_db
def test_a_small_batch_with_new_ids_is_written_in_one_trip_as_copy_writes_it(
    cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same items, new ids: written in one round trip (Acme) and by the COPY path (Globex, the
    one-trip path turned off), inside a transaction and outside one: the same spans and traces."""
    from django.db import transaction

    trips: list[int] = []
    one_trip = services._write_in_one_trip

    def counted(*args: Any, **kwargs: Any) -> None:
        trips.append(1)
        one_trip(*args, **kwargs)

    monkeypatch.setattr(services, "_write_in_one_trip", counted)
    first, second = secrets.token_hex(16), secrets.token_hex(16)
    for trace_id, inside in ((first, True), (second, False)):
        items = one_trip_items(trace_id)
        with transaction.atomic() if inside else contextlib.nullcontext():
            receipt = services.spans_ingest(tenant=cast.acme, items=items, keep_receipt=False, new_ids=True)
        assert [r.status for r in receipt.results] == ["accepted"] * 3
        with monkeypatch.context() as patched:
            patched.setattr(services, "ONE_TRIP_SPANS", 0)
            copied = services.spans_ingest(tenant=cast.globex, items=items, keep_receipt=False, new_ids=True)
        assert copied.accepted == 3
    assert len(trips) == 2  # Acme's two batches, not Globex's
    assert stored(cast.acme, [first, second]) == stored(cast.globex, [first, second])
    assert len(stored(cast.acme, [first, second])) == 6
    for trace_id in (first, second):
        acme, globex = (
            Trace.objects.for_tenant(tenant).values(*TRACE_FIGURES).get(trace_id=trace_id)
            for tenant in (cast.acme, cast.globex)
        )
        assert acme == globex
        assert (acme["span_count"], acme["error_count"], acme["input_tokens"]) == (3, 1, 100)
    # A second batch of the same trace adds to its rollups.
    more = [span_item(first, name="later", kind="custom", offset_ms=2000)]
    services.spans_ingest(tenant=cast.acme, items=more, keep_receipt=False, new_ids=True)
    trace = Trace.objects.for_tenant(cast.acme).get(trace_id=first)
    assert trace.span_count == 4 and "later" in trace.search_text


@pytest.mark.django_db
def test_a_one_trip_batch_that_fails_leaves_the_callers_transaction_usable(cast: Cast) -> None:
    """A span of a one-trip batch stored already: its savepoint is rolled back (nothing of it is
    written, the trace's rollups unchanged), the error raised, and the caller's transaction goes on
    and commits what it wrote before and after."""
    from django.db import transaction

    from tenants.models import Tenant as TenantModel

    trace_id = secrets.token_hex(16)
    items = one_trip_items(trace_id)
    services.spans_ingest(tenant=cast.acme, items=[items[2]], keep_receipt=False, new_ids=True)
    before = Trace.objects.for_tenant(cast.acme).values(*TRACE_FIGURES).get(trace_id=trace_id)
    with transaction.atomic():
        TenantModel.objects.filter(pk=cast.acme.pk).update(name="Acme before")
        with pytest.raises(psycopg_errors.UniqueViolation):
            services.spans_ingest(tenant=cast.acme, items=items, keep_receipt=False, new_ids=True)
        assert Span.objects.for_tenant(cast.acme).filter(trace_id=trace_id).count() == 1
        TenantModel.objects.filter(pk=cast.acme.pk).update(name="Acme after")
    assert TenantModel.objects.get(pk=cast.acme.pk).name == "Acme after"
    assert Trace.objects.for_tenant(cast.acme).values(*TRACE_FIGURES).get(trace_id=trace_id) == before
    # Through SpanBatch.write (the engine's step) the batch then goes the careful way.
    batch = services.SpanBatch(cast.acme)
    batch.items = items
    with transaction.atomic():
        receipt = batch.write()
    assert receipt is not None and (receipt.accepted, receipt.duplicates) == (2, 1)
    assert Trace.objects.for_tenant(cast.acme).get(trace_id=trace_id).span_count == 3
