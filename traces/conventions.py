"""Span attributes of the conventions other SDKs write, mapped onto our span fields, as one table.

Each row of RULES says: this attribute, in this convention, fills this field, read this way. For
each field the first row present wins (rows are in priority order); every attribute a row reads is
taken out of the span's attributes, so what is left is kept as given. The conventions, as their
instrumentation libraries really emit them (traces/tests/test_exporters.py runs each library through its real exporter):

    gen_ai       OpenTelemetry GenAI semantic conventions, current names
                 (opentelemetry-instrumentation-openai-v2, LiteLLM's "otel" callback)
    gen_ai_prev  the names earlier versions of those conventions used, still emitted by older SDKs
    openinference  Arize Phoenix's OpenInference (openinference-instrumentation-*)
    langfuse     the Langfuse SDK (v3 and later export OTLP, `langfuse.observation.*`)
    litellm      LiteLLM's OpenTelemetry callback (`gen_ai.cost.*`, `llm.user`)
    aoc          our own names, for clients that want to say a field exactly

Fields: kind, model (the model that answered, what is priced), request_model (the name asked
for, often a floating alias), usage (input, cached input, output, reasoning tokens), reported cost
in USD (what the client computed, kept beside ours), end user, session, agent id and name, tool,
input, output, error type. Token counts arrive as numbers or numeric strings (LiteLLM); a cached
count larger than the input count means the SDK counted input without the cache (Anthropic-style),
so input becomes input + cached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OPERATION_KINDS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "llm",
    "completion": "llm",
    "embedding": "llm",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "agent",
    "execute_tool": "tool",
    "retrieval": "retrieval",
}
OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "llm",
    "TOOL": "tool",
    "AGENT": "agent",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "GUARDRAIL": "guardrail",
    "CHAIN": "custom",
    "EVALUATOR": "custom",
}
LANGFUSE_KINDS = {
    "generation": "llm",
    "embedding": "llm",
    "agent": "agent",
    "tool": "tool",
    "retriever": "retrieval",
    "guardrail": "guardrail",
    "chain": "custom",
    "span": "custom",
    "event": "custom",
    "evaluator": "custom",
}


def _kind(table: dict[str, str]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return table.get(str(value)) or table.get(str(value).upper()) or table.get(str(value).lower())

    return convert


def _own_kind(value: Any) -> Any:
    from traces.models import KINDS

    return str(value) if str(value) in KINDS else None


def _text(value: Any) -> Any:
    if value is None or value == "":
        return None
    return str(value)


def _count(value: Any) -> Any:
    """A token count: an int, an integral float, or a numeric string (LiteLLM sends "30")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _usd(value: Any) -> Any:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _error_type(value: Any) -> Any:
    """An exception's type name. opentelemetry-instrumentation-openai-v2 writes the class's repr
    (`<class 'openai.InternalServerError'>`): read the dotted name out of it."""
    text = _text(value)
    if text and text.startswith("<class '") and text.endswith("'>"):
        return text[len("<class '") : -len("'>")] or None
    return text


def maybe_json(value: Any) -> Any:
    """Messages and payloads often arrive as JSON text in a string attribute: keep them structured."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _json_field(name: str, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One key of a JSON object held in an attribute (Langfuse's usage_details, cost_details)."""

    def read(value: Any) -> Any:
        found = maybe_json(value)
        if isinstance(found, dict) and name in found:
            return convert(found[name])
        return None

    return read


@dataclass(frozen=True)
class Rule:
    """`attribute` of `convention` fills `field`, read by `convert` (None when it cannot); the
    attribute is removed from the span's attributes unless `keep` (the operation names stay)."""

    convention: str
    attribute: str
    field: str
    convert: Callable[[Any], Any] = _text
    keep: bool = False


def _rules(convention: str, field: str, convert: Callable[[Any], Any], *attributes: str) -> list[Rule]:
    return [Rule(convention, a, field, convert) for a in attributes]


LF_USAGE = "langfuse.observation.usage_details"
LF_COST = "langfuse.observation.cost_details"

