"""Read-only admin views of traces for staff; changes go through services."""

from __future__ import annotations

from django.contrib import admin

from tenants.admin import ReadOnlyAdmin
from traces.models import IngestBatch, IngestRejection, Span, TenantTraceSettings, Trace


@admin.register(Trace)
class TraceAdmin(ReadOnlyAdmin):
    list_display = ("trace_id", "tenant", "name", "started_at", "status", "span_count", "end_user_id")
    list_filter = ("status",)


@admin.register(Span)
class SpanAdmin(ReadOnlyAdmin):
    list_display = ("span_id", "trace_id", "tenant", "kind", "name", "started_at", "status")
    list_filter = ("kind", "status")


@admin.register(IngestBatch)
class IngestBatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "tenant", "source", "received_at", "accepted", "duplicates", "rejected")


@admin.register(IngestRejection)
class IngestRejectionAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "reason", "count", "last_seen_at")


@admin.register(TenantTraceSettings)
class TenantTraceSettingsAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "retention_days", "updated_at")
