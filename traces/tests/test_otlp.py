"""OTLP/HTTP ingestion: the real OpenTelemetry SDK exporter (protobuf) against a live server, the
JSON encoding, the GenAI semantic conventions mapping, partial success and authentication."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
from django.test import Client
from google.protobuf import json_format
from google.rpc import code_pb2
from google.rpc.status_pb2 import Status as StatusMessage
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tenants.models import Scope
from tenants.testing import Cast, make_key
from traces.models import IngestRejection, Span, Trace

URL = "/v1/traces"


def test_the_sdk_exporter_delivers_genai_spans_to_a_live_server(live_server: Any, cast: Cast) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

    _, key = make_key(cast.acme, [Scope.TRACES_WRITE])
    exporter = OTLPSpanExporter(endpoint=f"{live_server.url}{URL}", headers={"Authorization": f"Bearer {key}"})
    results: list[SpanExportResult] = []
    export = exporter.export

    def recording_export(spans: Any) -> SpanExportResult:
        results.append(export(spans))
        return results[-1]

    exporter.export = recording_export  # type: ignore[method-assign]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("invoke_agent support-bot") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.conversation.id", "conv-42")
        agent.set_attribute("enduser.id", "ann")
        with tracer.start_as_current_span("chat gpt-4o-2024-08-06") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-4o")
            chat.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
            chat.set_attribute("gen_ai.usage.input_tokens", 120)
            chat.set_attribute("gen_ai.usage.output_tokens", 30)
            chat.set_attribute("gen_ai.usage.cache_read.input_tokens", 20)
            chat.set_attribute("gen_ai.usage.reasoning_tokens", 5)
            chat.set_attribute("gen_ai.input.messages", json.dumps([{"role": "user", "content": "Hallo, Welt"}]))
        with tracer.start_as_current_span("execute_tool lookup_order") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            try:
                raise TimeoutError("the order service timed out")
            except TimeoutError as exc:
                tool.record_exception(exc)
                tool.set_status(_error_status())
        trace_id = format(agent.get_span_context().trace_id, "032x")
    provider.shutdown()
    assert results and all(r == SpanExportResult.SUCCESS for r in results)
    deadline = time.monotonic() + 1.0
    while not Trace.objects.for_tenant(cast.acme).filter(trace_id=trace_id, span_count=3).exists():
        assert time.monotonic() < deadline, "the exported spans were not visible within a second"
        time.sleep(0.02)
    spans = {s.name: s for s in Span.objects.for_tenant(cast.acme).filter(trace_id=trace_id)}
    assert {s.kind for s in spans.values()} == {"agent", "llm", "tool"}
    chat_span = spans["chat gpt-4o-2024-08-06"]
    assert chat_span.model == "gpt-4o-2024-08-06"
    assert (chat_span.input_tokens, chat_span.output_tokens) == (120, 30)
    assert (chat_span.cached_input_tokens, chat_span.reasoning_tokens) == (20, 5)
    assert chat_span.input == [{"role": "user", "content": "Hallo, Welt"}]
    assert chat_span.session_id == "conv-42" or spans["invoke_agent support-bot"].session_id == "conv-42"
    assert chat_span.parent_span_id == spans["invoke_agent support-bot"].span_id
    tool_span = spans["execute_tool lookup_order"]
    assert tool_span.status == "error" and tool_span.error_type == "TimeoutError"
    assert "timed out" in tool_span.error_message and "Traceback" in tool_span.error_stack
    trace = Trace.objects.for_tenant(cast.acme).get(trace_id=trace_id)
    assert (trace.session_id, trace.end_user_id, trace.name) == ("conv-42", "ann", "invoke_agent support-bot")
    assert trace.status == "error" and trace.span_count == 3


def _error_status() -> Any:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR, "lookup failed")


def otlp_json(trace_id: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing-bot"}}]},
                "scopeSpans": [{"scope": {"name": "tests"}, "spans": spans}],
            }
        ]
    }


def json_span(trace_id: str, span_id: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": "1764064800000000000",
        "endTimeUnixNano": "1764064801500000000",
        **extra,
    }


@pytest.mark.django_db
def test_otlp_json_is_accepted_and_mapped_and_replay_is_idempotent(client: Client, cast: Cast) -> None:
    _, key = make_key(cast.acme, [Scope.TRACES_WRITE])
    trace_id, root, child = secrets.token_hex(16), secrets.token_hex(8), secrets.token_hex(8)
    attrs = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "text_completion"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "claude-x"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "11"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 4}},
        {"key": "gen_ai.conversation.id", "value": {"stringValue": "s-json"}},
        {"key": "custom.flag", "value": {"boolValue": True}},
    ]
    document = otlp_json(
        trace_id,
        [
            json_span(trace_id, root, "root"),
            json_span(trace_id, child, "complete", parentSpanId=root, attributes=attrs),
        ],
    )
    for _ in range(2):
        response = client.post(
            URL, json.dumps(document), content_type="application/json", headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200, response.content
        parsed = json_format.Parse(response.content, ExportTraceServiceResponse())
        assert parsed.partial_success.rejected_spans == 0
    assert Span.objects.for_tenant(cast.acme).filter(trace_id=trace_id).count() == 2
    span = Span.objects.for_tenant(cast.acme).get(trace_id=trace_id, span_id=child)
    assert (span.kind, span.model, span.input_tokens, span.output_tokens) == ("llm", "claude-x", 11, 4)
    assert span.session_id == "s-json" and span.parent_span_id == root and span.duration_ms == 1500
    assert span.attributes["custom.flag"] is True and span.attributes["resource.service.name"] == "billing-bot"
    assert Trace.objects.for_tenant(cast.acme).get(trace_id=trace_id).span_count == 2


@pytest.mark.django_db
def test_bad_spans_are_a_partial_success_and_counted(client: Client, cast: Cast) -> None:
    _, key = make_key(cast.acme, [Scope.TRACES_WRITE])
    trace_id = secrets.token_hex(16)
    document = otlp_json(
        trace_id,
        [
            json_span(trace_id, secrets.token_hex(8), "fine"),
            json_span(
                trace_id,
                secrets.token_hex(8),
                "",
            ),
            json_span(trace_id, secrets.token_hex(8), "backwards", endTimeUnixNano="1"),
            json_span(trace_id, secrets.token_hex(8), "unset", startTimeUnixNano="0", endTimeUnixNano="0"),
        ],
    )
    response = client.post(
        URL, json.dumps(document), content_type="application/json", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    parsed = json_format.Parse(response.content, ExportTraceServiceResponse())
    assert parsed.partial_success.rejected_spans == 3
    assert "missing_name" in parsed.partial_success.error_message
    counts = dict(IngestRejection.objects.for_tenant(cast.acme).values_list("reason", "count"))
    assert counts == {"missing_name": 1, "invalid_time": 2}


@pytest.mark.django_db
def test_it_refuses_bad_credentials_scopes_media_types_and_bodies(client: Client, cast: Cast) -> None:
    def post(body: bytes, key: str | None, content_type: str = "application/x-protobuf") -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return client.post(URL, body, content_type=content_type, headers=headers)

    _, writer = make_key(cast.acme, [Scope.TRACES_WRITE])
    _, reader = make_key(cast.acme, [Scope.READ])
    assert post(b"", None).status_code == 401
    assert post(b"", "aoc_nope_nope").status_code == 401
    assert post(b"", reader).status_code == 403
    assert post(b"x", writer, "text/plain").status_code == 415
    assert post(b"\xff\xff\xff", writer).status_code == 400
    assert post(b"[1]", writer, "application/json").status_code == 400
    # One unreadable span id refuses that span (counted), not the request, as with protobuf.
    one_bad = post(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', writer, "application/json")
    assert one_bad.status_code == 200
    assert json.loads(one_bad.content)["partialSuccess"]["rejectedSpans"] == "1"
    assert client.get(URL).status_code == 405

    # Each refusal is a google.rpc.Status in the request's encoding, as OTLP clients expect.
    refused = post(b"\xff\xff\xff", writer)
    assert refused["Content-Type"] == "application/x-protobuf"
    status = StatusMessage.FromString(refused.content)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert status.message == "invalid_request: The body is not a valid ExportTraceServiceRequest protobuf."
    denied = post(b"{}", reader, "application/json")
    assert denied.status_code == 403 and denied["Content-Type"] == "application/json"
    assert denied.json() == {
        "code": code_pb2.PERMISSION_DENIED,
        "message": "permission_denied: This API key lacks the `traces:write` scope.",
    }
    unauthenticated = StatusMessage.FromString(post(b"\x0a\x00", "aoc_nope_nope").content)
    assert unauthenticated.code == code_pb2.UNAUTHENTICATED and "Invalid API key" in unauthenticated.message