RULES: list[Rule] = [
    # kind
    Rule("aoc", "aoc.span.kind", "kind", _own_kind),
    Rule("openinference", "openinference.span.kind", "kind", _kind(OPENINFERENCE_KINDS), keep=True),
    Rule("langfuse", "langfuse.observation.type", "kind", _kind(LANGFUSE_KINDS), keep=True),
    Rule("gen_ai", "gen_ai.operation.name", "kind", _kind(OPERATION_KINDS), keep=True),
    Rule("litellm", "llm.request.type", "kind", _kind(OPERATION_KINDS), keep=True),
    # models: the one that answered (priced), and the one asked for
    *_rules("gen_ai", "model", _text, "gen_ai.response.model"),
    *_rules("openinference", "model", _text, "llm.model_name"),
    *_rules("langfuse", "model", _text, "langfuse.observation.model.name"),
    *_rules("gen_ai", "request_model", _text, "gen_ai.request.model"),
    Rule("openinference", "llm.invocation_parameters", "request_model", _json_field("model", _text), keep=True),
    # tokens
    *_rules("gen_ai", "input_tokens", _count, "gen_ai.usage.input_tokens"),
    *_rules("gen_ai_prev", "input_tokens", _count, "gen_ai.usage.prompt_tokens"),
    *_rules("openinference", "input_tokens", _count, "llm.token_count.prompt"),
    *_rules("gen_ai", "output_tokens", _count, "gen_ai.usage.output_tokens"),
    *_rules("gen_ai_prev", "output_tokens", _count, "gen_ai.usage.completion_tokens"),
    *_rules("openinference", "output_tokens", _count, "llm.token_count.completion"),
    *_rules("gen_ai", "cached_input_tokens", _count, "gen_ai.usage.cache_read.input_tokens"),
    *_rules("gen_ai_prev", "cached_input_tokens", _count, "gen_ai.usage.cached_input_tokens"),
    *_rules("gen_ai_prev", "cached_input_tokens", _count, "gen_ai.usage.input_tokens.cached"),
    *_rules("openinference", "cached_input_tokens", _count, "llm.token_count.prompt_details.cache_read"),
    *_rules("gen_ai", "reasoning_tokens", _count, "gen_ai.usage.reasoning.output_tokens"),
    *_rules("gen_ai_prev", "reasoning_tokens", _count, "gen_ai.usage.reasoning_tokens"),
    *_rules("gen_ai_prev", "reasoning_tokens", _count, "gen_ai.usage.output_tokens.reasoning"),
    *_rules("openinference", "reasoning_tokens", _count, "llm.token_count.completion_details.reasoning"),
    Rule("langfuse", LF_USAGE, "input_tokens", _json_field("input", _count)),
    Rule("langfuse", LF_USAGE, "input_tokens", _json_field("prompt_tokens", _count)),
    Rule("langfuse", LF_USAGE, "input_tokens", _json_field("input_tokens", _count)),
    Rule("langfuse", LF_USAGE, "output_tokens", _json_field("output", _count)),
    Rule("langfuse", LF_USAGE, "output_tokens", _json_field("completion_tokens", _count)),
    Rule("langfuse", LF_USAGE, "output_tokens", _json_field("output_tokens", _count)),
    Rule("langfuse", LF_USAGE, "cached_input_tokens", _json_field("cache_read_input_tokens", _count)),
    Rule("langfuse", LF_USAGE, "cached_input_tokens", _json_field("input_cached_tokens", _count)),
    Rule("langfuse", LF_USAGE, "cached_input_tokens", _json_field("input_cache_read", _count)),
    Rule("langfuse", LF_USAGE, "reasoning_tokens", _json_field("output_reasoning_tokens", _count)),
    Rule("langfuse", LF_USAGE, "reasoning_tokens", _json_field("reasoning_tokens", _count)),
    # cost the client computed, in USD
    Rule("aoc", "aoc.cost_usd", "cost_usd", _usd),
    Rule("litellm", "gen_ai.cost.total_cost", "cost_usd", _usd),
    Rule("gen_ai", "gen_ai.usage.cost", "cost_usd", _usd),
    Rule("openinference", "llm.cost.total", "cost_usd", _usd),
    Rule("langfuse", LF_COST, "cost_usd", _json_field("total", _usd)),
    # who and where
    *_rules("gen_ai", "end_user_id", _text, "enduser.id"),
    *_rules("openinference", "end_user_id", _text, "user.id"),  # Langfuse writes it too
    *_rules("litellm", "end_user_id", _text, "llm.user"),
    *_rules("gen_ai", "session_id", _text, "gen_ai.conversation.id"),
    *_rules("openinference", "session_id", _text, "session.id"),  # Langfuse writes it too
    *_rules("gen_ai", "agent_id", _text, "gen_ai.agent.id"),
    *_rules("gen_ai", "agent_name", _text, "gen_ai.agent.name"),
    *_rules("openinference", "agent_name", _text, "agent.name"),
    *_rules("gen_ai", "tool_name", _text, "gen_ai.tool.name"),
    *_rules("openinference", "tool_name", _text, "tool.name"),
    # content
    *_rules("gen_ai", "input", maybe_json, "gen_ai.input.messages", "gen_ai.tool.call.arguments"),
    *_rules("gen_ai_prev", "input", maybe_json, "gen_ai.prompt"),
    *_rules("openinference", "input", maybe_json, "input.value"),
    *_rules("langfuse", "input", maybe_json, "langfuse.observation.input"),
    *_rules("gen_ai", "output", maybe_json, "gen_ai.output.messages", "gen_ai.tool.call.result"),
    *_rules("gen_ai_prev", "output", maybe_json, "gen_ai.completion"),
    *_rules("openinference", "output", maybe_json, "output.value"),
    *_rules("langfuse", "output", maybe_json, "langfuse.observation.output"),
    # errors
    *_rules("gen_ai", "error_type", _error_type, "error.type"),
    Rule("langfuse", "langfuse.observation.level", "level", _text),
    Rule("langfuse", "langfuse.observation.status_message", "status_message", _text),
]

