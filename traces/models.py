"""Traces and their spans, whole large payloads, ingest receipts, rejection counters and the
per-tenant retention setting.

Spans are keyed by (tenant, trace_id, span_id), the ids the client sent (W3C hex), which is what
makes ingestion idempotent. A span carries copies of its tenant, end user, session, agent and run
so every filter reads one table; a Trace row holds the rollups of its spans, updated at ingest.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Lookup
from django.utils.timezone import now

from tenants.ids import new_id
from tenants.models import ApiKey, TenantOwned

KINDS = ("agent", "llm", "tool", "guardrail", "budget", "approval", "retrieval", "handoff", "custom")


class SpanKind(models.TextChoices):
    AGENT = "agent", "Agent"
    LLM = "llm", "LLM call"
    TOOL = "tool", "Tool call"
    GUARDRAIL = "guardrail", "Guardrail"
    BUDGET = "budget", "Budget"
    APPROVAL = "approval", "Approval"
    RETRIEVAL = "retrieval", "Retrieval"
    HANDOFF = "handoff", "Handoff"
    CUSTOM = "custom", "Custom"


class SpanStatus(models.TextChoices):
    UNSET = "unset", "Unset"
    OK = "ok", "OK"
    ERROR = "error", "Error"


class SearchTextField(models.TextField):
    """Text searched with `__ilike_contains`: ILIKE '%…%', which the trigram index serves (Django's
    `icontains` wraps the column in UPPER(), which no plain trigram index matches)."""


@SearchTextField.register_lookup
class ILikeContains(Lookup):
    lookup_name = "ilike_contains"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", (*lhs_params, *rhs_params)

    def get_db_prep_lookup(self, value: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        escaped = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return "%s", (f"%{escaped}%",)


def _usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}".rstrip("0").rstrip(".") or "0"


class Trace(TenantOwned):
    """One trace: identity, the context copied from its spans, and rollups kept at ingest."""

    id = models.BigAutoField(primary_key=True)
    trace_id = models.CharField(max_length=32)
    name = models.CharField(max_length=200, blank=True, help_text="The root span's name.")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    duration_ms = models.FloatField(default=0)
    status = models.CharField(max_length=8, choices=SpanStatus.choices, default=SpanStatus.UNSET)
    span_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0, help_text="Computed from the catalog's prices.")
    reported_cost_micros = models.BigIntegerField(default=0, help_text="As the client reported it.")
    stored_bytes = models.BigIntegerField(default=0)
    # Spans that used tokens of a model the catalog does not price: cost_micros leaves them out.
    unpriced_spans = models.BigIntegerField(default=0, db_default=0)
    end_user_id = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    agent_id = models.CharField(max_length=200, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    # The agent's name as a span gave it (its root's first: an engine run's root names its agent),
    # and what the trace was asked: its root span's input, masked as stored, in one line.
    agent_name = models.CharField(max_length=200, blank=True, default="", db_default="")
    input_preview = models.CharField(max_length=200, blank=True, default="", db_default="")
    models_used = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    # What search matches: its spans' names, inputs, outputs and errors, appended at ingest up to
    # TRACE_SEARCH_CHARS (traces/ingest.py). On the trace row, so a search walking the newest
    # traces tests each in place instead of probing its spans.
    search_text = SearchTextField(blank=True, default="")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "trace_id"], name="trace_unique_id")]
        indexes = [
            models.Index(fields=["tenant", "-started_at", "-id"], name="trace_tenant_time"),
            models.Index(fields=["tenant", "session_id", "started_at"], name="trace_tenant_session"),
            models.Index(fields=["tenant", "end_user_id", "-started_at"], name="trace_tenant_end_user"),
            models.Index(fields=["tenant", "agent_id", "-started_at"], name="trace_tenant_agent"),
            models.Index(fields=["tenant", "status", "-started_at"], name="trace_tenant_status"),
        ]

    def __str__(self) -> str:
        return f"trace {self.trace_id}"

    @property
    def cost_usd(self) -> str:
        return _usd(self.cost_micros)

    @property
    def reported_cost_usd(self) -> str:
        return _usd(self.reported_cost_micros)


class Span(TenantOwned):
    """One span as ingested; input and output capped here (whole in SpanPayload when larger)."""

    id = models.BigAutoField(primary_key=True)
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, blank=True)
    kind = models.CharField(max_length=16, choices=SpanKind.choices, default=SpanKind.CUSTOM)
    name = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    duration_ms = models.FloatField(default=0)
    status = models.CharField(max_length=8, choices=SpanStatus.choices, default=SpanStatus.UNSET)
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    error_stack = models.TextField(blank=True)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    # True when input/output above is a capped preview; the whole value is in SpanPayload.
    input_truncated = models.BooleanField(default=False)
    output_truncated = models.BooleanField(default=False)
    model = models.CharField(max_length=200, blank=True, help_text="The model that answered (what is priced).")
    request_model = models.CharField(max_length=200, blank=True, help_text="The model name asked for.")
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    reported_cost_micros = models.BigIntegerField(null=True, blank=True)
    cost_micros = models.BigIntegerField(null=True, blank=True)
    # OpenTelemetry's span kind (internal, server, client, producer, consumer) and the
    # instrumentation scope that produced the span (empty for native spans).
    span_kind = models.CharField(max_length=8, blank=True)
    scope_name = models.CharField(max_length=200, blank=True)
    scope_version = models.CharField(max_length=64, blank=True)
    agent_name = models.CharField(max_length=200, blank=True)
    tool_name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    links = models.JSONField(default=list, blank=True)
    end_user_id = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    agent_id = models.CharField(max_length=200, blank=True)
    run_id = models.CharField(max_length=64, blank=True)
    search_text = SearchTextField(blank=True)
    stored_bytes = models.IntegerField(default=0)
    source = models.CharField(max_length=8, default="native")
    ingested_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "trace_id", "span_id"], name="span_unique_id")]
        indexes = [
            models.Index(fields=["tenant", "trace_id", "parent_span_id", "started_at"], name="span_tenant_tree"),
            models.Index(fields=["tenant", "end_user_id"], name="span_tenant_end_user"),
            models.Index(fields=["tenant", "model", "started_at"], name="span_tenant_model"),
        ]

    def __str__(self) -> str:
        return f"span {self.span_id} of {self.trace_id}"

    @property
    def is_error(self) -> bool:
        return self.status == SpanStatus.ERROR


class SpanPayload(TenantOwned):
    """The whole input or output of a span whose value was too large to keep on the span."""

    class Field(models.TextChoices):
        INPUT = "input", "Input"
        OUTPUT = "output", "Output"

    id = models.BigAutoField(primary_key=True)
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    field = models.CharField(max_length=8, choices=Field.choices)
    value = models.JSONField()
    size = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "trace_id", "span_id", "field"], name="spanpayload_unique")
        ]

    def __str__(self) -> str:
        return f"{self.field} of span {self.span_id}"


class SpanEvent(TenantOwned):
    """A GenAI event that arrived as an OTLP log record (`POST /v1/logs`), attached to its span by
    ids: the span may arrive before or after it. Its content fills the span's empty input/output."""

    id = models.BigAutoField(primary_key=True)
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    name = models.CharField(max_length=200)
    time = models.DateTimeField()
    attributes = models.JSONField(default=dict, blank=True)
    body = models.JSONField(null=True, blank=True)
    ingested_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "trace_id", "span_id"], name="spanevent_tenant_span")]

    def __str__(self) -> str:
        return f"{self.name} of span {self.span_id}"


