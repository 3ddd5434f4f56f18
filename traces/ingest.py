"""Validation of one incoming span (native JSON shape) into a row ready to insert.

Every refusal is a `SpanRejected(reason, message)`: the batch goes on without that item, and the
reason is counted per tenant. Limits are module constants so the API docs and tests quote them.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tenants.strict import LONE_SURROGATE
from traces.models import KINDS

MAX_SPANS_PER_BATCH = 1000
MAX_BATCH_BYTES = 2 * 1024 * 1024  # under Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
INLINE_PAYLOAD_CHARS = 8 * 1024  # input/output kept on the span up to this (as JSON text)
MAX_PAYLOAD_CHARS = 1024 * 1024  # a bigger input/output is refused
MAX_ATTRIBUTES_CHARS = 64 * 1024
MAX_NAME = 200
MAX_ID_FIELD = 200
MAX_TAGS = 32
MAX_TAG = 64
MAX_LINKS = 32
MAX_ERROR_CHARS = 32 * 1024
SEARCH_TEXT_CHARS = 4000  # per span
TRACE_SEARCH_CHARS = 64 * 1024  # per trace: the first spans' text, in arrival order
MAX_TOKENS = 10**12
FUTURE_SKEW = timedelta(hours=24)

HEX_TRACE = re.compile(r"^[0-9a-f]{32}$")
HEX_SPAN = re.compile(r"^[0-9a-f]{16}$")
STATUSES = ("unset", "ok", "error")
SPAN_KINDS = ("", "internal", "server", "client", "producer", "consumer")
# Attributes that name infrastructure, not a person: never masked by the trace redactor (an
# `server.address` holding an IP is the provider's address, not personal data).
UNREDACTED_ATTRIBUTES = frozenset({"server.address", "server.port", "url.full", "gen_ai.provider.name"})
USAGE_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


# The key span_record puts on an item recorded for a run, whose end user, session and agent are the
# run's: not a string, so no item parsed from JSON (the API, OTLP) can carry it.
RUN_CONTEXT = object()


class SpanRejected(Exception):  # noqa: N818 - a verdict on one item, not a crash
    """One item refused, with a stable reason code and a message for a person."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class SpanRow:
    """A validated span, with the payloads too large to keep inline."""

    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    name: str
    started_at: datetime
    ended_at: datetime
    status: str
    error_type: str = ""
    error_message: str = ""
    error_stack: str = ""
    input: Any = None
    output: Any = None
    input_truncated: bool = False
    output_truncated: bool = False
    model: str = ""
    request_model: str = ""
    span_kind: str = ""
    scope_name: str = ""
    scope_version: str = ""
    agent_name: str = ""
    tool_name: str = ""
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    reported_cost_micros: int | None = None
    cost_micros: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)
    end_user_id: str = ""
    session_id: str = ""
    agent_id: str = ""
    run_id: str = ""
    search_text: str = ""
    stored_bytes: int = 0
    payloads: dict[str, Any] = field(default_factory=dict)
    generated_ids: bool = False
    # The end user, session and agent are the run's own (traces.services.span_record given `run`):
    # nothing to inherit from a parent.
    run_context: bool = False

    @property
    def duration_ms(self) -> float:
        return (self.ended_at - self.started_at).total_seconds() * 1000

    @property
    def key(self) -> tuple[str, str]:
        return self.trace_id, self.span_id


