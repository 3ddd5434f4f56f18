"""API shapes of traces and spans. Ingest items are validated by traces.ingest (one item at a
time, so one bad span never fails the batch); these serializers shape what is read back."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tenants import strict
from traces.ingest import MAX_BATCH_BYTES, MAX_SPANS_PER_BATCH
from traces.models import Span, Trace


class TraceSerializer(strict.ModelSerializer):
    priced = serializers.SerializerMethodField(
        help_text="Whether cost_micros is our price of all the trace's tokens: false when tokens were used by a "
        "model the catalog does not price (an unknown or floating model name; `unpriced_spans` counts those "
        "spans), so cost_micros is not the whole cost (or $0); null when no tokens were used. "
        "reported_cost_micros is the client's own figure."
    )

    class Meta:
        model = Trace
        fields = [
            "trace_id",
            "name",
            "started_at",
            "ended_at",
            "duration_ms",
            "status",
            "span_count",
            "error_count",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "reasoning_tokens",
            "cost_micros",
            "reported_cost_micros",
            "priced",
            "unpriced_spans",
            "end_user_id",
            "session_id",
            "agent_id",
            "agent_name",
            "input_preview",
            "run_id",
            "models_used",
            "tags",
            "updated_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "agent_name": {"help_text": "The agent's name, as the trace's root span (or its first span) gave it."},
            "input_preview": {
                "help_text": "What the trace was asked: its root span's input in one line (masked as stored), "
                "at most 200 characters."
            },
        }

    def get_priced(self, trace: Trace) -> bool | None:
        if not (trace.input_tokens or trace.output_tokens):
            return None
        return trace.unpriced_spans == 0 and trace.cost_micros > 0


class SpanSerializer(strict.ModelSerializer):
    usage = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = Span
        fields = [
            "trace_id",
            "span_id",
            "parent_span_id",
            "kind",
            "name",
            "started_at",
            "ended_at",
            "duration_ms",
            "status",
            "error",
            "input",
            "output",
            "input_truncated",
            "output_truncated",
            "model",
            "request_model",
            "usage",
            "attributes",
            "tags",
            "links",
            "end_user_id",
            "session_id",
            "agent_id",
            "run_id",
            "source",
            "ingested_at",
        ]
        read_only_fields = fields

    def get_usage(self, span: Span) -> dict[str, Any]:
        return {
            "input_tokens": span.input_tokens,
            "cached_input_tokens": span.cached_input_tokens,
            "output_tokens": span.output_tokens,
            "reasoning_tokens": span.reasoning_tokens,
            "reported_cost_micros": span.reported_cost_micros,
            "cost_micros": span.cost_micros,
        }

    def get_error(self, span: Span) -> dict[str, str] | None:
        if not (span.error_type or span.error_message or span.error_stack):
            return None
        return {"type": span.error_type, "message": span.error_message, "stack": span.error_stack}


def _iso(value: Any) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def span_dict(span: Span) -> dict[str, Any]:
    """A span in the SpanSerializer shape, built directly: a 10,000-span trace's GET went from
    2.1 s to 1.3 s (docs/BENCHMARKS.md) without DRF's per-field machinery. tests/test_api.py
    checks both shapes agree."""
    error = None
    if span.error_type or span.error_message or span.error_stack:
        error = {"type": span.error_type, "message": span.error_message, "stack": span.error_stack}
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "kind": span.kind,
        "name": span.name,
        "started_at": _iso(span.started_at),
        "ended_at": _iso(span.ended_at),
        "duration_ms": span.duration_ms,
        "status": span.status,
        "error": error,
        "input": span.input,
        "output": span.output,
        "input_truncated": span.input_truncated,
        "output_truncated": span.output_truncated,
        "model": span.model,
        "request_model": span.request_model,
        "usage": {
            "input_tokens": span.input_tokens,
            "cached_input_tokens": span.cached_input_tokens,
            "output_tokens": span.output_tokens,
            "reasoning_tokens": span.reasoning_tokens,
            "reported_cost_micros": span.reported_cost_micros,
            "cost_micros": span.cost_micros,
        },
        "attributes": span.attributes,
        "tags": span.tags,
        "links": span.links,
        "end_user_id": span.end_user_id,
        "session_id": span.session_id,
        "agent_id": span.agent_id,
        "run_id": span.run_id,
        "source": span.source,
        "ingested_at": _iso(span.ingested_at),
    }


class TraceDetailSerializer(TraceSerializer):
    spans = serializers.SerializerMethodField()
    spans_truncated = serializers.SerializerMethodField()

    class Meta(TraceSerializer.Meta):
        fields = [*TraceSerializer.Meta.fields, "spans", "spans_truncated"]
        read_only_fields = fields

    @extend_schema_field(SpanSerializer(many=True))
    def get_spans(self, trace: Trace) -> list[dict[str, Any]]:
        return [span_dict(span) for span in self.context["spans"]]

    def get_spans_truncated(self, trace: Trace) -> bool:
        return bool(self.context.get("spans_truncated"))


class IngestRequestSerializer(strict.Serializer):
    """Documentation of the batch (each item is checked by traces.ingest.parse_span)."""

    spans = serializers.ListField(
        child=serializers.DictField(),
        max_length=MAX_SPANS_PER_BATCH,
        help_text=(
            f"At most {MAX_SPANS_PER_BATCH} spans and {MAX_BATCH_BYTES} bytes per request. Each: trace_id (32 hex), "
            "span_id (16 hex), parent_span_id?, name, kind (agent, llm, tool, guardrail, budget, approval, retrieval, "
            "handoff, custom), start_time, end_time (ISO 8601 or Unix seconds), status? (ok, error, unset), "
            "error? {type, message, stack}, input?, output?, model?, usage? {input_tokens, cached_input_tokens, "
            "output_tokens, reasoning_tokens, cost_micros | cost_usd}, attributes?, tags?, links? [{trace_id, "
            "span_id}], end_user_id?, session_id?, agent_id?, run_id?. Input and output over 8 KiB are kept whole "
            "aside and capped on the span; over 1 MiB they are refused."
        ),
    )


class ItemResultSerializer(strict.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"])
    trace_id = serializers.CharField(required=False)
    span_id = serializers.CharField(required=False)
    reason = serializers.CharField(required=False)
    message = serializers.CharField(required=False)


class IngestReceiptSerializer(strict.Serializer):
    receipt_id = serializers.UUIDField()
    received_at = serializers.DateTimeField()
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = ItemResultSerializer(many=True)

    def to_representation(self, instance: Any) -> Any:
        """The receipt's fields as DRF writes them, and its results as given: they are already in
        ItemResultSerializer's shape (ItemResult.as_dict), and going through it field by field
        cost ~25 ms for a batch of 1,000."""
        data = super().to_representation({**instance, "results": []})
        data["results"] = instance["results"]
        return data


class ErasureReceiptSerializer(strict.Serializer):
    end_user = serializers.CharField(help_text="The pseudonym that replaces the erased id where amounts are kept.")
    erased_at = serializers.DateTimeField()
    counts = serializers.DictField(child=serializers.IntegerField())
    erased = serializers.BooleanField(help_text="False when nothing was stored for this end user (no erasure audited).")
