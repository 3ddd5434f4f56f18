"""OTLP/HTTP routes, mounted at the site root (/v1/traces is where OpenTelemetry exporters post)."""

from django.urls import URLPattern, URLResolver, path

from traces import otlp

urlpatterns: list[URLPattern | URLResolver] = [path("traces", otlp.export_traces, name="otlp-traces")]
