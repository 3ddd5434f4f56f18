"""Writes of traces: ingest (native, OTLP and the run engine all come here), retention and erasure.

Ingestion is idempotent on (tenant, trace_id, span_id): only the spans really inserted feed the
trace rollups, in the same transaction, so a replayed batch creates nothing twice and counts
nothing twice. How a batch is written, cheapest first (bench/traces_hot.py measures it next to
PostgreSQL's COPY of the same rows):

- each distinct text is masked once, in a batch and in the batches after it (`batch_redactor`, a
  bounded cache per process): spans repeat their texts, and a run's steps repeat its conversation;
- a run's spans carry the run's end user, session and agent: nothing to inherit (no SELECT of
  their stored parents);
- a small batch whose ids its caller made (an engine step's spans, a gateway call's) is written in
  one round trip: one statement inserting the spans and upserting their traces, between a
  savepoint and its release, sent in one pipeline (`_write_in_one_trip`);
- otherwise the spans are written by COPY in a savepoint; only when one of them is stored already
  (a replay, a retry, a concurrent batch with the same ids) does the unique constraint stop the
  COPY, and the batch goes through INSERT … ON CONFLICT DO NOTHING RETURNING instead (`_insert_spans`);
- one upsert adds the batch's rollups to its traces, one row per trace, and says which traces had
  no span stored before: those need no push-down of context to stored children (a trace's spans are
  only ever written with its row, in one transaction, so a trace created now has none stored).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import secrets
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from tenants import rls
from tenants.audit import Actor
from tenants.errors import FieldError
from tenants.models import ApiKey, Tenant
from tenants.services import audit_record
from traces.events import traces_ingested
from traces.ingest import (
    RUN_CONTEXT,
    SEARCH_TEXT_CHARS,
    TRACE_SEARCH_CHARS,
    SpanRejected,
    SpanRow,
    as_text,
    finish_search_text,
    input_preview,
    parse_span,
)
from traces.models import IngestBatch, Span, SpanEvent, SpanPayload, TenantTraceSettings, Trace

logger = logging.getLogger(__name__)

MAX_RECEIPT_REJECTIONS = 100


@dataclass(frozen=True)
class ItemResult:
    """What became of one item: `accepted`, `duplicate` (already stored) or `rejected` (with why)."""

    index: int
    status: str
    trace_id: str = ""
    span_id: str = ""
    reason: str = ""
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.trace_id:
            out["trace_id"], out["span_id"] = self.trace_id, self.span_id
        if self.reason:
            out["reason"], out["message"] = self.reason, self.message
        return out


@dataclass
class Receipt:
    """The outcome of one ingest call; `batch` is the stored receipt (None for engine spans)."""

    results: list[ItemResult]
    batch: IngestBatch | None = None
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)


# --- Ingest ----------------------------------------------------------------------------------------


def spans_ingest(
    *,
    tenant: Tenant,
    items: list[Any],
    source: str = "native",
    api_key: ApiKey | None = None,
    size_bytes: int = 0,
    keep_receipt: bool = True,
    prevalidated: dict[int, SpanRejected] | None = None,
    new_ids: bool = False,
) -> Receipt:
    """Validate each item (masking personal data and secrets when the tenant's guardrail setting
    says so), store the valid ones once, update their traces' rollups, count the
    rejections per reason, and (with `keep_receipt`) store an IngestBatch receipt. `prevalidated`
    holds items an adapter (OTLP) already refused, by index; those items may be None.

    Cost, in one transaction: a COPY of the spans in a savepoint (or, when some are stored
    already, an INSERT … ON CONFLICT after it), one INSERT for large payloads, one upsert of the
    traces, one UPDATE pushing context down only for traces that had spans stored before, one
    upsert of the rejection counters when there are rejections, one INSERT for the receipt.

    `new_ids`: the caller made every span id for this batch (the engine's and the gateway's spans), so
    none can be stored yet and the COPY goes without a savepoint of its own; should one be stored
    after all, the ingest fails whole (its transaction or savepoint rolled back) and the caller
    ingests again without `new_ids` (SpanBatch.write). Such a batch of at most ONE_TRIP_SPANS spans,
    none refused, with no payload stored apart and no context to push down, and no receipt kept,
    costs one round trip instead (_write_in_one_trip)."""
    from tenants import cache as config_cache

    with config_cache.snapshot():  # one read of the configuration version for the settings and prices
        return _spans_ingest(tenant, items, source, api_key, size_bytes, keep_receipt, prevalidated or {}, new_ids)


def _spans_ingest(
    tenant: Tenant,
    items: list[Any],
    source: str,
    api_key: ApiKey | None,
    size_bytes: int,
    keep_receipt: bool,
    prevalidated: dict[int, SpanRejected],
    new_ids: bool = False,
) -> Receipt:
    from guardrails.services import redacts_traces, trace_redactor

    now = timezone.now()
    results: list[ItemResult | None] = [None] * len(items)
    rows: dict[tuple[str, str], tuple[int, SpanRow]] = {}
    # The tenant's guardrail setting "redact personal data and secrets from traces" (on by default).
    redact = batch_redactor(trace_redactor(tenant=tenant)) if redacts_traces(tenant) else None
    for index, item in enumerate(items):
        refused = prevalidated.get(index)
        try:
            if refused is not None:
                raise refused
            row = parse_span(item, now=now, redact=redact)
        except SpanRejected as exc:
            results[index] = ItemResult(index, "rejected", reason=exc.reason, message=exc.message)
            continue
        if row.key in rows:
            results[index] = ItemResult(index, "duplicate", row.trace_id, row.span_id)
            continue
        rows[row.key] = (index, row)

    _price(tenant, [row for _, row in rows.values()])
    # An engine step's or a gateway call's spans, none refused: one round trip (_write_in_one_trip).
    clean = all(result is None for result in results)
    if new_ids and clean and not keep_receipt and len(rows) <= ONE_TRIP_SPANS:
        by_key = {key: row for key, (_, row) in rows.items()}
        _inherit(tenant, by_key)
        ordered = [row for _, row in sorted(rows.values(), key=lambda pair: pair[1].key)]
        if not any(row.payloads for row in ordered) and not _push_down_sources(ordered):
            _write_in_one_trip(tenant, ordered, now, source)
            receipt = Receipt(results=[ItemResult(index, "accepted", *key) for key, (index, _) in rows.items()])
            receipt.results.sort(key=lambda result: result.index)
            receipt.accepted = len(receipt.results)
            traces_ingested(tenant, receipt.accepted)
            return receipt
    with transaction.atomic():
        by_key = {key: row for key, (_, row) in rows.items()}
        _inherit(tenant, by_key)
        ordered = [row for _, row in sorted(rows.values(), key=lambda pair: pair[1].key)]
        inserted = _insert_spans(tenant, ordered, now, source, new_ids=new_ids)
        for key, (index, _) in rows.items():
            results[index] = ItemResult(index, "accepted" if key in inserted else "duplicate", *key)
        fresh = [row for key, (_, row) in rows.items() if key in inserted]
        _insert_payloads(tenant, fresh)
        new_traces = _upsert_traces(tenant, fresh, now)
        _push_context_down(tenant, [row for row in fresh if row.trace_id not in new_traces])
        final = [r for r in results if r is not None]
        receipt = Receipt(results=final)
        for result in final:
            if result.status == "accepted":
                receipt.accepted += 1
            elif result.status == "duplicate":
                receipt.duplicates += 1
            else:
                receipt.rejected += 1
                receipt.rejected_reasons[result.reason] = receipt.rejected_reasons.get(result.reason, 0) + 1
        traces_ingested(tenant, receipt.accepted)
        rejection_messages = {r.reason: r.message for r in final if r.status == "rejected"}
        rejections_count(tenant=tenant, counts=receipt.rejected_reasons, messages=rejection_messages)
        if keep_receipt:
            lag = max(((now - row.ended_at).total_seconds() for row in fresh), default=None)
            receipt.batch = IngestBatch.objects.create(
                tenant=tenant,
                source=source,
                api_key=api_key,
                received_at=now,
                size_bytes=min(size_bytes, 2**31 - 1),
                accepted=receipt.accepted,
                duplicates=receipt.duplicates,
                rejected=receipt.rejected,
                max_lag_seconds=max(lag, 0.0) if lag is not None else None,
                rejections=[r.as_dict() for r in final if r.status == "rejected"][:MAX_RECEIPT_REJECTIONS],
            )
    return receipt


class _RedactedTexts:
    """What the trace redactor made of texts seen lately, in this process, across batches: a run's
    every step sends the conversation so far again (the system prompt, the user's input, each
    earlier turn, each tool result), so step n would mask again what steps 1 to n-1 masked. The
    redactor is a function of the text alone (the tenant's setting only decides whether it runs), so
    its answer is kept, least recently used first out, up to MAX_CHARS of texts (raw and masked),
    in memory only; a text longer than MAX_TEXT is masked every time."""

    MAX_CHARS = 4_000_000
    MAX_TEXT = 64 * 1024

    def __init__(self) -> None:
        self._texts: OrderedDict[tuple[Callable[[str], str], str], str] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, redact: Callable[[str], str], text: str) -> str:
        if len(text) > self.MAX_TEXT:
            return redact(text)
        key = (redact, text)
        with self._lock:
            found = self._texts.get(key)
            if found is not None:
                self._texts.move_to_end(key)
                return found
        found = redact(text)
        with self._lock:
            if key not in self._texts:
                self._texts[key] = found
                self._chars += len(text) + len(found)
                while self._chars > self.MAX_CHARS:
                    (_, old), masked = self._texts.popitem(last=False)
                    self._chars -= len(old) + len(masked)
        return found

    def clear(self) -> None:
        with self._lock:
            self._texts.clear()
            self._chars = 0


_redacted_texts = _RedactedTexts()


def batch_redactor(redact: Callable[[str], str]) -> Callable[[str], str]:
    """`redact`, run once per distinct text: spans repeat their texts (a system prompt in every
    call's input, each earlier turn again in the next call's, roles, tool names), within a batch and
    from one batch to the next, and masking is a function of the text alone, so a repeat gets the
    first one's result (_RedactedTexts)."""

    def once(text: str) -> str:
        return _redacted_texts.get(redact, text)

    return once


CONTEXT_FIELDS = ("end_user_id", "session_id", "agent_id")


def _has_context(row: SpanRow) -> bool:
    """Whether `row` has nothing to inherit: it carries all three, or a run's span carries the run's
    (a run without an end user or session has none to give its spans, nor does its root)."""
    return row.run_context or all(getattr(row, f) for f in CONTEXT_FIELDS)


def _inherit(tenant: Tenant, rows: dict[tuple[str, str], SpanRow]) -> None:
    """Fill a span's empty end user, session and agent from its nearest ancestor that has them:
    ancestors in the batch first, then (one SELECT, only when some span still lacks one) the stored
    parents of the batch's topmost spans. Stored spans already carry what they inherited."""
    lacking = [row for row in rows.values() if row.parent_span_id and not _has_context(row)]
    if not lacking:
        return

    def fill(row: SpanRow, seen: set[tuple[str, str]]) -> None:
        parent = rows.get((row.trace_id, row.parent_span_id))
        if parent is None or parent.key in seen:
            return
        seen.add(parent.key)
        fill(parent, seen)
        for name in CONTEXT_FIELDS:
            if not getattr(row, name):
                setattr(row, name, getattr(parent, name))

    for row in lacking:
        fill(row, {row.key})
    outside = {
        (row.trace_id, row.parent_span_id)
        for row in rows.values()
        if row.parent_span_id and (row.trace_id, row.parent_span_id) not in rows and not _has_context(row)
    }
    if not outside:
        return
    traces_, spans_ = zip(*sorted(outside), strict=True)
    with _bound_cursor() as cursor:
        cursor.execute(
            "SELECT p.trace_id, p.span_id, p.end_user_id, p.session_id, p.agent_id FROM traces_span p"
            " JOIN unnest(%b::text[], %b::text[]) AS k(trace_id, span_id)"
            " ON p.trace_id = k.trace_id AND p.span_id = k.span_id WHERE p.tenant_id = %b",
            [list(traces_), list(spans_), tenant.pk],
        )
        stored = {(t, s): (e, se, a) for t, s, e, se, a in cursor.fetchall()}
    for row in sorted(rows.values(), key=lambda r: r.started_at):
        found = stored.get((row.trace_id, row.parent_span_id))
        if found is None:
            continue
        for name, value in zip(CONTEXT_FIELDS, found, strict=True):
            if not getattr(row, name):
                setattr(row, name, value)
        # Its children in the batch take what it just inherited.
        for child in rows.values():
            if child.parent_span_id == row.span_id and child.trace_id == row.trace_id:
                for name in CONTEXT_FIELDS:
                    if not getattr(child, name):
                        setattr(child, name, getattr(row, name))


_PUSH_DOWN = """
WITH RECURSIVE src(trace_id, span_id, end_user_id, session_id, agent_id) AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[])
), down(id, trace_id, span_id, end_user_id, session_id, agent_id) AS (
    SELECT s.id, s.trace_id, s.span_id, COALESCE(NULLIF(s.end_user_id, ''), src.end_user_id),
           COALESCE(NULLIF(s.session_id, ''), src.session_id), COALESCE(NULLIF(s.agent_id, ''), src.agent_id)
    FROM src JOIN traces_span s ON s.tenant_id = %b AND s.trace_id = src.trace_id AND s.parent_span_id = src.span_id
    WHERE (s.end_user_id = '' AND src.end_user_id <> '') OR (s.session_id = '' AND src.session_id <> '')
       OR (s.agent_id = '' AND src.agent_id <> '')
  UNION ALL
    SELECT s.id, s.trace_id, s.span_id, COALESCE(NULLIF(s.end_user_id, ''), d.end_user_id),
           COALESCE(NULLIF(s.session_id, ''), d.session_id), COALESCE(NULLIF(s.agent_id, ''), d.agent_id)
    FROM down d JOIN traces_span s ON s.tenant_id = %b AND s.trace_id = d.trace_id AND s.parent_span_id = d.span_id
    WHERE (s.end_user_id = '' AND d.end_user_id <> '') OR (s.session_id = '' AND d.session_id <> '')
       OR (s.agent_id = '' AND d.agent_id <> '')
)
UPDATE traces_span t SET end_user_id = down.end_user_id, session_id = down.session_id, agent_id = down.agent_id
FROM down WHERE t.id = down.id
"""


def _push_down_sources(fresh: list[SpanRow]) -> list[SpanRow]:
    """The spans of `fresh` whose context a stored child may lack (_push_context_down)."""
    # A run's spans are not sources: every span of a run's trace is written by the console, each
    # with the run's context and never before its parent, so none stored lacks what they carry.
    return [row for row in fresh if not row.run_context and any(getattr(row, f) for f in CONTEXT_FIELDS)]


def _push_context_down(tenant: Tenant, fresh: list[SpanRow]) -> None:
    """Spans stored before their parent (an exporter sends children first) take the parent's end
    user, session and agent when it arrives: one recursive UPDATE down the stored tree, through the
    (tenant, trace, parent) index. Spans that carry none of the three are not sources."""
    sources = _push_down_sources(fresh)
    if not sources:
        return
    params: list[Any] = [[r.trace_id for r in sources], [r.span_id for r in sources]]
    params += [[getattr(r, f) for r in sources] for f in CONTEXT_FIELDS]
    with _bound_cursor() as cursor:
        cursor.execute(_PUSH_DOWN, [*params, tenant.pk, tenant.pk])


# --- GenAI events from OTLP logs -------------------------------------------------------------------

MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def genai_content(events: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The input and output that GenAI events carry (None where they carry none), in time order:
    `gen_ai.client.inference.operation.details` (current conventions) holds both as attributes;
    the previous conventions send one event per message and a `gen_ai.choice` per answer."""
    from traces.conventions import maybe_json

    inputs: list[Any] = []
    outputs: list[Any] = []
    for event in sorted(events, key=lambda e: e.get("time") or 0):
        name, attributes, body = event["name"], event.get("attributes") or {}, event.get("body")
        if name == "gen_ai.client.inference.operation.details":
            found = maybe_json(attributes.get("gen_ai.input.messages"))
            inputs += found if isinstance(found, list) else [found] if found is not None else []
            found = maybe_json(attributes.get("gen_ai.output.messages"))
            outputs += found if isinstance(found, list) else [found] if found is not None else []
        elif name in MESSAGE_EVENTS:
            message = body if isinstance(body, dict) else {"content": body}
            inputs.append({"role": MESSAGE_EVENTS[name], **message})
        elif name == "gen_ai.choice":
            outputs.append(body)
    return (inputs or None), (outputs or None)


def span_events_ingest(*, tenant: Tenant, events: list[dict[str, Any]]) -> int:
    """Keep GenAI events (dicts: trace_id, span_id, name, time in Unix seconds, attributes, body) and
    fill the empty input/output of their spans already stored (a span arriving later is filled at
    its ingest by `span_events_fill`). Returns how many events were kept."""
    from datetime import UTC

    if not events:
        return 0
    now = timezone.now()
    rows = [
        SpanEvent(
            tenant=tenant,
            trace_id=e["trace_id"],
            span_id=e["span_id"],
            name=e["name"],
            time=datetime.fromtimestamp(e["time"], tz=UTC) if e.get("time") else now,
            attributes=json.loads(json.dumps(e.get("attributes") or {}, default=str).replace("\\u0000", "")),
            body=e.get("body"),
        )
        for e in events
    ]
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        grouped[(event["trace_id"], event["span_id"])].append(event)
    with transaction.atomic():
        SpanEvent.objects.bulk_create(rows)
        for (trace_id, span_id), found in sorted(grouped.items()):
            inputs, outputs = genai_content(found)
            spans = Span.objects.for_tenant(tenant).filter(trace_id=trace_id, span_id=span_id)
            if inputs is not None:
                spans.filter(input__isnull=True).update(input=inputs)
            if outputs is not None:
                spans.filter(output__isnull=True).update(output=outputs)
    return len(rows)


def span_events_fill(*, tenant: Tenant, items: list[dict[str, Any]]) -> None:
    """Give OTLP items without input or output what their GenAI events (already received over
    /v1/logs) carry: one SELECT for the batch, none when no item lacks content."""
    wanted = {
        (str(i.get("trace_id")), str(i.get("span_id"))): i
        for i in items
        if isinstance(i, dict) and (i.get("input") is None or i.get("output") is None)
    }
    if not wanted:
        return
    keys = sorted(wanted)
    with _bound_cursor() as cursor:
        cursor.execute(
            "SELECT e.trace_id, e.span_id, e.name, extract(epoch FROM e.time), e.attributes, e.body"
            " FROM traces_spanevent e JOIN unnest(%b::text[], %b::text[]) AS k(trace_id, span_id)"
            " ON e.trace_id = k.trace_id AND e.span_id = k.span_id WHERE e.tenant_id = %b",
            [[k[0] for k in keys], [k[1] for k in keys], tenant.pk],
        )
        found: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for trace_id, span_id, name, time_, attributes, body in cursor.fetchall():
            found[(trace_id, span_id)].append(
                {"name": name, "time": float(time_), "attributes": attributes, "body": body}
            )
    for key, events in found.items():
        inputs, outputs = genai_content(events)
        item = wanted[key]
        if item.get("input") is None and inputs is not None:
            item["input"] = inputs
        if item.get("output") is None and outputs is not None:
            item["output"] = outputs


def rejections_count(*, tenant: Tenant, counts: dict[str, int], messages: dict[str, str] | None = None) -> None:
    """Add `counts` (reason → how many) to the tenant's rejection counters."""
    if not counts:
        return
    messages = messages or {}
    now = timezone.now()
    values = []
    params: list[Any] = []
    for reason in sorted(counts):
        values.append("(%s, %s, %s, %s, %s)")
        params += [tenant.pk, reason[:64], counts[reason], messages.get(reason, "")[:500], now]
    with connection.cursor() as cursor:
        # Only placeholders are joined into the SQL; every value is a parameter.
        cursor.execute(
            "INSERT INTO traces_ingestrejection (tenant_id, reason, count, last_message, last_seen_at) VALUES "  # noqa: S608
            + ", ".join(values)
            + " ON CONFLICT (tenant_id, reason) DO UPDATE SET count = traces_ingestrejection.count + EXCLUDED.count,"
            " last_message = EXCLUDED.last_message, last_seen_at = EXCLUDED.last_seen_at",
            params,
        )


def _price(tenant: Tenant, rows: list[SpanRow]) -> None:
    """Computed cost from the tenant's catalog prices, beside (never instead of) a reported one.
    The prices come from the configuration cache (tenants.cache), else one query."""
    from catalog.models import LanguageModel
    from tenants import cache as config_cache

    wanted = frozenset(row.model for row in rows if row.model and (row.input_tokens or row.output_tokens))
    if not wanted:
        return
    priced: dict[str, LanguageModel] = config_cache.cached(
        "span_prices",
        (tenant.pk, wanted),
        lambda: {
            m.model_id: m
            for m in LanguageModel.objects.for_tenant(tenant).filter(model_id__in=wanted, input_price__isnull=False)
            if m.is_priced
        },
    )
    for row in rows:
        model = priced.get(row.model)
        if model is not None:
            row.cost_micros = model.cost_micros(
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                cached_input_tokens=row.cached_input_tokens,
            )


# (column, SQL type of the array passed for it, how the unnested value becomes the column)
SPAN_COLUMNS: list[tuple[str, str, str]] = [
    ("tenant_id", "uuid", "{}"),
    ("trace_id", "text", "{}"),
    ("span_id", "text", "{}"),
    ("parent_span_id", "text", "{}"),
    ("kind", "text", "{}"),
    ("name", "text", "{}"),
    ("started_at", "timestamptz", "{}"),
    ("ended_at", "timestamptz", "{}"),
    ("duration_ms", "float8", "{}"),
    ("status", "text", "{}"),
    ("error_type", "text", "{}"),
    ("error_message", "text", "{}"),
    ("error_stack", "text", "{}"),
    ("input", "text", "{}::jsonb"),
    ("output", "text", "{}::jsonb"),
    ("input_truncated", "bool", "{}"),
    ("output_truncated", "bool", "{}"),
    ("model", "text", "{}"),
    ("request_model", "text", "{}"),
    ("span_kind", "text", "{}"),
    ("scope_name", "text", "{}"),
    ("scope_version", "text", "{}"),
    ("agent_name", "text", "{}"),
    ("tool_name", "text", "{}"),
    ("input_tokens", "int8", "{}"),
    ("cached_input_tokens", "int8", "{}"),
    ("output_tokens", "int8", "{}"),
    ("reasoning_tokens", "int8", "{}"),
    ("reported_cost_micros", "int8", "{}"),
    ("cost_micros", "int8", "{}"),
    ("attributes", "text", "{}::jsonb"),
    ("tags", "text", "ARRAY(SELECT jsonb_array_elements_text({}::jsonb))"),
    ("links", "text", "{}::jsonb"),
    ("end_user_id", "text", "{}"),
    ("session_id", "text", "{}"),
    ("agent_id", "text", "{}"),
    ("run_id", "text", "{}"),
    ("search_text", "text", "{}"),
    ("stored_bytes", "int4", "{}"),
    ("source", "text", "{}"),
    ("ingested_at", "timestamptz", "{}"),
]


def _bound_cursor() -> psycopg.Cursor[Any]:
    """A cursor on Django's connection (so in its transaction) that sends parameters to the server
    in binary. Django's cursors bind on the client, quoting and escaping every array element into
    the SQL text: that was half the cost of a 1,000-span batch."""
    connection.ensure_connection()
    if rls.enforcing():
        rls.sync(connection)  # what Django's own cursors do first (tenants.postgresql)
    return psycopg.Cursor(connection.connection)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _unnest_insert(table: str, columns: list[tuple[str, str, str]], data: list[list[Any]], tail: str) -> str:
    """INSERT INTO table (…) SELECT … FROM unnest(%s::type[], …): one array parameter per column,
    so the statement's size does not grow with the batch (psycopg's client-side binding of tens of
    thousands of placeholders cost more than the insert itself)."""
    names = ", ".join(name for name, _, _ in columns)
    arrays = ", ".join(f"%b::{kind}[]" for _, kind, _ in columns)
    aliases = [f"c{i}" for i in range(len(columns))]
    selected = ", ".join(convert.format(alias) for (_, _, convert), alias in zip(columns, aliases, strict=True))
    return f"INSERT INTO {table} ({names}) SELECT {selected} FROM unnest({arrays}) AS v({', '.join(aliases)}) {tail}"  # noqa: S608


def _span_values(tenant_id: Any, row: SpanRow, now: datetime, source: str) -> list[Any]:
    """One span's values in SPAN_COLUMNS order, as COPY takes them: JSON columns as JSON text, tags
    as a list (psycopg writes the array), or `{}` when empty (most spans: no list to adapt)."""
    return [
        tenant_id,
        row.trace_id,
        row.span_id,
        row.parent_span_id,
        row.kind,
        row.name,
        row.started_at,
        row.ended_at,
        row.duration_ms,
        row.status,
        row.error_type,
        row.error_message,
        row.error_stack,
        _dumps(row.input),
        _dumps(row.output),
        row.input_truncated,
        row.output_truncated,
        row.model,
        row.request_model,
        row.span_kind,
        row.scope_name,
        row.scope_version,
        row.agent_name,
        row.tool_name,
        row.input_tokens,
        row.cached_input_tokens,
        row.output_tokens,
        row.reasoning_tokens,
        row.reported_cost_micros,
        row.cost_micros,
        json.dumps(row.attributes, ensure_ascii=False),
        row.tags or "{}",
        json.dumps(row.links),
        row.end_user_id,
        row.session_id,
        row.agent_id,
        row.run_id,
        row.search_text,
        row.stored_bytes,
        source,
        now,
    ]


_TAGS = [name for name, _, _ in SPAN_COLUMNS].index("tags")
_INPUT, _OUTPUT, _ATTRIBUTES, _LINKS = (
    [name for name, _, _ in SPAN_COLUMNS].index(column) for column in ("input", "output", "attributes", "links")
)
_SPAN_NAMES = ", ".join(name for name, _, _ in SPAN_COLUMNS)
COPY_SPANS = f"COPY traces_span ({_SPAN_NAMES}) FROM STDIN"
# With row-level security binding the connection (tenants.rls), PostgreSQL refuses COPY FROM into
# traces_span: the rows are copied into a temporary table of the same columns (one per connection,
# emptied at each commit), then moved into traces_span by one INSERT … SELECT, which the policy
# checks like any insert. The unique constraint answers as it does to the COPY (a UniqueViolation
# naming span_unique_id), so the fallback to INSERT … ON CONFLICT is the same.
SPAN_STAGE = "traces_span_stage"
STAGE_CREATE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {SPAN_STAGE} ON COMMIT DELETE ROWS AS "  # noqa: S608 (fixed names)
    f"SELECT {_SPAN_NAMES} FROM traces_span WITH NO DATA"
)
STAGE_COPY = f"COPY {SPAN_STAGE} ({_SPAN_NAMES}) FROM STDIN"
STAGE_MOVE = (
    f"WITH staged AS (DELETE FROM {SPAN_STAGE} RETURNING *) "  # noqa: S608 (fixed names)
    f"INSERT INTO traces_span ({_SPAN_NAMES}) SELECT {_SPAN_NAMES} FROM staged"
)


def _copy_spans(values: list[list[Any]]) -> None:
    """COPY `values` (_span_values) into traces_span, through the stage under row-level security."""
    with _bound_cursor() as cursor:
        staged = rls.enforcing()
        if staged:
            cursor.execute(STAGE_CREATE)
        with cursor.copy(STAGE_COPY if staged else COPY_SPANS) as copy:
            for value in values:
                copy.write_row(value)
        if staged:
            cursor.execute(STAGE_MOVE)


def _insert_spans(
    tenant: Tenant, rows: list[SpanRow], now: datetime, source: str, *, new_ids: bool = False
) -> set[tuple[str, str]]:
    """Store `rows` (sorted by key, so concurrent batches lock in one order); the keys inserted.

    COPY first, in a savepoint: when no span of the batch is stored yet (the common case) that is
    the whole write, at COPY's cost. COPY has no ON CONFLICT, so a batch holding a span already
    stored (a replay, a retry, a concurrent batch with the same ids) fails on the unique
    constraint; the savepoint is rolled back and the batch goes through INSERT … ON CONFLICT DO
    NOTHING RETURNING, which tells which spans were new. Either way a span is stored once. With
    `new_ids` (spans_ingest) no span can be stored yet: COPY without the savepoint."""
    if not rows:
        return set()
    tenant_id = str(tenant.pk)
    values = [_span_values(tenant_id, row, now, source) for row in rows]
    if new_ids:
        _copy_spans(values)
        return {row.key for row in rows}
    try:
        with transaction.atomic():
            _copy_spans(values)
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name != "span_unique_id":
            raise
        return _insert_spans_on_conflict(tenant, values)
    return {row.key for row in rows}


def _insert_spans_on_conflict(tenant: Tenant, values: list[list[Any]]) -> set[tuple[str, str]]:
    """INSERT … ON CONFLICT DO NOTHING of `values` (_span_values); the keys really inserted."""
    params = [list(column) for column in zip(*values, strict=True)]
    params[0] = [tenant.pk] * len(values)
    params[_TAGS] = [json.dumps(tags if isinstance(tags, list) else [], ensure_ascii=False) for tags in params[_TAGS]]
    sql = _unnest_insert(
        "traces_span",
        SPAN_COLUMNS,
        params,
        "ORDER BY c1, c2 ON CONFLICT (tenant_id, trace_id, span_id) DO NOTHING RETURNING trace_id, span_id",
    )
    with _bound_cursor() as cursor:
        cursor.execute(sql, params)
        return {(t, s) for t, s in cursor.fetchall()}


# A batch of at most this many spans whose ids its caller made (an engine step's, a gateway call's)
# is written in one round trip (_write_in_one_trip); a larger one by COPY, which is cheaper per row.
ONE_TRIP_SPANS = 64
ONE_TRIP_SAVEPOINT = "aoc_spans"


def _write_in_one_trip(tenant: Tenant, rows: list[SpanRow], now: datetime, source: str) -> None:
    """Store `rows` (new ids, sorted by key, no payload stored apart, no push-down source) and add
    their rollups to their traces in one round trip: one statement inserts the spans and upserts
    the traces (a data-modifying WITH, ONE_TRIP_WRITE); inside a transaction it goes between a
    savepoint and its release, the three sent together in one pipeline (psycopg's pipeline mode:
    one network round trip). An engine step paid six round trips for the same rows (a savepoint,
    the stage table's CREATE IF NOT EXISTS, the COPY, its move into traces_span, the traces'
    upsert, the release): each is a wait for PostgreSQL's backend, which on a loaded machine costs
    more than the statement. The rows go as two JSON arrays (the spans, the traces' rollups) that
    PostgreSQL reads into the tables' row types: psycopg's binding of one array per column (69
    arrays, each element's type looked up) cost about 0.35 ms of CPU a step, and the statement
    that names them was too long for psycopg's cache of parsed queries (another 0.2 ms).

    All or nothing, as the savepoint of the COPY path is: on an error (a span stored already, whose
    UniqueViolation makes SpanBatch.write ingest again without `new_ids`) the savepoint is rolled
    back and released, so the caller's transaction goes on, and the error is raised. Outside a
    transaction the one statement is its own transaction. The spans and the traces are locked in
    key order as in the COPY path, the traces after the spans."""
    spans = [dict(zip(_SPAN_KEYS, _span_json(tenant.pk, row, now, source), strict=True)) for row in rows]
    by_trace: dict[str, list[SpanRow]] = defaultdict(list)
    for row in rows:
        by_trace[row.trace_id].append(row)
    traces = [_trace_json(tenant.pk, trace_id, by_trace[trace_id], now) for trace_id in sorted(by_trace)]
    params = [json.dumps(spans, ensure_ascii=False, default=str), json.dumps(traces, ensure_ascii=False, default=str)]
    with _bound_cursor() as cursor:
        if not connection.in_atomic_block:
            cursor.execute(ONE_TRIP_WRITE, params)
            return
        raw = cursor.connection
        try:
            with raw.pipeline():
                cursor.execute(f"SAVEPOINT {ONE_TRIP_SAVEPOINT}")
                cursor.execute(ONE_TRIP_WRITE, params)
                cursor.execute(f"RELEASE SAVEPOINT {ONE_TRIP_SAVEPOINT}")
        except psycopg.Error:
            if raw.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                cursor.execute(f"ROLLBACK TO SAVEPOINT {ONE_TRIP_SAVEPOINT}")
                cursor.execute(f"RELEASE SAVEPOINT {ONE_TRIP_SAVEPOINT}")
            raise


_SPAN_KEYS = [name for name, _, _ in SPAN_COLUMNS]


def _span_json(tenant_id: Any, row: SpanRow, now: datetime, source: str) -> list[Any]:
    """_span_values with the JSON columns as JSON values (not as their text) and the tags as a list."""
    values = _span_values(tenant_id, row, now, source)
    values[_INPUT], values[_OUTPUT] = row.input, row.output
    values[_ATTRIBUTES], values[_LINKS] = row.attributes, row.links
    values[_TAGS] = row.tags if isinstance(row.tags, list) else []
    return values


def _trace_json(tenant_id: Any, trace_id: str, spans: list[SpanRow], now: datetime) -> dict[str, Any]:
    record = dict(zip(_TRACE_KEYS, _trace_record(tenant_id, trace_id, spans, now), strict=True))
    record["models_used"], record["tags"] = json.loads(record["models_used"]), json.loads(record["tags"])
    return record


def _insert_payloads(tenant: Tenant, rows: list[SpanRow]) -> None:
    payloads = [
        SpanPayload(
            tenant=tenant,
            trace_id=row.trace_id,
            span_id=row.span_id,
            field=name,
            value=value,
            size=len(as_text(value)),
        )
        for row in rows
        for name, value in row.payloads.items()
    ]
    if payloads:
        SpanPayload.objects.bulk_create(payloads, ignore_conflicts=True)


TRACE_COLUMNS: list[tuple[str, str, str]] = [
    ("tenant_id", "uuid", "{}"),
    ("trace_id", "text", "{}"),
    ("name", "text", "{}"),
    ("started_at", "timestamptz", "{}"),
    ("ended_at", "timestamptz", "{}"),
    ("duration_ms", "float8", "{}"),
    ("status", "text", "{}"),
    ("span_count", "int8", "{}"),
    ("error_count", "int8", "{}"),
    ("input_tokens", "int8", "{}"),
    ("cached_input_tokens", "int8", "{}"),
    ("output_tokens", "int8", "{}"),
    ("reasoning_tokens", "int8", "{}"),
    ("cost_micros", "int8", "{}"),
    ("reported_cost_micros", "int8", "{}"),
    ("stored_bytes", "int8", "{}"),
    ("unpriced_spans", "int8", "{}"),
    ("end_user_id", "text", "{}"),
    ("session_id", "text", "{}"),
    ("agent_id", "text", "{}"),
    ("run_id", "text", "{}"),
    ("agent_name", "text", "{}"),
    ("input_preview", "text", "{}"),
    ("models_used", "text", "ARRAY(SELECT jsonb_array_elements_text({}::jsonb))"),
    ("tags", "text", "ARRAY(SELECT jsonb_array_elements_text({}::jsonb))"),
    ("search_text", "text", "{}"),
    ("created_at", "timestamptz", "{}"),
    ("updated_at", "timestamptz", "{}"),
]
_KEEP_FIRST = "CASE WHEN t.{0} = '' THEN EXCLUDED.{0} ELSE t.{0} END"
_MERGE = "ARRAY(SELECT DISTINCT x FROM unnest(t.{0} || EXCLUDED.{0}) AS x ORDER BY x LIMIT 64)"
_SUMMED = (
    "span_count",
    "error_count",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micros",
    "reported_cost_micros",
    "stored_bytes",
    "unpriced_spans",
)
TRACE_UPSERT_TAIL = (
    "ORDER BY c1 ON CONFLICT (tenant_id, trace_id) DO UPDATE SET "
    "name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name ELSE t.name END, "
    "started_at = LEAST(t.started_at, EXCLUDED.started_at), "
    "ended_at = GREATEST(t.ended_at, EXCLUDED.ended_at), "
    "duration_ms = EXTRACT(EPOCH FROM GREATEST(t.ended_at, EXCLUDED.ended_at)"
    " - LEAST(t.started_at, EXCLUDED.started_at)) * 1000, "
    "status = CASE WHEN t.error_count + EXCLUDED.error_count > 0 THEN 'error'"
    " WHEN t.status = 'ok' OR EXCLUDED.status = 'ok' THEN 'ok' ELSE 'unset' END, "
    + ", ".join(f"{c} = t.{c} + EXCLUDED.{c}" for c in _SUMMED)
    + ", "
    + ", ".join(
        f"{c} = {_KEEP_FIRST.format(c)}" for c in ("end_user_id", "session_id", "agent_id", "run_id", "input_preview")
    )
    # A root's agent (a batch with a root names the trace) over one a child named before it.
    + ", agent_name = CASE WHEN EXCLUDED.name <> '' AND EXCLUDED.agent_name <> '' OR t.agent_name = ''"
    " THEN EXCLUDED.agent_name ELSE t.agent_name END, "
    + ", ".join(f"{c} = {_MERGE.format(c)}" for c in ("models_used", "tags"))
    + f", search_text = CASE WHEN length(t.search_text) >= {TRACE_SEARCH_CHARS} THEN t.search_text"
    f" ELSE left(t.search_text || chr(10) || EXCLUDED.search_text, {TRACE_SEARCH_CHARS}) END"
    + ", updated_at = EXCLUDED.updated_at"
)


_TRACE_KEYS = [name for name, _, _ in TRACE_COLUMNS]
_SPAN_NAMES_JSON = ", ".join(_SPAN_KEYS)
_TRACE_NAMES = ", ".join(_TRACE_KEYS)
# _write_in_one_trip's statement: the spans and their traces' rollups each as one JSON array of
# rows (two parameters, parsed by PostgreSQL into the tables' own row types), the spans inserted
# in key order, then the traces upserted in trace order as _upsert_traces does.
ONE_TRIP_WRITE = (
    f"WITH spans AS (INSERT INTO traces_span ({_SPAN_NAMES_JSON}) "  # noqa: S608 (fixed names)
    f"SELECT {_SPAN_NAMES_JSON} FROM jsonb_populate_recordset(NULL::traces_span, %b::jsonb) "
    "ORDER BY trace_id, span_id) "
    f"INSERT INTO traces_trace AS t ({_TRACE_NAMES}) "
    f"SELECT {_TRACE_NAMES} FROM jsonb_populate_recordset(NULL::traces_trace, %b::jsonb) "
    + TRACE_UPSERT_TAIL.replace("ORDER BY c1 ", "ORDER BY trace_id ", 1)
)


def _trace_record(tenant_id: Any, trace_id: str, spans: list[SpanRow], now: datetime) -> list[Any]:
    """The rollup of `spans` (fresh spans of one trace) in TRACE_COLUMNS order, in one pass."""
    first = spans[0]
    started, ended = first.started_at, first.ended_at
    errors = ok = input_tokens = cached = output_tokens = reasoning = cost = reported = stored = unpriced = 0
    root_name = preview = agent_name = ""
    # end user, session, agent, run: a root's when it has one, else the first span's that has one
    context = ["", "", "", ""]
    from_root = [False, False, False, False]
    models: set[str] = set()
    tags: set[str] = set()
    for span in spans:
        started = min(started, span.started_at)
        ended = max(ended, span.ended_at)
        if span.status == "error":
            errors += 1
        elif span.status == "ok":
            ok += 1
        input_tokens += span.input_tokens
        cached += span.cached_input_tokens
        output_tokens += span.output_tokens
        reasoning += span.reasoning_tokens
        cost += span.cost_micros or 0
        if span.cost_micros is None and (span.input_tokens or span.output_tokens):
            unpriced += 1
        reported += span.reported_cost_micros or 0
        stored += span.stored_bytes
        root = not span.parent_span_id
        if root and not root_name:
            root_name = span.name
            preview = input_preview(span.input)
        if span.agent_name and (not agent_name or root):
            agent_name = span.agent_name
        for slot, value in enumerate((span.end_user_id, span.session_id, span.agent_id, span.run_id)):
            if value and (not context[slot] or (root and not from_root[slot])):
                context[slot], from_root[slot] = value, root
        if span.model:
            models.add(span.model)
        if span.tags:
            tags.update(span.tags)
    by_start = spans if len(spans) == 1 else sorted(spans, key=lambda s: s.started_at)
    return [
        tenant_id,
        trace_id,
        root_name,
        started,
        ended,
        (ended - started).total_seconds() * 1000,
        "error" if errors else ("ok" if ok else "unset"),
        len(spans),
        errors,
        input_tokens,
        cached,
        output_tokens,
        reasoning,
        cost,
        reported,
        stored,
        unpriced,
        *context,
        agent_name,
        preview,
        json.dumps(sorted(models)),
        json.dumps(sorted(tags)[:64]),
        "\n".join(s.search_text for s in by_start)[:TRACE_SEARCH_CHARS],
        now,
        now,
    ]


def _upsert_traces(tenant: Tenant, rows: list[SpanRow], now: datetime) -> set[str]:
    """Add the rollups of freshly inserted `rows` to their traces (created when new), in trace order,
    so concurrent batches lock trace rows in one order. One statement. Returns the traces that had
    no span stored before these (their span count is what this batch added): no stored span of
    theirs can be a child waiting for context (_push_context_down)."""
    if not rows:
        return set()
    by_trace: dict[str, list[SpanRow]] = defaultdict(list)
    for row in rows:
        by_trace[row.trace_id].append(row)
    records = [_trace_record(tenant.pk, trace_id, by_trace[trace_id], now) for trace_id in sorted(by_trace)]
    params = [list(column) for column in zip(*records, strict=True)]
    sql = _unnest_insert(
        "traces_trace AS t", TRACE_COLUMNS, params, TRACE_UPSERT_TAIL + " RETURNING t.trace_id, t.span_count"
    )
    with _bound_cursor() as cursor:
        cursor.execute(sql, params)
        return {trace_id for trace_id, count in cursor.fetchall() if count == len(by_trace[trace_id])}


def span_record(
    *,
    tenant: Tenant,
    trace_id: str,
    kind: str,
    name: str,
    started_at: datetime,
    ended_at: datetime,
    span_id: str = "",
    parent_span_id: str = "",
    status: str = "ok",
    attributes: dict[str, Any] | None = None,
    input: Any = None,
    output: Any = None,
    error: dict[str, str] | None = None,
    model: str = "",
    usage: dict[str, int] | None = None,
    run: Any = None,
    end_user_id: str = "",
    session_id: str = "",
    agent_id: str = "",
    agent_name: str = "",
    tags: list[str] | None = None,
    replace: bool = False,
) -> ItemResult:
    """Record one span into a trace, for other apps (guardrail verdicts, budget reservations,
    approvals) and the run engine. Ids are W3C hex (trace_id 32, span_id 16; generated when empty).
    Given `run`, its id, agent, end user and session are copied onto the span, and `trace_id`
    falls back to `run.trace_id`. Idempotent on (tenant, trace_id, span_id); commits at once (or
    with the caller's transaction). Never raises for a bad span: the result says `rejected`, and the
    rejection is counted like any other.

    With `replace`, the span is the newer state of one that may be stored already (a paused run's
    root, a pending approval): a stored span is updated (`span_replace`), else it is recorded as
    usual. Never collected: written at once, in the caller's transaction."""
    item: dict[str, Any] = {
        "trace_id": trace_id or (run.trace_id if run is not None else ""),
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "kind": kind,
        "name": name,
        "start_time": started_at.isoformat(),
        "end_time": ended_at.isoformat(),
        "status": status,
        "attributes": attributes or {},
        "input": input,
        "output": output,
        "error": error,
        "model": model,
        "usage": usage or {},
        "tags": tags or [],
        "end_user_id": end_user_id,
        "session_id": session_id,
        "agent_id": agent_id,
        "agent_name": agent_name,
    }
    if run is not None:
        item["run_id"] = str(run.pk)
        item["agent_id"] = agent_id or str(run.agent_id)
        item["end_user_id"] = end_user_id or run.end_user_id
        item["session_id"] = session_id or run.session_id
        item[RUN_CONTEXT] = True  # type: ignore[index]  # the run's context: nothing to inherit
    if replace:
        return span_replace(tenant=tenant, item=item)
    batch = _collecting.get()
    if batch is not None and batch.tenant.pk == tenant.pk:
        item["span_id"] = item["span_id"] or secrets.token_hex(8)
        batch.items.append(item)
        return ItemResult(len(batch.items) - 1, "accepted", str(item["trace_id"]), str(item["span_id"]))
    receipt = spans_ingest(tenant=tenant, items=[item], source="engine", keep_receipt=False)
    result = receipt.results[0]
    if result.status == "rejected":
        logger.warning("span %r of trace %s rejected: %s", name, trace_id, result.message)
    return result


# A replaced span's trace rollups (span_replace).
_TRACE_REPLACE_SQL = (
    "UPDATE traces_trace SET started_at = LEAST(started_at, %(started)s),"
    " ended_at = GREATEST(ended_at, %(ended)s),"
    " duration_ms = EXTRACT(EPOCH FROM GREATEST(ended_at, %(ended)s) - LEAST(started_at, %(started)s))"
    " * 1000,"
    " error_count = GREATEST(error_count + %(errors)s, 0),"
    " status = CASE WHEN error_count + %(errors)s > 0 THEN 'error'"
    " WHEN status = 'ok' OR %(status)s = 'ok' THEN 'ok' ELSE 'unset' END,"
    " stored_bytes = GREATEST(stored_bytes + %(bytes)s, 0),"
    " name = CASE WHEN %(root)s THEN %(name)s ELSE name END,"
    " input_preview = CASE WHEN %(root)s AND %(preview)s <> '' THEN %(preview)s ELSE input_preview END,"
    " search_text = CASE WHEN length(search_text) >= %(cap)s OR %(more)s = ''"
    " THEN search_text ELSE left(search_text || chr(10) || %(more)s, %(cap)s) END,"
    " updated_at = %(now)s"
    " WHERE tenant_id = %(tenant)s AND trace_id = %(trace)s"
)


def span_replace(*, tenant: Tenant, item: dict[str, Any]) -> ItemResult:
    """Update the stored span `item` names (tenant, trace_id, span_id) to what `item` says now, or
    record it when none is stored. What changes: name, end, status, error, attributes (merged over
    the stored ones), and input and output when `item` has them (masked by the tenant's trace
    redaction like any ingested span); the start is the earlier of the two, and the trace's rollups
    (end, duration, status, error count, stored bytes, a root's name and input preview) follow.
    Usage and cost are not changed: spans that are replaced carry none (a run's root, an approval).

    Cost: a SELECT … FOR UPDATE of the span, its UPDATE and one UPDATE of the trace, in a
    savepoint of the caller's transaction (or a transaction of its own)."""
    from guardrails.services import redacts_traces, trace_redactor
    from tenants import cache as config_cache

    now = timezone.now()
    with config_cache.snapshot():
        redact = trace_redactor(tenant=tenant) if redacts_traces(tenant) else None
    try:
        row = parse_span(item, now=now, redact=redact)
    except SpanRejected:
        # Refused as an ingest refuses it: counted, and the result says why.
        return spans_ingest(tenant=tenant, items=[item], source="engine", keep_receipt=False).results[0]
    with transaction.atomic():
        stored = (
            Span.objects.for_tenant(tenant)
            .select_for_update()
            .filter(trace_id=row.trace_id, span_id=row.span_id)
            .values("id", "status", "started_at", "stored_bytes", "attributes", "input", "input_truncated")
            .first()
        )
        if stored is None:
            return spans_ingest(tenant=tenant, items=[item], source="engine", keep_receipt=False).results[0]
        if item.get("input") is None:
            # Keep what the stored span read (an approval's arguments, recorded when it was asked).
            row.input, row.input_truncated = stored["input"], stored["input_truncated"]
            row.search_text = finish_search_text(row)
        started = min(stored["started_at"], row.started_at)
        fields: dict[str, Any] = {
            "name": row.name,
            "started_at": started,
            "ended_at": row.ended_at,
            "duration_ms": (row.ended_at - started).total_seconds() * 1000,
            "status": row.status,
            "error_type": row.error_type,
            "error_message": row.error_message,
            "error_stack": row.error_stack,
            "attributes": {**(stored["attributes"] or {}), **row.attributes},
            "search_text": row.search_text,
            "stored_bytes": row.stored_bytes,
        }
        if item.get("input") is not None:
            fields.update(input=row.input, input_truncated=row.input_truncated)
        if item.get("output") is not None:
            fields.update(output=row.output, output_truncated=row.output_truncated)
        Span.objects.for_tenant(tenant).filter(pk=stored["id"]).update(**fields)
        for name, value in row.payloads.items():
            SpanPayload.objects.update_or_create(
                tenant=tenant,
                trace_id=row.trace_id,
                span_id=row.span_id,
                field=name,
                defaults={"value": value, "size": len(as_text(value))},
            )
        errors = (row.status == "error") - (stored["status"] == "error")
        root = not row.parent_span_id
        with connection.cursor() as cursor:
            cursor.execute(
                _TRACE_REPLACE_SQL,
                {
                    "started": started,
                    "ended": row.ended_at,
                    "errors": errors,
                    "status": row.status,
                    "bytes": row.stored_bytes - stored["stored_bytes"],
                    "root": root,
                    "name": row.name,
                    "preview": input_preview(row.input) if root else "",
                    # The text search should find what the span says now that it did not before.
                    "more": as_text(row.output)[: SEARCH_TEXT_CHARS // 2] if item.get("output") is not None else "",
                    "cap": TRACE_SEARCH_CHARS,
                    "now": now,
                    "tenant": tenant.pk,
                    "trace": row.trace_id,
                },
            )
    return ItemResult(0, "accepted", row.trace_id, row.span_id)


@dataclass
class SpanBatch:
    """Spans recorded for one tenant while `collecting(batch)` is active, written by `write()` in
    one ingest (one transaction: one INSERT of the spans, one upsert of their traces)."""

    tenant: Tenant
    items: list[dict[str, Any]] = field(default_factory=list)

    def write(self) -> Receipt | None:
        """Ingest what was collected (and forget it); never raises: a failure is logged."""
        items, self.items = self.items, []
        if not items:
            return None
        try:
            try:
                # The ids were made when the spans were collected: none is stored yet.
                receipt = spans_ingest(
                    tenant=self.tenant, items=items, source="engine", keep_receipt=False, new_ids=True
                )
            except psycopg.errors.UniqueViolation:
                receipt = spans_ingest(tenant=self.tenant, items=items, source="engine", keep_receipt=False)
        except Exception:
            logger.exception("could not record a batch of %d spans", len(items))
            return None
        for result in receipt.results:
            if result.status == "rejected":
                logger.warning("span %s rejected: %s", items[result.index].get("name"), result.message)
        return receipt


_collecting: contextvars.ContextVar[SpanBatch | None] = contextvars.ContextVar("span_batch", default=None)


@contextlib.contextmanager
def collecting(batch: SpanBatch) -> Iterator[SpanBatch]:
    """Within the block, `span_record` for `batch.tenant` appends to `batch` instead of writing:
    the caller writes a whole call's or step's spans at once (`batch.write()`), so a model call
    costs one ingest instead of one per span. Ids are made when collected, so a caller may link to
    a span (a guardrail event's span_id) before it is written."""
    token = _collecting.set(batch)
    try:
        yield batch
    finally:
        _collecting.reset(token)


# --- Settings, retention, erasure --------------------------------------------------------------------

DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 3650
RETENTION_BATCH = 500


def trace_settings_for(tenant: Tenant) -> TenantTraceSettings:
    """The tenant's trace settings (created with the defaults on first use)."""
    found, _ = TenantTraceSettings.objects.get_or_create(
        tenant=tenant, defaults={"retention_days": DEFAULT_RETENTION_DAYS}
    )
    return found


@transaction.atomic
def trace_settings_update(*, actor: Actor, tenant: Tenant, retention_days: int) -> TenantTraceSettings:
    """Set how many days spans are kept (1 to 3650), audited."""
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) or not 1 <= retention_days <= 3650:
        raise FieldError("retention_days", f"must be a whole number of days from 1 to {MAX_RETENTION_DAYS}.")
    found = TenantTraceSettings.objects.for_tenant(tenant).select_for_update().first() or trace_settings_for(tenant)
    before = found.retention_days
    found.retention_days = retention_days
    found.updated_at = timezone.now()
    found.save(update_fields=["retention_days", "updated_at"])
    audit_record(
        tenant=tenant,
        actor=actor,
        action="traces.retention_changed",
        target=found,
        before={"retention_days": before},
        after={"retention_days": retention_days},
    )
    return found


def _delete_traces(tenant: Tenant, trace_ids: list[str]) -> dict[str, int]:
    """Delete these traces with their spans and payloads (in the caller's transaction)."""
    payloads, _ = SpanPayload.objects.for_tenant(tenant).filter(trace_id__in=trace_ids).delete()
    SpanEvent.objects.for_tenant(tenant).filter(trace_id__in=trace_ids).delete()
    spans, _ = Span.objects.for_tenant(tenant).filter(trace_id__in=trace_ids).delete()
    traces, _ = Trace.objects.for_tenant(tenant).filter(trace_id__in=trace_ids).delete()
    return {"traces": traces, "spans": spans, "payloads": payloads}


def traces_expire(*, tenant: Tenant, now: datetime | None = None, max_batches: int = 20) -> dict[str, int]:
    """Delete the tenant's traces that started before its retention window, RETENTION_BATCH traces
    per transaction and at most `max_batches` transactions per call (beat calls again), and up to
    RETENTION_BATCH ingest receipts older than the window. Returns the counts deleted."""
    days = trace_settings_for(tenant).retention_days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    totals = {"traces": 0, "spans": 0, "payloads": 0}
    # Receipts are kept as long as spans (bounded like the traces: one batch per call).
    stale = (
        IngestBatch.objects.for_tenant(tenant)
        .filter(received_at__lt=cutoff)
        .values_list("pk", flat=True)[:RETENTION_BATCH]
    )
    totals["receipts"] = IngestBatch.objects.for_tenant(tenant).filter(pk__in=list(stale)).delete()[0]
    for _ in range(max_batches):
        with transaction.atomic():
            ids = list(
                Trace.objects.for_tenant(tenant)
                .filter(started_at__lt=cutoff)
                .order_by("started_at")
                .values_list("trace_id", flat=True)[:RETENTION_BATCH]
            )
            if not ids:
                break
            for name, count in _delete_traces(tenant, ids).items():
                totals[name] += count
    return totals


def pseudonym(tenant: Tenant, end_user_id: str) -> str:
    """A stable stand-in for an erased end user id: the same per tenant, not reversible."""
    digest = hashlib.sha256(f"{tenant.pk}:{end_user_id}".encode()).hexdigest()[:16]
    return f"erased-{digest}"


@transaction.atomic
def end_user_erase(*, actor: Actor, tenant: Tenant, end_user_id: str) -> dict[str, Any]:
    """Erase an end user: every trace in which they appear (spans and payloads included), their
    runs' inputs, outputs, conversations and step contents, the text their guardrail events kept;
    budget amounts stay, with the end user id replaced by a pseudonym. Audited under the pseudonym
    (the raw id is not kept). Returns the receipt: the pseudonym and counts per kind. Erasing
    someone with nothing stored is not an error (the counts are zero)."""
    from agents.models import Run, Step, ToolExecution
    from budgets.models import BudgetAlert, BudgetCounter, Reservation
    from guardrails.services import guardrail_texts_erase

    end_user_id = (end_user_id or "").strip()
    if not end_user_id or len(end_user_id) > 200:
        raise FieldError("end_user_id", "must be 1 to 200 characters.")
    alias = pseudonym(tenant, end_user_id)
    trace_ids = set(Span.objects.for_tenant(tenant).filter(end_user_id=end_user_id).values_list("trace_id", flat=True))
    trace_ids |= set(
        Trace.objects.for_tenant(tenant).filter(end_user_id=end_user_id).values_list("trace_id", flat=True)
    )
    runs = Run.objects.for_tenant(tenant).filter(end_user_id=end_user_id)
    run_ids = list(runs.values_list("pk", flat=True))
    # Spans the engine wrote for these runs carry the run id even where no end user was copied.
    trace_ids |= set(
        Trace.objects.for_tenant(tenant).filter(run_id__in=[str(r) for r in run_ids]).values_list("trace_id", flat=True)
    )
    counts = {"traces": 0, "spans": 0, "payloads": 0}
    ordered = sorted(trace_ids)
    for start in range(0, len(ordered), RETENTION_BATCH):
        for name, count in _delete_traces(tenant, ordered[start : start + RETENTION_BATCH]).items():
            counts[name] += count
    counts["steps"] = (
        Step.objects.for_tenant(tenant).filter(run_id__in=run_ids).update(request={}, response={}, error="")
    )
    counts["tool_executions"] = (
        ToolExecution.objects.for_tenant(tenant).filter(run_id__in=run_ids).update(arguments={}, result=None)
    )
    counts["runs"] = runs.update(
        input="", output="", messages=[], metadata={}, error_message="", approval_decisions={}, end_user_id=alias
    )
    # Guardrail events keep the checked text (masked) to match reviewers' feedback: theirs goes too.
    counts["guardrail_events"] = guardrail_texts_erase(tenant=tenant, run_ids=run_ids, trace_ids=ordered)
    counts["budget_counters"] = (
        BudgetCounter.objects.for_tenant(tenant).filter(scope_value=end_user_id).update(scope_value=alias)
    )
    counts["budget_alerts"] = (
        BudgetAlert.objects.for_tenant(tenant).filter(scope_value=end_user_id).update(scope_value=alias)
    )
    counts["reservations"] = (
        Reservation.objects.for_tenant(tenant).filter(end_user_id=end_user_id).update(end_user_id=alias)
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="end_user.erased",
        target_type="end_user",
        target_label=alias,
        after={"pseudonym": alias, "counts": counts},
    )
    return {"end_user": alias, "erased_at": timezone.now().isoformat(), "counts": counts}
