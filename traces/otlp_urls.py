"""OTLP/HTTP routes, mounted at the site root (/v1/traces and /v1/logs are where OpenTelemetry
exporters post; /api/public/otel/v1/traces is where the Langfuse SDK does)."""

from django.urls import URLPattern, URLResolver, path

from traces import otlp

urlpatterns: list[URLPattern | URLResolver] = [
    path("traces", otlp.export_traces, name="otlp-traces"),
    path("logs", otlp.export_logs, name="otlp-logs"),
]
