"""instrument(): a span made with the OpenTelemetry SDK reaches the console through the real
OTLP/HTTP exporter and is read back through the traces API. The tests take a provider of their
own (set_global=False): OpenTelemetry lets a process set its global provider only once."""

from __future__ import annotations

import sys

import pytest
from aoc_client import Console, instrument

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_span_exported_by_the_sdk_appears_in_the_trace(console: Console) -> None:
    provider = console.instrument(service_name="client-tests", set_global=False)
    try:
        tracer = provider.get_tracer("aoc-client-tests")
        with tracer.start_as_current_span("lookup_order") as parent:
            parent.set_attribute("session.id", "sess-7")
            with tracer.start_as_current_span("fetch_from_erp") as child:
                child.set_attribute("order.id", "A-1001")
        trace_id = format(parent.get_span_context().trace_id, "032x")
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()

    trace = console.trace(trace_id)

    spans = {s["name"]: s for s in trace["spans"]}
    assert set(spans) == {"lookup_order", "fetch_from_erp"}
    assert spans["fetch_from_erp"]["parent_span_id"] == spans["lookup_order"]["span_id"]
    assert trace["trace_id"] == trace_id


def test_without_the_sdk_instrument_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)

    with pytest.raises(ImportError, match=r"aoc-client\[otel\]"):
        instrument("http://127.0.0.1:9", "aoc_key")


SCRIPT = """
import sys
from aoc_client import instrument
from opentelemetry import trace

provider = instrument(sys.argv[1], sys.argv[2], service_name="one-line")
with trace.get_tracer("agent").start_as_current_span("plan_refund") as span:
    print(format(span.get_span_context().trace_id, "032x"))
provider.shutdown()
"""


def test_the_one_line_global_setup_exports_what_the_global_tracer_records(
    live_asgi: str, setup, console: Console
) -> None:
    # In a process of its own: the global provider can be set once per process.
    import os
    import subprocess
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "src"
    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT, live_asgi, setup.agent_key],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(source)},
    )
    assert ran.returncode == 0, ran.stderr
    trace_id = ran.stdout.strip()

    trace = console.trace(trace_id)

    assert [s["name"] for s in trace["spans"]] == ["plan_refund"]
