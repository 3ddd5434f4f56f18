"""OTLP/HTTP ingestion: traces (`POST /v1/traces`, and Langfuse's `/api/public/otel/v1/traces`)
and GenAI log events (`POST /v1/logs`), protobuf and JSON, onto the native ingest service.

What the spans' attributes mean is read by traces/conventions.py (the OpenTelemetry GenAI
conventions, current and previous names, OpenInference, Langfuse, LiteLLM); besides, from OTLP
itself: the span kind (client, server, …) and the instrumentation scope (name, version) are stored,
status ERROR with the `exception` event (type, message, stacktrace) becomes the error, and
`error.type` names it when no exception event does.

Everything else stays in `attributes` (resource attributes under `resource.`). Per the OTLP spec
the answer is an Export…ServiceResponse in the request's encoding, with `partial_success`
counting the spans (or log records) refused, one by one, in JSON as in protobuf (each refusal is
also counted per tenant with its reason); a request that cannot be read at all gets a 4xx with a
google.rpc.Status body in the request's encoding.

Authentication: `Authorization: Bearer <api key>`, or (for the Langfuse SDK, which sends its
public and secret key) `Basic base64(<anything>:<api key>)`: the secret key is the API key.

Logs: a record that is a GenAI event (`event_name`, or the `event.name` attribute, starting with
`gen_ai.`) and names a span is kept as a SpanEvent; its content fills its span's input or output
when the span has none (the span may arrive before or after). Any other record is refused and
counted (`log_not_genai_event`, `log_without_span`): this is not a log store.
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
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from rest_framework import exceptions

from tenants.authentication import authenticate_key
from tenants.errors import ServiceError
from tenants.models import ApiKey, Scope
from traces import conventions, services
from traces.ingest import MAX_BATCH_BYTES, MAX_SPANS_PER_BATCH, SpanRejected

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

SPAN_KINDS = {
    OtlpSpan.SPAN_KIND_INTERNAL: "internal",
    OtlpSpan.SPAN_KIND_SERVER: "server",
    OtlpSpan.SPAN_KIND_CLIENT: "client",
    OtlpSpan.SPAN_KIND_PRODUCER: "producer",
    OtlpSpan.SPAN_KIND_CONSUMER: "consumer",
}


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


def _nanos_to_iso(nanos: int) -> float:
    return nanos / 1e9


def map_span(span: OtlpSpan, resource: dict[str, Any], scope: tuple[str, str] = ("", "")) -> dict[str, Any]:
    """One OTLP span as a native ingest item (validated afterwards like any other item)."""
    attributes = {kv.key: any_value(kv.value) for kv in span.attributes}
    mapped = conventions.apply(attributes)
    item: dict[str, Any] = {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() if span.parent_span_id else "",
        "name": span.name[:200],
        "kind": mapped.get("kind") or "custom",
        "span_kind": SPAN_KINDS.get(span.kind, ""),
        "scope": {"name": scope[0][:200], "version": scope[1][:64]},
        "start_time": _nanos_to_iso(span.start_time_unix_nano),
        "end_time": _nanos_to_iso(span.end_time_unix_nano or span.start_time_unix_nano),
        "status": {Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}.get(span.status.code, "unset"),
    }
    for name in ("model", "request_model", "usage", "end_user_id", "session_id", "agent_id", "agent_name", "tool_name"):
        if mapped.get(name):
            item[name] = mapped[name]
    for name in ("input", "output"):
        if mapped.get(name) is not None:
            item[name] = mapped[name]
    tags = attributes.pop("tags", None) or attributes.pop("langfuse.trace.tags", None)
    if isinstance(tags, list):
        item["tags"] = [str(t) for t in tags]
    failed = span.status.code == Status.STATUS_CODE_ERROR or str(mapped.get("level", "")).upper() == "ERROR"
    if failed:
        item["status"] = "error"
        error = {
            "type": str(mapped.get("error_type", "")),
            "message": span.status.message or str(mapped.get("status_message", "")),
            "stack": "",
        }
        for event in span.events:
            if event.name == "exception":
                found = {kv.key: any_value(kv.value) for kv in event.attributes}
                error = {
                    "type": str(found.get("exception.type", "")) or error["type"],
                    "message": str(found.get("exception.message", "")) or error["message"],
                    "stack": str(found.get("exception.stacktrace", "")),
                }
                break
        item["error"] = {k: v[:200] if k == "type" else v for k, v in error.items()}
    elif mapped.get("error_type"):
        attributes["error.type"] = mapped["error_type"]
    if mapped["conventions"]:
        attributes["aoc.conventions"] = mapped["conventions"]
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


def _hex_ids_to_base64(holder: dict[str, Any], fields: tuple[str, ...] = _HEX_ID_FIELDS) -> None:
    """OTLP/JSON writes ids as hex, where protobuf's JSON mapping expects base64: convert in place."""
    for field in fields:
        value = holder.get(field)
        if isinstance(value, str) and value:
            try:
                holder[field] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError as exc:
                raise ValueError(f"{field} {value[:40]!r} is not hex") from exc


