"""`instrument()`: the OpenTelemetry SDK's spans exported to the console's OTLP endpoint
(`<console>/v1/traces`, protobuf over HTTP, authenticated with the API key, which needs the
`traces:write` scope). Needs the `otel` extra: `pip install "aoc-client[otel]"`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aoc_client import _core

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

EXTRA_HINT = (
    "aoc_client.instrument() needs the OpenTelemetry SDK and its OTLP/HTTP exporter: "
    'pip install "aoc-client[otel]" (opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http).'
)


def instrument(
    url: str | None = None,
    key: str | None = None,
    *,
    service_name: str | None = None,
    set_global: bool = True,
) -> TracerProvider:
    """Add a batch exporter to the console to the global SDK TracerProvider (created, with
    `service_name`, when the global one is not an SDK provider yet) and return it. With
    `set_global=False` a new provider of its own is returned and the global one is left alone.
    `url` and `key` default to AOC_URL and AOC_API_KEY. Spans leave in batches: call the
    provider's `force_flush()` (or `shutdown()`) before a short script ends."""
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ImportError(EXTRA_HINT) from exc
    base, api_key = _core.settings(url, key)
    exporter = OTLPSpanExporter(
        endpoint=f"{base}/v1/traces",
        headers={"Authorization": f"Bearer {api_key}", "User-Agent": _core.USER_AGENT},
    )
    current = trace.get_tracer_provider() if set_global else None
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name} if service_name else {}))
        if set_global:
            trace.set_tracer_provider(provider)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
