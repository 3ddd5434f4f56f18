"""Reads of traces: the filtered list (API and console), one trace, a span's children with their
subtree rollups (lazy loading of large traces), sessions, end users, ingestion health and storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import django_filters
from django.db.models import CharField, Count, Exists, F, Max, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Cast
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from tenants.filters import IsoTimeFilter, RehearsalFilter, StrictFilterSet
from tenants.models import Tenant
from tenants.selectors import get_for_tenant
from traces.models import IngestBatch, IngestRejection, Span, SpanKind, SpanPayload, SpanStatus, Trace

MAX_QUERY = 200


def _rehearsal_traces(tenant: Tenant | None) -> Q:
    """Traces of eval (rehearsal) runs: their run id is one whose metadata names an eval result."""
    from agents.selectors import rehearsal_runs

    run_ids = rehearsal_runs(tenant=tenant).annotate(text_id=Cast("id", CharField())).values("text_id")
    return Q(run_id__in=run_ids)


class TraceFilterSet(StrictFilterSet):
    """The trace list's filters, for the API and the console (combined with AND). Every filter is
    on the trace row, indexed with the tenant first; `q` matches the trace's search text (its spans'
    names, inputs, outputs and errors, the first 64 KiB) through a trigram index, in any language.
    Eval rehearsals are left out unless `rehearsals` says otherwise."""

    q = django_filters.CharFilter(
        method="filter_q",
        max_length=MAX_QUERY,
        label="Search inputs and outputs",
        help_text="Text in any span's name, input, output or error (any language).",
    )
    status = django_filters.ChoiceFilter(choices=SpanStatus.choices, empty_label="any status")
    since = IsoTimeFilter(
        field_name="started_at", lookup_expr="gte", label="From (ISO time)", help_text="Started at or after (ISO 8601)."
    )
    until = IsoTimeFilter(
        field_name="started_at", lookup_expr="lt", label="Until (ISO time)", help_text="Started before (ISO 8601)."
    )
    agent = django_filters.CharFilter(field_name="agent_id", max_length=MAX_QUERY, help_text="Agent id.")
    model = django_filters.CharFilter(
        method="filter_model", max_length=MAX_QUERY, help_text="A model id used by any span."
    )
    end_user = django_filters.CharFilter(field_name="end_user_id", max_length=MAX_QUERY, label="End user")
    session = django_filters.CharFilter(field_name="session_id", max_length=MAX_QUERY)
    tag = django_filters.CharFilter(method="filter_tag", max_length=64)
    min_latency_ms = django_filters.NumberFilter(
        field_name="duration_ms", lookup_expr="gte", min_value=0, label="Min latency (ms)"
    )
    min_cost_usd = django_filters.NumberFilter(method="filter_cost", min_value=0, label="Min cost ($)")
    kind = django_filters.ChoiceFilter(
        choices=SpanKind.choices,
        method="filter_span",
        empty_label="any kind",
        label="Has a span of kind",
        help_text="Traces with a span of this kind (llm, tool, agent, …).",
    )
    scope = django_filters.CharFilter(
        method="filter_span",
        max_length=200,
        label="Instrumentation scope",
        help_text="Traces with a span from this OpenTelemetry instrumentation scope (its name, exact).",
    )
    rehearsals = RehearsalFilter(rehearsal=_rehearsal_traces)

    class Meta:
        model = Trace
        fields: list[str] = []

    def filter_q(self, queryset: QuerySet[Trace], name: str, value: str) -> QuerySet[Trace]:
        return queryset.filter(search_text__ilike_contains=value)

    def filter_model(self, queryset: QuerySet[Trace], name: str, value: str) -> QuerySet[Trace]:
        return queryset.filter(models_used__contains=[value])

    def filter_span(self, queryset: QuerySet[Trace], name: str, value: str) -> QuerySet[Trace]:
        """Traces with a span of that kind or scope (an EXISTS on the span's tenant and trace)."""
        field = "kind" if name == "kind" else "scope_name"
        spans = Span.objects.across_tenants("an EXISTS on the outer trace's own tenant").filter(
            tenant_id=OuterRef("tenant_id"), trace_id=OuterRef("trace_id"), **{field: value}
        )
        return queryset.filter(Exists(spans))

    def filter_tag(self, queryset: QuerySet[Trace], name: str, value: str) -> QuerySet[Trace]:
        return queryset.filter(tags__contains=[value])

    @extend_schema_field(OpenApiTypes.NUMBER)
    def filter_cost(self, queryset: QuerySet[Trace], name: str, value: Any) -> QuerySet[Trace]:
        micros = round(float(value) * 1_000_000)
        return queryset.filter(Q(cost_micros__gte=micros) | Q(reported_cost_micros__gte=micros))


def traces_of(*, tenant: Tenant) -> QuerySet[Trace]:
    """The tenant's traces, newest first (ordered by -started_at, -id), without their search text;
    narrow them with TraceFilterSet."""
    return Trace.objects.for_tenant(tenant).defer("search_text").order_by("-started_at", "-id")


def get_trace_for_tenant(tenant: Tenant, trace_id: str) -> Trace:
    """The tenant's trace with this W3C id (any case), or the same 404 as another tenant's."""
    return get_for_tenant(Trace.objects.for_tenant(tenant).defer("search_text"), tenant, trace_id=str(trace_id).lower())


def spans_of(*, trace: Trace) -> QuerySet[Span]:
    """Every span of `trace`, by start time."""
    return Span.objects.for_tenant(trace.tenant).filter(trace_id=trace.trace_id).order_by("started_at", "id")


def _iso_sql(column: str) -> str:
    """SQL for `column` (timestamptz) as traces.serializers._iso writes it: UTC, 'Z', microseconds
    only when there are some (Python's isoformat)."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN extract(microseconds FROM {column})::bigint"
        f" %% 1000000 = 0 THEN '' ELSE to_char({utc}, '.US') END || 'Z'"
    )


# One span as JSON in traces.serializers.span_dict's shape and key order (json_build_object keeps
# the order it is given). A whole float keeps its ".0", as Python's json writes it.
_SPAN_JSON_SQL = f"""
SELECT json_build_object(
  'trace_id', trace_id, 'span_id', span_id, 'parent_span_id', parent_span_id, 'kind', kind, 'name', name,
  'started_at', {_iso_sql("started_at")}, 'ended_at', {_iso_sql("ended_at")},
  'duration_ms', (CASE WHEN duration_ms = trunc(duration_ms) AND abs(duration_ms) < 1e15
                  THEN trunc(duration_ms)::bigint::text || '.0' ELSE duration_ms::text END)::json,
  'status', status,
  'error', CASE WHEN error_type <> '' OR error_message <> '' OR error_stack <> ''
           THEN json_build_object('type', error_type, 'message', error_message, 'stack', error_stack) END,
  'input', input, 'output', output, 'input_truncated', input_truncated, 'output_truncated', output_truncated,
  'model', model, 'request_model', request_model,
  'usage', json_build_object(
    'input_tokens', input_tokens, 'cached_input_tokens', cached_input_tokens, 'output_tokens', output_tokens,
    'reasoning_tokens', reasoning_tokens, 'reported_cost_micros', reported_cost_micros, 'cost_micros', cost_micros),
  'attributes', attributes, 'tags', tags, 'links', links, 'end_user_id', end_user_id, 'session_id', session_id,
  'agent_id', agent_id, 'run_id', run_id, 'source', source, 'ingested_at', {_iso_sql("ingested_at")}
)::text
FROM traces_span WHERE tenant_id = %s AND trace_id = %s ORDER BY started_at, id LIMIT %s
"""  # noqa: S608 - built from constants only


def spans_json(*, trace: Trace, limit: int) -> tuple[str, bool]:
    """The JSON array of `trace`'s first `limit` spans by start time (spans_of's order), each in
    span_dict's shape, and whether more spans exist. PostgreSQL writes each span's JSON: no model
    instance, no decoding of the JSON columns and encoding them again (a 10,000-span trace's GET
    took ~540 ms through model instances; see docs/BENCHMARKS.md). One SELECT on the span tree index."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_SPAN_JSON_SQL, [trace.tenant_id, trace.trace_id, limit + 1])
        rows = [row[0] for row in cursor.fetchall()]
    return "[" + ",".join(rows[:limit]) + "]", len(rows) > limit