def _list(document: dict[str, Any], camel: str, snake: str) -> list[Any]:
    found = document.get(camel, document.get(snake)) or []
    if not isinstance(found, list):
        raise ValueError(f"{camel} must be a list")
    return found


# One span (or log record) as read: its resource attributes, its scope (name, version), and the
# message, or the reason it could not be read.
Entry = tuple[dict[str, Any], tuple[str, str], Any]


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


def _entries_from_message(groups: Any, scoped: str, leaf: str) -> list[Entry]:
    entries: list[Entry] = []
    for group in groups:
        resource = {kv.key: any_value(kv.value) for kv in group.resource.attributes}
        for scope_group in getattr(group, scoped):
            scope = (scope_group.scope.name, scope_group.scope.version)
            entries += [(resource, scope, message) for message in getattr(scope_group, leaf)]
    return entries


def _entries_from_json(document: dict[str, Any], signal: str) -> list[Entry]:
    """Each span (or log record) of an OTLP/JSON document parsed on its own, so one bad span id
    refuses that span, not the request, as with protobuf (whose ids are bytes and cannot be bad)."""
    message_type: type[OtlpSpan] | type[LogRecord]
    id_fields: tuple[str, ...]
    if signal == "traces":
        names, message_type, id_fields = (
            ("resourceSpans", "resource_spans", "scopeSpans", "scope_spans", "spans"),
            OtlpSpan,
            _HEX_ID_FIELDS,
        )
    else:
        names, message_type, id_fields = (
            ("resourceLogs", "resource_logs", "scopeLogs", "scope_logs", "logRecords"),
            LogRecord,
            ("traceId", "spanId", "trace_id", "span_id"),
        )
    entries: list[Entry] = []
    for group in _list(document, names[0], names[1]):
        if not isinstance(group, dict):
            raise ValueError(f"each of {names[0]} must be an object")
        resource_message = Resource()
        json_format.ParseDict(group.get("resource") or {}, resource_message, ignore_unknown_fields=True)
        resource = {kv.key: any_value(kv.value) for kv in resource_message.attributes}
        for scope_group in _list(group, names[2], names[3]):
            if not isinstance(scope_group, dict):
                raise ValueError(f"each of {names[2]} must be an object")
            scope_message = InstrumentationScope()
            json_format.ParseDict(scope_group.get("scope") or {}, scope_message, ignore_unknown_fields=True)
            scope = (scope_message.name, scope_message.version)
            leaf = scope_group.get(names[4], scope_group.get("log_records" if signal == "logs" else "spans")) or []
            for raw in leaf if isinstance(leaf, list) else []:
                message = message_type()
                try:
                    if not isinstance(raw, dict):
                        raise ValueError("not an object")
                    _hex_ids_to_base64(raw, id_fields)
                    for link in raw.get("links") or [] if signal == "traces" else []:
                        if isinstance(link, dict):
                            _hex_ids_to_base64(link)
                    json_format.ParseDict(raw, message, ignore_unknown_fields=True)
                except (ValueError, TypeError, RecursionError, json_format.ParseError) as exc:
                    entries.append(
                        (
                            resource,
                            scope,
                            SpanRejected("invalid_span", f"Could not read the {leaf_name(signal)}: {exc}"[:500]),
                        )
                    )
                    continue
                entries.append((resource, scope, message))
    return entries


def leaf_name(signal: str) -> str:
    return "span" if signal == "traces" else "log record"


def parse_request(body: bytes, content_type: str, signal: str = "traces") -> list[Entry]:
    """The request's spans (signal "traces") or log records ("logs"), each with its resource and
    scope; an entry that could not be read holds its SpanRejected instead of the message."""
    if content_type == PROTOBUF:
        request = ExportTraceServiceRequest() if signal == "traces" else ExportLogsServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpError(f"The body is not a valid {type(request).__name__} protobuf.") from exc
        if isinstance(request, ExportTraceServiceRequest):
            return _entries_from_message(request.resource_spans, "scope_spans", "spans")
        return _entries_from_message(request.resource_logs, "scope_logs", "log_records")
    try:
        document = json.loads(body or b"{}")
        if not isinstance(document, dict):
            raise ValueError("not an object")
        return _entries_from_json(document, signal)
    except (ValueError, json_format.ParseError) as exc:
        raise OtlpError(f"The body is not a valid OTLP/JSON export request: {exc}") from exc
    except RecursionError:
        raise OtlpError("The body is not a valid OTLP/JSON export request: it is nested too deeply.") from None


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