def parse_time(value: Any, name: str) -> datetime:
    """An ISO 8601 string (a naive one is UTC) or Unix seconds, as an aware datetime."""
    if isinstance(value, bool) or value is None or value == "":
        raise SpanRejected("invalid_time", f"{name} is required: an ISO 8601 time or Unix seconds.")
    if isinstance(value, int | float):
        if value <= 0:
            # OTLP leaves an unset time at 0: a span "from 1970" would be stored and expired at once.
            raise SpanRejected("invalid_time", f"{name} is not set (Unix time {value}).")
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise SpanRejected("invalid_time", f"{name} {value!r} is out of range.") from exc
    if not isinstance(value, str):
        raise SpanRejected("invalid_time", f"{name} must be an ISO 8601 string or Unix seconds.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise SpanRejected("invalid_time", f"{name} {value[:40]!r} is not an ISO 8601 time.") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(item: dict[str, Any], name: str, limit: int = MAX_ID_FIELD) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise SpanRejected("invalid_field", f"{name} must be a string.")
    if len(value) > limit:
        raise SpanRejected("field_too_long", f"{name} is longer than {limit} characters.")
    if "\x00" in value:
        raise SpanRejected("invalid_field", f"{name} contains a NUL character.")
    if not value.isascii() and LONE_SURROGATE.search(value):
        raise SpanRejected("invalid_field", f"{name} contains a lone surrogate (\\ud800-\\udfff), which is not text.")
    return value


def _count(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise SpanRejected("invalid_usage", f"{name} must be a whole number between 0 and {MAX_TOKENS}.")
    return value


def _storable(text: str) -> str:
    text = text.replace("\x00", "\ufffd")
    return text if text.isascii() else LONE_SURROGATE.sub("\ufffd", text)


def _strip_nul(value: Any) -> Any:
    """PostgreSQL's jsonb refuses \\u0000, and no lone surrogate can be sent to it as UTF-8: replace
    them (U+FFFD), so such a payload is kept, not lost."""
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    if isinstance(value, dict):
        return {_storable(str(k)): _strip_nul(v) for k, v in value.items()}
    return value


def _clean_json(value: Any, **dumps: Any) -> tuple[Any, str]:
    """`value` and its JSON text, NULs and lone surrogates replaced (_strip_nul). The text is made
    first and the value walked only when it shows one (JSON writes a NUL as the escape `\\u0000`
    and leaves a lone surrogate as it is): almost no payload has either, and the walk copied every
    dict and list of every span's input, output and attributes. A text that only looks like one
    (a backslash then `u0000`, escaped as `\\\\u0000`) takes the walk, which finds nothing."""
    try:
        text = json.dumps(value, ensure_ascii=False, **dumps)
    except (TypeError, ValueError):  # e.g. a key JSON cannot write: the walk makes keys text
        text = None
    if text is None or "\\u0000" in text or (not text.isascii() and LONE_SURROGATE.search(text)):
        value = _strip_nul(value)
        text = json.dumps(value, ensure_ascii=False, **dumps)
    return value, text


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _payload(row: SpanRow, name: str, value: Any) -> str:
    """Put `value` on the row, capped, keeping the whole of a large one aside; returns it as text
    (its length is its size)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = text = _storable(value)
    else:
        value, text = _clean_json(value, sort_keys=True)  # as_text's JSON
    if len(text) > MAX_PAYLOAD_CHARS:
        raise SpanRejected("payload_too_large", f"{name} is {len(text)} characters; the limit is {MAX_PAYLOAD_CHARS}.")
    if len(text) > INLINE_PAYLOAD_CHARS:
        setattr(row, name, text[:INLINE_PAYLOAD_CHARS])
        setattr(row, f"{name}_truncated", True)
        row.payloads[name] = value
    else:
        setattr(row, name, value)
    return text


def redacted(value: Any, redact: Callable[[str], str]) -> Any:
    """`value` with `redact` applied to every string in it (keys stay as they are)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redacted(v, redact) for v in value]
    if isinstance(value, dict):
        return {k: redacted(v, redact) for k, v in value.items()}
    return value


def parse_span(item: Any, *, now: datetime, redact: Callable[[str], str] | None = None) -> SpanRow:
    """Validate one native item into a SpanRow, or raise SpanRejected. `redact`, when given, masks
    what the span carries of its input, output, attributes and error (the tenant's setting to
    redact personal data and secrets from traces) before anything is stored or indexed."""
    if not isinstance(item, dict):
        raise SpanRejected("invalid_span", "Each span must be a JSON object.")
    generated = False
    trace_id = _text(item, "trace_id", 64).lower().replace("-", "")
    if not trace_id:
        trace_id, generated = secrets.token_hex(16), True
    if not HEX_TRACE.match(trace_id) or trace_id == "0" * 32:
        raise SpanRejected("invalid_id", "trace_id must be 32 hex digits (a W3C trace id), not all zero.")
    span_id = _text(item, "span_id", 64).lower()
    if not span_id:
        span_id, generated = secrets.token_hex(8), True
    if not HEX_SPAN.match(span_id) or span_id == "0" * 16:
        raise SpanRejected("invalid_id", "span_id must be 16 hex digits (a W3C span id), not all zero.")
    parent = _text(item, "parent_span_id", 64).lower()
    if parent and (not HEX_SPAN.match(parent) or parent == span_id):
        raise SpanRejected("invalid_id", "parent_span_id must be 16 hex digits and not the span's own id.")
    name = _text(item, "name", MAX_NAME).strip()
    if not name:
        raise SpanRejected("missing_name", "name is required.")
    kind = _text(item, "kind", 16) or "custom"
    if kind not in KINDS:
        raise SpanRejected("invalid_kind", f"kind {kind!r} is not one of {', '.join(KINDS)}.")
    started = parse_time(item.get("start_time"), "start_time")
    ended = parse_time(item.get("end_time", item.get("start_time")), "end_time")
    if ended < started:
        raise SpanRejected("invalid_time", "end_time is before start_time.")
    if started > now + FUTURE_SKEW:
        raise SpanRejected("invalid_time", "start_time is more than 24 hours in the future.")
    status = _text(item, "status", 16).lower() or "unset"
    error = item.get("error")
    if error is not None and not isinstance(error, dict):
        raise SpanRejected("invalid_field", "error must be an object {type, message, stack}.")
    if error and status == "unset":
        status = "error"
    if status not in STATUSES:
        raise SpanRejected("invalid_status", f"status {status!r} is not one of {', '.join(STATUSES)}.")
    row = SpanRow(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        kind=kind,
        name=name,
        started_at=started,
        ended_at=ended,
        status=status,
        generated_ids=generated,
    )
    if error:
        row.error_type = _text(error, "type", MAX_ID_FIELD)
        row.error_message = _text(error, "message", MAX_ERROR_CHARS)
        row.error_stack = _text(error, "stack", MAX_ERROR_CHARS)
    row.model = _text(item, "model", MAX_ID_FIELD)
    row.request_model = _text(item, "request_model", MAX_ID_FIELD)
    row.agent_name = _text(item, "agent_name", MAX_ID_FIELD)
    row.tool_name = _text(item, "tool_name", MAX_ID_FIELD)
    row.span_kind = _text(item, "span_kind", 16).lower()
    if row.span_kind not in SPAN_KINDS:
        raise SpanRejected("invalid_field", f"span_kind {row.span_kind!r} is not one of {', '.join(SPAN_KINDS[1:])}.")
    scope = item.get("scope") or {}
    if not isinstance(scope, dict):
        raise SpanRejected("invalid_field", "scope must be an object {name, version}.")
    row.scope_name = _text(scope, "name", MAX_ID_FIELD)
    row.scope_version = _text(scope, "version", 64)
    usage = item.get("usage") or {}
    if not isinstance(usage, dict):
        raise SpanRejected("invalid_usage", "usage must be an object.")
    for name_ in USAGE_FIELDS:
        setattr(row, name_, _count(usage.get(name_, item.get(name_)), name_))
    if row.cached_input_tokens > row.input_tokens:
        raise SpanRejected("invalid_usage", "cached_input_tokens cannot exceed input_tokens.")
    cost = usage.get("cost_micros", item.get("cost_micros"))
    cost_usd = usage.get("cost_usd", item.get("cost_usd"))
    if cost is not None:
        row.reported_cost_micros = _count(cost, "cost_micros")
    elif cost_usd is not None:
        if isinstance(cost_usd, bool) or not isinstance(cost_usd, int | float) or not 0 <= cost_usd < 10**6:
            raise SpanRejected("invalid_usage", "cost_usd must be a number of dollars ≥ 0.")
        row.reported_cost_micros = round(cost_usd * 1_000_000)
    attributes = item.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise SpanRejected("invalid_field", "attributes must be an object.")
    attributes_size = 2  # "{}"
    if attributes:
        # Once as JSON text: its size, and the attributes as JSON gives them back (non-JSON values as strings).
        attributes_text = _clean_json(attributes, default=str)[1]
        attributes_size = len(attributes_text)
        if attributes_size > MAX_ATTRIBUTES_CHARS:
            raise SpanRejected("attributes_too_large", f"attributes exceed {MAX_ATTRIBUTES_CHARS} characters.")
        row.attributes = json.loads(attributes_text)
    tags = item.get("tags") or []
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise SpanRejected("invalid_tags", f"tags must be a list of at most {MAX_TAGS} strings.")
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG or _storable(tag) != tag:
            raise SpanRejected("invalid_tags", f"each tag must be a string of 1 to {MAX_TAG} characters.")
    row.tags = list(dict.fromkeys(tags))
    links = item.get("links") or []
    if not isinstance(links, list) or len(links) > MAX_LINKS:
        raise SpanRejected("invalid_links", f"links must be a list of at most {MAX_LINKS} objects.")
    for link in links:
        if not isinstance(link, dict):
            raise SpanRejected("invalid_links", "each link must be an object {trace_id, span_id}.")
        lt, ls = str(link.get("trace_id", "")).lower(), str(link.get("span_id", "")).lower()
        if not HEX_TRACE.match(lt) or not HEX_SPAN.match(ls):
            raise SpanRejected("invalid_links", "a link needs a 32-hex trace_id and a 16-hex span_id.")
        row.links.append({"trace_id": lt, "span_id": ls})
    for name_ in ("end_user_id", "session_id", "agent_id"):
        setattr(row, name_, _text(item, name_))
    row.run_id = _text(item, "run_id", 64)
    row.run_context = item.get(RUN_CONTEXT) is True
    inputs, outputs = item.get("input"), item.get("output")
    if redact is not None:
        inputs, outputs = redacted(inputs, redact), redacted(outputs, redact)
        row.attributes = {
            k: v if k in UNREDACTED_ATTRIBUTES else redacted(v, redact) for k, v in row.attributes.items()
        }
        row.error_message, row.error_stack = redact(row.error_message), redact(row.error_stack)
    input_text, output_text = _payload(row, "input", inputs), _payload(row, "output", outputs)
    row.search_text = finish_search_text(row, input_text, output_text)
    row.stored_bytes = len(input_text) + len(output_text) + attributes_size
    row.stored_bytes += len(row.error_stack) + len(row.error_message) + 200
    return row


INPUT_PREVIEW_CHARS = 200


def input_preview(value: Any) -> str:
    """A line saying what a trace was asked, from its root span's input (as stored: masked when
    the tenant redacts traces): a text as it is, a chat's last user message, else the JSON; blanks
    collapsed, at most INPUT_PREVIEW_CHARS."""
    if value is None:
        return ""
    messages = value.get("messages") if isinstance(value, dict) else value
    if isinstance(messages, list):
        said = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if said and isinstance(said[-1], str):
            value = said[-1]
    text = " ".join(as_text(value).split())
    return text if len(text) <= INPUT_PREVIEW_CHARS else text[: INPUT_PREVIEW_CHARS - 1] + "…"


def finish_search_text(row: SpanRow, inputs: str | None = None, outputs: str | None = None) -> str:
    """What full-text search matches: the name, input, output and error message, capped. `inputs`
    and `outputs` are the whole input and output as text, when the caller has them already."""
    if inputs is None:
        inputs = as_text(row.payloads.get("input", row.input))
    if outputs is None:
        outputs = as_text(row.payloads.get("output", row.output))
    half = SEARCH_TEXT_CHARS // 2
    text = "\n".join(part for part in (row.name, inputs[:half], outputs[:half], row.error_message[:500]) if part)
    return text[:SEARCH_TEXT_CHARS].replace("\x00", "")