def get_span_for_tenant(tenant: Tenant, trace_id: str, span_id: str) -> Span:
    return get_for_tenant(
        Span.objects.for_tenant(tenant), tenant, trace_id=str(trace_id).lower(), span_id=str(span_id).lower()
    )


def span_payload(*, span: Span, field_name: str) -> Any:
    """The whole input or output of a span whose value on the row is a capped preview."""
    found = (
        SpanPayload.objects.for_tenant(span.tenant)
        .filter(trace_id=span.trace_id, span_id=span.span_id, field=field_name)
        .values_list("value", flat=True)
        .first()
    )
    return found


MAX_PATH = 64


def span_path(*, span: Span) -> list[str]:
    """The ids of `span`'s ancestors, its root first (a parent that never arrived ends the walk).
    One query per level, at most MAX_PATH."""
    path: list[str] = []
    parent = span.parent_span_id
    while parent and parent not in path and len(path) < MAX_PATH:
        path.append(parent)
        parent = (
            Span.objects.for_tenant(span.tenant)
            .filter(trace_id=span.trace_id, span_id=parent)
            .values_list("parent_span_id", flat=True)
            .first()
            or ""
        )
    return path[::-1]


def pending_approval_span(*, trace: Trace) -> Span | None:
    """The approval span of `trace` still waiting for a decision (the one a paused run waits on),
    or None. One query."""
    return (
        Span.objects.for_tenant(trace.tenant)
        .filter(trace_id=trace.trace_id, kind=SpanKind.APPROVAL, attributes__contains={"approval.decision": "pending"})
        .defer("search_text")
        .order_by("-started_at")
        .first()
    )