def _authenticate(request: HttpRequest, content_type: str) -> ApiKey | HttpResponse:
    """The request's API key (Bearer, or Basic with the key as password), or the refusal."""
    header = request.headers.get("Authorization", "").split()
    secret = ""
    if len(header) == 2 and header[0].lower() == "bearer":
        secret = header[1]
    elif len(header) == 2 and header[0].lower() == "basic":
        try:
            secret = base64.b64decode(header[1], validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            secret = ""
    if not secret:
        return _error(
            content_type,
            401,
            "not_authenticated",
            "Send Authorization: Bearer <api key> (or Basic with it as password).",
        )
    try:
        key = authenticate_key(secret)
    except exceptions.AuthenticationFailed as exc:
        return _error(content_type, 401, "authentication_failed", str(exc.detail))
    except ServiceError as exc:
        return _error(content_type, exc.status_code, exc.type, exc.message)
    if not key.has_scope(Scope.TRACES_WRITE):
        return _error(content_type, 403, "permission_denied", f"This API key lacks the `{Scope.TRACES_WRITE}` scope.")
    return key


def _read(request: HttpRequest, signal: str) -> tuple[ApiKey, bytes, list[Entry]] | HttpResponse:
    content_type = request.content_type or ""
    key = _authenticate(request, content_type)
    if isinstance(key, HttpResponse):
        return key
    if content_type not in (PROTOBUF, JSON):
        return _error(content_type, 415, "unsupported_media_type", f"Send {PROTOBUF} or {JSON}.")
    try:
        body = _decode_body(request)
        entries = parse_request(body, content_type, signal)
    except OtlpError as exc:
        status = exc.extra.get("status", 400)
        reason = "otlp_invalid_request"
        services.rejections_count(tenant=key.tenant, counts={reason: 1}, messages={reason: exc.message})
        return _error(content_type, status, "invalid_request", exc.message)
    return key, body, entries


def _answer(content_type: str, response: Any) -> HttpResponse:
    if content_type == PROTOBUF:
        return HttpResponse(response.SerializeToString(), content_type=PROTOBUF)
    return HttpResponse(json_format.MessageToJson(response), content_type=JSON)


@csrf_exempt
@require_POST
def export_traces(request: HttpRequest) -> HttpResponse:
    """OTLP/HTTP: store the request's spans through the native ingest (idempotent on ids)."""
    read = _read(request, "traces")
    if isinstance(read, HttpResponse):
        return read
    key, body, entries = read
    tenant = key.tenant
    items: list[Any] = []
    refused: dict[int, SpanRejected] = {}
    for resource, scope, span in entries:
        if isinstance(span, SpanRejected):
            refused[len(items)] = span
            items.append(None)
            continue
        try:
            items.append(map_span(span, resource, scope))
        except (ValueError, TypeError) as exc:
            refused[len(items)] = SpanRejected("invalid_span", f"Could not read the span: {exc}")
            items.append(None)
    services.span_events_fill(tenant=tenant, items=[i for i in items if i is not None])
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
    return _answer(request.content_type or "", response)


def _log_event(resource: dict[str, Any], record: LogRecord) -> dict[str, Any]:
    """One log record as a GenAI event, or SpanRejected when it is not one."""
    attributes = {kv.key: any_value(kv.value) for kv in record.attributes}
    name = str(record.event_name or attributes.pop("event.name", "") or "")
    if not name.startswith("gen_ai."):
        raise SpanRejected("log_not_genai_event", "Only GenAI events (event name gen_ai.*) are kept from logs.")
    if len(record.trace_id) != 16 or len(record.span_id) != 8:
        raise SpanRejected("log_without_span", f"The event {name[:80]} names no span (trace_id and span_id).")
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    return {
        "trace_id": record.trace_id.hex(),
        "span_id": record.span_id.hex(),
        "name": name[:200],
        "time": nanos / 1e9 if nanos else None,
        "attributes": attributes,
        "body": any_value(record.body) if record.HasField("body") else None,
    }


@csrf_exempt
@require_POST
def export_logs(request: HttpRequest) -> HttpResponse:
    """OTLP/HTTP logs: GenAI events kept and attached to their spans; other records refused and
    counted (partial_success names how many and why)."""
    read = _read(request, "logs")
    if isinstance(read, HttpResponse):
        return read
    key, _, entries = read
    events: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    messages: dict[str, str] = {}
    for resource, _scope, record in entries:
        try:
            if isinstance(record, SpanRejected):
                raise record
            events.append(_log_event(resource, record))
        except SpanRejected as exc:
            counts[exc.reason] = counts.get(exc.reason, 0) + 1
            messages[exc.reason] = exc.message
    services.span_events_ingest(tenant=key.tenant, events=events)
    services.rejections_count(tenant=key.tenant, counts=counts, messages=messages)
    response = ExportLogsServiceResponse()
    if counts:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(
                rejected_log_records=sum(counts.values()),
                error_message="; ".join(f"{n} {reason}: {messages[reason]}" for reason, n in sorted(counts.items()))[
                    :1000
                ],
            )
        )
    return _answer(request.content_type or "", response)
