"""OTLP/HTTP routes, mounted at the site root (/v1/traces is where OpenTelemetry exporters post)."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