# OpenInference flattens messages: llm.input_messages.<i>.message.<role|content|…>. Read as lists
# when no whole input.value / output.value was given.
FLATTENED_MESSAGES = {"input": "llm.input_messages.", "output": "llm.output_messages."}

USAGE_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


def _unflatten(attributes: dict[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    found: dict[int, dict[str, Any]] = {}
    for key in [k for k in attributes if k.startswith(prefix)]:
        index, _, rest = key[len(prefix) :].partition(".")
        if not index.isdigit() or not rest:
            continue
        message = found.setdefault(int(index), {})
        message[rest.removeprefix("message.")] = attributes.pop(key)
    return [found[i] for i in sorted(found)] if found else None


def apply(attributes: dict[str, Any]) -> dict[str, Any]:
    """Read the mapped fields out of `attributes` (which loses the attributes read): a dict with
    any of the fields named in RULES, `usage` gathered, and `conventions` naming those seen."""
    found: dict[str, Any] = {}
    seen: set[str] = set()
    for rule in RULES:
        if rule.attribute not in attributes:
            continue
        value = rule.convert(attributes[rule.attribute])
        if value is not None and rule.field not in found:
            found[rule.field] = value
            seen.add(rule.convention)
    for rule in RULES:
        if not rule.keep:
            attributes.pop(rule.attribute, None)
    for field_, prefix in FLATTENED_MESSAGES.items():
        messages = _unflatten(attributes, prefix)
        if messages is not None and field_ not in found:
            found[field_] = messages
            seen.add("openinference")
    usage = {name: found.pop(name) for name in USAGE_FIELDS if name in found}
    if usage.get("cached_input_tokens", 0) > usage.get("input_tokens", 0):
        usage["input_tokens"] = usage.get("input_tokens", 0) + usage["cached_input_tokens"]
    if "cost_usd" in found:
        usage["cost_usd"] = found.pop("cost_usd")
    if usage:
        found["usage"] = usage
    if not found.get("agent_id") and found.get("agent_name"):
        found["agent_id"] = found["agent_name"]
    if not found.get("model") and found.get("request_model"):
        found["model"] = found["request_model"]
    found["conventions"] = sorted(seen)
    return found