class IngestBatch(TenantOwned):
    """The receipt of one ingest request: what was accepted, already there, or rejected, and why."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    source = models.CharField(max_length=8, default="native")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(default=now)
    size_bytes = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # Seconds from the latest span end in the batch to its acknowledgement (client-side delay).
    max_lag_seconds = models.FloatField(null=True, blank=True)
    rejections = models.JSONField(default=list, blank=True, help_text="Up to 100 {index, reason, message}.")

    class Meta:
        indexes = [models.Index(fields=["tenant", "-received_at"], name="ingestbatch_tenant_time")]
        verbose_name_plural = "ingest batches"

    def __str__(self) -> str:
        return f"batch {self.pk}: {self.accepted} accepted, {self.rejected} rejected"


class IngestRejection(TenantOwned):
    """How many spans a tenant had rejected for one reason, with the latest message."""

    id = models.BigAutoField(primary_key=True)
    reason = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)
    last_message = models.CharField(max_length=500, blank=True)
    last_seen_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "reason"], name="ingestrejection_unique_reason")]
        ordering = ["-count"]

    def __str__(self) -> str:
        return f"{self.reason}: {self.count}"


class TenantTraceSettings(TenantOwned):
    """A tenant's trace retention: spans older than `retention_days` are deleted by beat."""

    id = models.BigAutoField(primary_key=True)
    retention_days = models.PositiveIntegerField(default=30)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="tenanttracesettings_unique_tenant")]
        verbose_name_plural = "tenant trace settings"

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.retention_days} days"
