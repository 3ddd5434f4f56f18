"""OTLP/HTTP trace ingestion (`POST /v1/traces`), protobuf and JSON, onto the native ingest service.

The OpenTelemetry GenAI semantic conventions are mapped onto our fields:

    gen_ai.operation.name   chat, text_completion, generate_content, embeddings → llm;
                            invoke_agent, create_agent → agent; execute_tool → tool
                            (`aoc.span.kind` names one of our kinds directly and wins)
    gen_ai.response.model, gen_ai.request.model                          → model
    gen_ai.usage.input_tokens / output_tokens (and the older prompt_/completion_tokens)
    gen_ai.usage.cache_read.input_tokens, gen_ai.usage.cached_input_tokens → cached input tokens
    gen_ai.usage.reasoning_tokens, gen_ai.usage.output_tokens.reasoning    → reasoning tokens
    gen_ai.conversation.id, session.id                                   → session
    enduser.id, user.id                                                  → end user
    gen_ai.agent.id, gen_ai.agent.name                                   → agent
    gen_ai.input.messages, gen_ai.prompt, gen_ai.tool.call.arguments     → input
    gen_ai.output.messages, gen_ai.completion, gen_ai.tool.call.result   → output
    status ERROR + the `exception` event (type, message, stacktrace)     → error

Everything else stays in `attributes` (resource attributes under `resource.`). Per the OTLP spec
the answer is an ExportTraceServiceResponse in the request's encoding, with `partial_success`
counting the spans refused (each refusal is also counted per tenant with its reason); a refused
request gets a 4xx with a google.rpc.Status body in the request's encoding.
"""

from __future__ import annotations

import base64
import json
import logging
import zlib
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2
from google.rpc.status_pb2 import Status as StatusMessage
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from rest_framework import exceptions

from tenants.authentication import authenticate_key
from tenants.errors import ServiceError
from tenants.models import Scope
from traces import services
from traces.ingest import KINDS, MAX_BATCH_BYTES, MAX_SPANS_PER_BATCH, SpanRejected

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

OPERATION_KINDS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "llm",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "execute_tool": "tool",
}
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")
USAGE_KEYS = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cached_input_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cached_input_tokens",
        "gen_ai.usage.input_tokens.cached",
    ),
    "reasoning_tokens": ("gen_ai.usage.reasoning_tokens", "gen_ai.usage.output_tokens.reasoning"),
}
CONTEXT_KEYS = {
    "session_id": ("gen_ai.conversation.id", "session.id"),
    "end_user_id": ("enduser.id", "user.id"),
    "agent_id": ("gen_ai.agent.id", "gen_ai.agent.name"),
}
INPUT_KEYS = ("gen_ai.input.messages", "gen_ai.prompt", "gen_ai.tool.call.arguments", "input.value")
OUTPUT_KEYS = ("gen_ai.output.messages", "gen_ai.completion", "gen_ai.tool.call.result", "output.value")


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as plain JSON-able Python."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which is None:
        return None
    return getattr(value, which)


def _maybe_json(value: Any) -> Any:
    """GenAI messages arrive as JSON text in a string attribute: keep them structured."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _pop(attributes: dict[str, Any], keys: tuple[str, ...]) -> Any:
    found = None
    for key in keys:
        if key in attributes:
            value = attributes.pop(key)
            if found is None:
                found = value
    return found


def _nanos_to_iso(nanos: int) -> float:
    return nanos / 1e9


def map_span(span: OtlpSpan, resource: dict[str, Any]) -> dict[str, Any]:
    """One OTLP span as a native ingest item (validated afterwards like any other item)."""
    attributes = {kv.key: any_value(kv.value) for kv in span.attributes}
    operation = str(attributes.get("gen_ai.operation.name") or "")
    kind = str(attributes.pop("aoc.span.kind", "") or "") or OPERATION_KINDS.get(operation, "custom")
    if kind not in KINDS:
        kind = "custom"
    item: dict[str, Any] = {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() if span.parent_span_id else "",
        "name": span.name[:200],
        "kind": kind,
        "start_time": _nanos_to_iso(span.start_time_unix_nano),
        "end_time": _nanos_to_iso(span.end_time_unix_nano or span.start_time_unix_nano),
        "status": {Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}.get(span.status.code, "unset"),
    }
    model = _pop(attributes, MODEL_KEYS)
    if model:
        item["model"] = str(model)
    usage: dict[str, Any] = {}
    for name, keys in USAGE_KEYS.items():
        value = _pop(attributes, keys)
        if value is not None:
            usage[name] = value
    if usage:
        item["usage"] = usage
    for name, keys in CONTEXT_KEYS.items():
        value = _pop(attributes, keys)
        if value is not None:
            item[name] = str(value)
    value = _pop(attributes, INPUT_KEYS)
    if value is not None:
        item["input"] = _maybe_json(value)
    value = _pop(attributes, OUTPUT_KEYS)
    if value is not None:
        item["output"] = _maybe_json(value)
    tags = attributes.pop("tags", None)
    if isinstance(tags, list):
        item["tags"] = [str(t) for t in tags]
    if span.status.code == Status.STATUS_CODE_ERROR:
        error = {"type": "", "message": span.status.message, "stack": ""}
        for event in span.events:
            if event.name == "exception":
                found = {kv.key: any_value(kv.value) for kv in event.attributes}
                error = {
                    "type": str(found.get("exception.type", "")),
                    "message": str(found.get("exception.message", span.status.message)),
                    "stack": str(found.get("exception.stacktrace", "")),
                }
                break
        item["error"] = error
    if span.links:
        item["links"] = [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()} for link in span.links]
    if span.events:
        attributes["otel.events"] = [
            {
                "name": e.name,
                "time": _nanos_to_iso(e.time_unix_nano),
                "attributes": {kv.key: any_value(kv.value) for kv in e.attributes},
            }
            for e in span.events[:32]
        ]
    item["attributes"] = {**{f"resource.{k}": v for k, v in resource.items()}, **attributes}
    return item


_HEX_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(document: Any) -> None:
    """OTLP/JSON writes ids as hex, where protobuf's JSON mapping expects base64: convert in place."""
    for resource_spans in document.get("resourceSpans", document.get("resource_spans", [])) or []:
        for scope_spans in resource_spans.get("scopeSpans", resource_spans.get("scope_spans", [])) or []:
            for span in scope_spans.get("spans", []) or []:
                for holder in [span, *(span.get("links") or [])]:
                    for field in _HEX_ID_FIELDS:
                        value = holder.get(field)
                        if isinstance(value, str) and value:
                            try:
                                holder[field] = base64.b64encode(bytes.fromhex(value)).decode()
                            except ValueError as exc:
                                raise ValueError(f"{field} {value[:40]!r} is not hex") from exc