@dataclass
class Rollup:
    """A subtree's totals: spans (itself included), errors, tokens and cost."""

    spans: int = 0
    errors: int = 0
    tokens: int = 0
    cost_micros: int = 0


def subtree_rollups(*, trace: Trace) -> dict[str, Rollup]:
    """The rollup of every span's subtree, by span id. Cost: one query over the trace's spans
    reading five narrow columns (about 10 ms per 10,000 spans), then a pass in Python."""
    rows = list(
        Span.objects.for_tenant(trace.tenant)
        .filter(trace_id=trace.trace_id)
        .values_list("span_id", "parent_span_id", "status", F("input_tokens") + F("output_tokens"), "cost_micros")
    )
    parent_of = {span_id: parent for span_id, parent, *_ in rows}
    rollups: dict[str, Rollup] = {span_id: Rollup() for span_id, *_ in rows}
    for span_id, _, status, tokens, cost in rows:
        seen = 0
        node: str | None = span_id
        # Walk up to the root adding this span to each ancestor (a cycle is cut at the trace size).
        while node is not None and node in rollups and seen <= len(rows):
            rollup = rollups[node]
            rollup.spans += 1
            rollup.errors += status == SpanStatus.ERROR
            rollup.tokens += tokens or 0
            rollup.cost_micros += cost or 0
            node = parent_of.get(node) or None
            seen += 1
    return rollups


def children_of(*, trace: Trace, parent_span_id: str, offset: int = 0, limit: int = 200) -> QuerySet[Span]:
    """Direct children of `parent_span_id` ("" for the roots), by start time: one page of them.
    A span whose parent never arrived is listed with the roots."""
    qs = Span.objects.for_tenant(trace.tenant).filter(trace_id=trace.trace_id)
    if parent_span_id:
        qs = qs.filter(parent_span_id=parent_span_id)
    else:
        known = Span.objects.for_tenant(trace.tenant).filter(trace_id=trace.trace_id).values("span_id")
        qs = qs.filter(Q(parent_span_id="") | ~Q(parent_span_id__in=known))
    return qs.defer("search_text").order_by("started_at", "id")[offset : offset + limit]


def sessions_traces(*, tenant: Tenant, session_id: str) -> QuerySet[Trace]:
    """Every trace of a session, oldest first (the conversation in order)."""
    return (
        Trace.objects.for_tenant(tenant).filter(session_id=session_id).defer("search_text").order_by("started_at", "id")
    )


def end_user_traces(*, tenant: Tenant, end_user_id: str) -> QuerySet[Trace]:
    return (
        Trace.objects.for_tenant(tenant)
        .filter(end_user_id=end_user_id)
        .defer("search_text")
        .order_by("-started_at", "-id")
    )


def end_user_sessions(*, tenant: Tenant, end_user_id: str) -> list[dict[str, Any]]:
    """The end user's sessions, most recent first (at most 100), with their trace counts."""
    return [
        dict(row)
        for row in Trace.objects.for_tenant(tenant)
        .filter(end_user_id=end_user_id)
        .exclude(session_id="")
        .values("session_id")
        .annotate(traces=Count("id"), last=Max("started_at"))
        .order_by("-last")[:100]
    ]


@dataclass
class IngestHealth:
    """Ingestion over a window: accepted, duplicates, rejected (with reasons), lag, and storage."""

    window: timedelta
    accepted: int
    duplicates: int
    rejected: int
    batches: int
    max_lag_seconds: float | None
    reasons: list[IngestRejection]
    stored_spans: int
    stored_traces: int
    stored_bytes: int


def ingest_health(*, tenant: Tenant, window: timedelta = timedelta(hours=24)) -> IngestHealth:
    """Cost: one aggregate over the window's receipts, one over the trace rollups, one counter list."""
    since = timezone.now() - window
    batches = (
        IngestBatch.objects.for_tenant(tenant)
        .filter(received_at__gte=since)
        .aggregate(
            accepted=Sum("accepted"),
            duplicates=Sum("duplicates"),
            rejected=Sum("rejected"),
            batches=Count("id"),
            lag=Max("max_lag_seconds"),
        )
    )
    stored = Trace.objects.for_tenant(tenant).aggregate(
        spans=Sum("span_count"), traces=Count("id"), bytes=Sum("stored_bytes")
    )
    return IngestHealth(
        window=window,
        accepted=batches["accepted"] or 0,
        duplicates=batches["duplicates"] or 0,
        rejected=batches["rejected"] or 0,
        batches=batches["batches"] or 0,
        max_lag_seconds=batches["lag"],
        reasons=list(IngestRejection.objects.for_tenant(tenant).order_by("-count")[:20]),
        stored_spans=stored["spans"] or 0,
        stored_traces=stored["traces"] or 0,
        stored_bytes=stored["bytes"] or 0,
    )