class OtlpError(ServiceError):
    pass


def _decode_body(request: HttpRequest) -> bytes:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > MAX_BATCH_BYTES:
        raise OtlpError(f"The request is {length} bytes; the limit is {MAX_BATCH_BYTES}.", status=413)
    body = request.body
    encoding = request.headers.get("Content-Encoding", "").lower()
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
        try:
            body = inflater.decompress(body, MAX_BATCH_BYTES * 8)
        except zlib.error as exc:
            raise OtlpError(f"The body is not valid {encoding}.") from exc
        if inflater.unconsumed_tail:
            raise OtlpError("The decompressed request is too large.", status=413)
    elif encoding not in ("", "identity"):
        raise OtlpError(f"Content-Encoding {encoding!r} is not supported (gzip is).", status=415)
    return body


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpError("The body is not a valid ExportTraceServiceRequest protobuf.") from exc
        return message
    try:
        document = json.loads(body or b"{}")
        if not isinstance(document, dict):
            raise ValueError("not an object")
        _hex_ids_to_base64(document)
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError) as exc:
        raise OtlpError(f"The body is not a valid OTLP/JSON ExportTraceServiceRequest: {exc}") from exc
    return message


# HTTP status → the google.rpc.Code an OTLP client reads from the Status body.
RPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
}


def _error(request_type: str, status: int, type_: str, message: str) -> HttpResponse:
    """A refusal as the OTLP spec has it: a google.rpc.Status body in the request's encoding
    (protobuf for protobuf, JSON otherwise), its message naming our error type."""
    body = StatusMessage(code=RPC_CODES.get(status, code_pb2.UNKNOWN), message=f"{type_}: {message}")
    if request_type == PROTOBUF:
        return HttpResponse(body.SerializeToString(), content_type=PROTOBUF, status=status)
    return HttpResponse(json_format.MessageToJson(body), content_type=JSON, status=status)


@csrf_exempt
@require_POST
def export_traces(request: HttpRequest) -> HttpResponse:
    """OTLP/HTTP: store the request's spans through the native ingest (idempotent on ids)."""
    content_type = request.content_type or ""
    header = request.headers.get("Authorization", "").split()
    if len(header) != 2 or header[0].lower() != "bearer":
        return _error(content_type, 401, "not_authenticated", "Send Authorization: Bearer <api key>.")
    try:
        key = authenticate_key(header[1])
    except exceptions.AuthenticationFailed as exc:
        return _error(content_type, 401, "authentication_failed", str(exc.detail))
    except ServiceError as exc:
        return _error(content_type, exc.status_code, exc.type, exc.message)
    if not key.has_scope(Scope.TRACES_WRITE):
        return _error(content_type, 403, "permission_denied", f"This API key lacks the `{Scope.TRACES_WRITE}` scope.")
    if content_type not in (PROTOBUF, JSON):
        return _error(content_type, 415, "unsupported_media_type", f"Send {PROTOBUF} or {JSON}.")
    tenant = key.tenant
    try:
        body = _decode_body(request)
        message = parse_request(body, content_type)
    except OtlpError as exc:
        status = exc.extra.get("status", 400)
        reason = "otlp_invalid_request"
        services.rejections_count(tenant=tenant, counts={reason: 1}, messages={reason: exc.message})
        return _error(content_type, status, "invalid_request", exc.message)

    items: list[Any] = []
    refused: dict[int, SpanRejected] = {}
    for resource_spans in message.resource_spans:
        resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                try:
                    items.append(map_span(span, resource))
                except (ValueError, TypeError) as exc:
                    refused[len(items)] = SpanRejected("invalid_span", f"Could not read the span: {exc}")
                    items.append(None)
    rejected, messages = 0, []
    for start in range(0, len(items), MAX_SPANS_PER_BATCH):
        chunk = items[start : start + MAX_SPANS_PER_BATCH]
        prevalidated = {i - start: r for i, r in refused.items() if start <= i < start + len(chunk)}
        receipt = services.spans_ingest(
            tenant=tenant, items=chunk, source="otlp", api_key=key, size_bytes=len(body), prevalidated=prevalidated
        )
        rejected += receipt.rejected
        messages += [f"span {start + r.index}: {r.reason}: {r.message}" for r in receipt.results if r.reason][:5]
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message="; ".join(messages[:5])[:1000])
        )
    if content_type == PROTOBUF:
        return HttpResponse(response.SerializeToString(), content_type=PROTOBUF)
    return HttpResponse(json_format.MessageToJson(response), content_type=JSON)
