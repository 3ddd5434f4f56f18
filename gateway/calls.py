"""The synchronous half of a gateway request: `admit` runs in the event loop's thread pool
before the provider is called; `conclude` runs after, in memory, and hands what the console keeps
to the recorder (gateway.recorder), which writes it off the client's path.

    admit(headers, body)   key (401/403) → rate limit (429) → who: agent, end user, session, tags,
                           traceparent → the exact pinned model (404/403) → input guardrails on the
                           messages the client added since the model last spoke, tool results
                           checked for indirect injection (400 guardrail_blocked, or the redacted
                           text forwarded) → the worst case reserved with every budget (402), the
                           hold kept past its TTL while the call runs (gateway.keeper)
    conclude(call, result) the cost and the tightest budget's remainder, for the client's headers;
                           then, by the recorder: the output verdict recorded → settle at the
                           provider's usage (or release) → the gateway span and the model span,
                           with the budget decision and the guardrail verdicts under it in the
                           same trace, written in one ingest → the request-log row

The key, pin, rules and settings come from the configuration cache (tenants.cache), so an
admission costs one Redis GET for the cache's version, one pipelined round trip for the rate
limit and one SQL statement for the reservation. Every refusal after the reservation releases it.
Nothing here touches the network: the caller relays the request to the provider
(gateway.upstream) between the two.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection

from agents import hooks, pipeline
from agents.hooks import CallContext, Span
from agents.pipeline import Admission, CallRefusedError
from budgets.services import Ending
from catalog.clients import ChatRequest, ProviderError, ToolCall, ToolSpec, Usage
from catalog.clients.base import estimate_request_tokens, estimate_usage
from catalog.clients.openai_compatible import messages_from_openai
from catalog.clients.transport import check_provider_url
from catalog.selectors import provider_config
from gateway import keeper, recorder
from gateway.api import gateway_key
from gateway.errors import GatewayError, invalid
from tenants import cache as config_cache
from tenants.authentication import known_key
from tenants.net import UnresolvableHostError, UnsafeUrlError, pinned
from tenants.throttling import Window, key_throttle_wait, key_window
from traces.context import current_span, parse_traceparent
from traces.services import SpanBatch, collecting

if TYPE_CHECKING:
    from agents.models import Agent
    from catalog.clients import ProviderConfig
    from catalog.models import LanguageModel
    from gateway.models import GatewayRequest
    from guardrails.feedback import FeedbackSet
    from tenants.models import ApiKey, Tenant

logger = logging.getLogger(__name__)

# The call the current request admitted (asgiref carries it back from the admission's thread), so
# the router can still conclude it when an endpoint fails unexpectedly (gateway.asgi).
current_call: contextvars.ContextVar[Call | None] = contextvars.ContextVar("gateway_call", default=None)

MAX_TAGS = 20
TAG = re.compile(r"^[\w.:/@+-]{1,64}$")
ID_HEADER = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces: ids, not prose


@dataclass
class Call:
    """One admitted gateway request: who it is for, what it may call, what it holds."""

    key: ApiKey
    context: CallContext
    alias: str
    model: LanguageModel
    config: ProviderConfig
    request: ChatRequest  # neutral: estimates, and the providers that are not OpenAI-compatible
    body: dict[str, Any]  # what an OpenAI-compatible provider is sent (the client's, model swapped)
    admission: Admission
    span: Span  # the gateway span: the root of this call in the trace (or a child of traceparent)
    endpoint: str
    stream: bool = False
    include_usage: bool = False  # the client asked for the usage chunk of a stream
    request_id: str = field(default_factory=lambda: "req_" + secrets.token_hex(12))
    url: str = ""  # the provider URL to POST to (pinned to the address the SSRF guard approved)
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    output_rules: list[dict[str, Any]] = field(default_factory=list)
    output_feedback: FeedbackSet | None = None  # the tenant's reviewer feedback, read with the rules
    guarded: list[str] = field(default_factory=list)  # what input guardrails did (redacted, …)
    started: float = field(default_factory=time.perf_counter)
    span_input: Any = None  # what the spans show as the call's input, when not chat messages
    # Every span of the call (guardrail verdicts, the model span, the gateway span), written in
    # one ingest when the call ends (traces.services.collecting).
    spans: SpanBatch | None = None
    concluded: bool = False

    def recording(self) -> contextlib.AbstractContextManager[Any]:
        """Spans recorded in the block go to the call's batch."""
        if self.spans is None:
            self.spans = SpanBatch(self.context.tenant)
        return collecting(self.spans)

    @property
    def passthrough(self) -> bool:
        """The provider speaks Chat Completions: the client's body goes through (model swapped)."""
        return self.config.kind == "openai_compatible"


@dataclass
class Result:
    """What the provider answered, in neutral terms, for `conclude`."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    model_id: str = ""
    finish_reason: str = ""
    error: ProviderError | GatewayError | None = None
    # Output guardrails already applied in memory (a stream): the verdict to record, not re-apply.
    output: Any = None  # what the spans show as the output, when not an assistant message
    original_content: str = ""  # what the provider said, when an output guardrail changed it
    disconnected: bool = False
    status: int = 200


@dataclass(frozen=True)
class Conclusion:
    """What `conclude` tells the client: the cost and the tightest budget's remainder."""

    cost_micros: int
    budget_remaining: str | None


# --- admit ---------------------------------------------------------------------------------------


# The rate-limit count an admission's snapshot sent with the configuration version's read, for
# `_identify` to decide once the key is authenticated: (the key it was counted for, the count, the
# count's results).
_counted: contextvars.ContextVar[tuple[ApiKey, Window, list[Any]] | None] = contextvars.ContextVar(
    "gateway_counted", default=None
)


@contextlib.contextmanager
def snapshot(headers: dict[str, str]) -> Iterator[None]:
    """An admission's configuration snapshot (tenants.cache.snapshot). When this process already
    knows the request's key and the request carries its secret (every call after a key's first),
    the key's rate-limit count (tenants.throttling) is sent in the same Redis round trip as the
    version's read: one round trip where there were two. Nothing is decided on that guess: the key
    is authenticated at the snapshot's version as always, and `_identify` reads the count only for
    the key it authenticated; a count nobody read (the key revoked meanwhile, a refusal before the
    rate limit) is taken back when the block ends."""
    parts = headers.get("authorization", "").split()
    guess = known_key(parts[1]) if len(parts) == 2 and parts[0].lower() == "bearer" else None
    window = key_window(guess) if guess is not None else None
    with config_cache.snapshot(along=window.queue if window is not None else None) as results:
        sent = window is not None and len(results) == 3
        token = _counted.set((guess, window, results) if sent and guess is not None and window is not None else None)
        try:
            yield
        finally:
            _counted.reset(token)
            if sent and window is not None:
                window.undo()  # nothing when _identify decided it


def _rate_limit_wait(key: ApiKey) -> float | None:
    """The seconds `key` must wait (its rate limit used up) or None: from the count the snapshot
    sent, when it was sent for this key, else counted now."""
    counted = _counted.get()
    if counted is not None and counted[0].pk == key.pk and not counted[1].decided:
        return counted[1].verdict(counted[2])
    return key_throttle_wait(key)


def identify(headers: dict[str, str], body: Any, endpoint: str = "") -> tuple[ApiKey, CallContext, str, LanguageModel]:
    """The key (401/403), its rate limit (429), who the call is for, and the exact model its
    `model` names (404 for an unknown alias, 403 for a model that may not be called). A refusal
    once the key is known is written to the tenant's request log (without a trace: no call was
    opened); a bad key has no tenant to log it under."""
    key = gateway_key(headers.get("authorization", ""))
    try:
        return _identify(key, headers, body)
    except GatewayError as refused:
        _log_unopened(key, headers, body, endpoint, refused)
        raise


def _identify(key: ApiKey, headers: dict[str, str], body: Any) -> tuple[ApiKey, CallContext, str, LanguageModel]:
    wait = _rate_limit_wait(key)
    if wait is not None:
        raise GatewayError(
            429,
            "rate_limited",
            f"This API key's rate limit is used up; retry in {wait:.0f} s.",
            retry_after=wait,
            retry=True,
        )
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    alias = body.get("model")
    if not isinstance(alias, str) or not alias:
        raise invalid("`model` is required: one of the aliases GET /v1/models lists.", param="model")
    tenant = key.tenant
    context = _context(tenant, key, headers, body)
    try:
        model = pipeline.resolve_model(tenant=tenant, alias=alias, allow_exact=True)
    except CallRefusedError as exc:
        status = 404 if exc.code == "pin_not_found" else 403
        code = "model_not_found" if exc.code == "pin_not_found" else exc.code
        raise GatewayError(
            status, code, exc.message, param="model", extra={"aliases": exc.details.get("aliases", [])}
        ) from None
    return key, context, alias, model


def open_call(
    headers: dict[str, str],
    body: dict[str, Any],
    endpoint: str,
    *,
    operation: str,
    request: ChatRequest | None = None,
    stream: bool = False,
    identified: tuple[ApiKey, CallContext, str, LanguageModel] | None = None,
) -> Call:
    """A Call with its gateway span open (guardrail and budget spans hang under it)."""
    key, context, alias, model = identified or identify(headers, body, endpoint)
    span = Span(
        trace_id=context.trace_id,
        kind="gateway",
        name=f"{endpoint} {alias}",
        parent_id=context.parent_span_id,
        attributes={
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": alias,
            "gateway.endpoint": endpoint,
            "gateway.stream": stream,
            "gateway.key": key.prefix,
        },
    )
    context.parent_span_id = span.span_id
    current_span.set((context.trace_id, span.span_id))
    return Call(
        key=key,
        context=context,
        alias=alias,
        model=model,
        config=provider_config(model.provider),
        request=request or ChatRequest(model_id=model.model_id, messages=[]),
        body=dict(body),
        admission=Admission(),
        span=span,
        endpoint=endpoint,
        stream=stream,
    )


def hold(call: Call, worst: ChatRequest, *, output_rules: bool = True) -> None:
    """Reserve `worst` with every budget (402 naming the refusing one), then load the output rules."""
    call.admission = pipeline.reserve(call=call.context, model=call.model, request=worst)
    if (refusal := call.admission.refusal) is not None:
        over = GatewayError(
            402,
            "budget_exceeded",
            refusal.message or "A budget refused the call.",
            extra={"budget": refusal.details} if refusal.details else {},
        )
        _refused(call, over)
        raise over
    keeper.track(call)  # held past the TTL while the call runs, until its settlement is written
    current_call.set(call)
    if output_rules:
        from guardrails.services import effective_rules, feedback_set

        rules = effective_rules(tenant=call.context.tenant, agent_id=call.context.agent_id)
        call.output_rules = [rule for rule in rules if rule.get("stage") == "output"]
        if call.output_rules:
            call.output_feedback = feedback_set(tenant=call.context.tenant)


# A connection that answered an admission this recently is used without Django's health check
# (a `SELECT 1` round trip before every admission otherwise). If it died meanwhile, the admission
# fails with a DatabaseError, answered 503 (retryable, nothing held), and the connection is closed.
HEALTHY_FOR_SECONDS = 5.0
_healthy = threading.local()


def _admitting[T](fn: Callable[..., T], *args: Any) -> T:
    close_old_connections()
    if connection.connection is not None and time.monotonic() - getattr(_healthy, "at", -1e9) < HEALTHY_FOR_SECONDS:
        connection.health_check_done = True  # type: ignore[attr-defined]  # Django's, on every backend
    try:
        result = fn(*args)
        _healthy.at = time.monotonic()
        return result
    finally:
        close_old_connections()


async def admitting[T](fn: Callable[..., T], *args: Any) -> T:
    """Run an admission (`admit`, `admit_embeddings`, …) in the loop's shared thread pool, on that
    thread's connection, closed afterwards if it failed or grew too old."""
    return await sync_to_async(_admitting, thread_sensitive=False)(fn, *args)


def admit(headers: dict[str, str], body: Any, endpoint: str) -> Call:
    """Authenticate, identify, resolve, guard and reserve a Chat Completions request, or raise a
    GatewayError the client receives (nothing is held when it does)."""
    with snapshot(headers):
        return _admit(headers, body, endpoint)


def _admit(headers: dict[str, str], body: Any, endpoint: str) -> Call:
    identified = identify(headers, body, endpoint)
    model = identified[3]
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid("`stream_options` must be an object.", param="stream_options")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise invalid("`messages` must be a non-empty array of message objects.", param="messages")
    choices = body.get("n", 1)
    if choices is None:
        choices = 1
    if not isinstance(choices, int) or isinstance(choices, bool) or not 1 <= choices <= 16:
        raise invalid("`n` must be an integer from 1 to 16.", param="n")
    try:
        neutral = messages_from_openai(messages)
    except ValueError as exc:
        raise invalid(f"`messages` could not be read: {exc}", param="messages") from None
    tools = _tools(body.get("tools"))
    bound = _output_bound(body, model)
    request = ChatRequest(model_id=model.model_id, messages=neutral, tools=tools, max_output_tokens=bound)
    bound = _fit_cap(identified, body, request, bound)
    request = replace(request, max_output_tokens=bound)
    call = open_call(headers, body, endpoint, operation="chat", request=request, stream=stream, identified=identified)
    call.include_usage = bool(stream and options and options.get("include_usage") is True)
    call.span.attributes["gen_ai.request.max_tokens"] = bound
    with call.recording():
        try:
            _guard_input(call, messages)
            _prepare_upstream(call, bound)
        except GatewayError as refused:
            _refused(call, refused)
            raise
        # The worst case: every choice may use the whole output bound.
        hold(call, replace(call.request, max_output_tokens=bound * choices))
    return call


MAX_EMBEDDING_INPUTS = 2048


def admit_embeddings(headers: dict[str, str], body: Any, endpoint: str) -> Call:
    """An embeddings request: input guardrails on each text, and its worst case reserved at the
    input price. A text's tokens are never more than its UTF-8 bytes (a token covers at least one
    byte), so that is the hold; token ids are counted as they are."""
    with snapshot(headers):
        return _admit_embeddings(headers, body, endpoint)


def _admit_embeddings(headers: dict[str, str], body: Any, endpoint: str) -> Call:
    identified = identify(headers, body, endpoint)
    model = identified[3]
    raw = body.get("input")
    texts: list[str] = []
    tokens = 0
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        texts = list(raw)
    elif isinstance(raw, list) and raw and all(isinstance(item, int) and not isinstance(item, bool) for item in raw):
        tokens = len(raw)
    elif (
        isinstance(raw, list)
        and raw
        and all(isinstance(item, list) and item and all(isinstance(t, int) for t in item) for item in raw)
    ):
        tokens = sum(len(item) for item in raw)
    else:
        raise invalid(
            "`input` must be a string, an array of strings, or token ids (an array of integers or of arrays).",
            param="input",
        )
    if len(texts) > MAX_EMBEDDING_INPUTS or (isinstance(raw, list) and len(raw) > MAX_EMBEDDING_INPUTS):
        raise invalid(f"`input` holds at most {MAX_EMBEDDING_INPUTS} items.", param="input")
    if not call_kind_embeds(model):
        raise invalid(
            f"The provider of {identified[2]!r} cannot make embeddings through the gateway "
            "(an OpenAI-compatible provider can).",
            param="model",
        )
    call = open_call(headers, body, endpoint, operation="embeddings", identified=identified)
    call.span_input = {"inputs": len(texts) or len(raw), "preview": texts[0][:200] if texts else None}
    with call.recording():
        _guard_embeddings(call, texts, raw, tokens)
    return call


def _guard_embeddings(call: Call, texts: list[str], raw: Any, tokens: int) -> None:
    model = call.model
    try:
        for index, text in enumerate(texts):
            verdict = hooks.check_input(call=call.context, text=text)
            if verdict.action in ("block", "require_approval"):
                raise GatewayError(
                    400,
                    "guardrail_blocked",
                    f"A guardrail blocked input[{index}]: {verdict.reason or 'refused by policy'}.",
                    param=f"input[{index}]",
                )
            if verdict.action == "redact" and isinstance(verdict.redacted, str):
                texts[index] = verdict.redacted
                call.guarded.append(f"input[{index}] redacted: {verdict.reason}")
        if call.guarded:
            call.body["input"] = texts if isinstance(raw, list) else texts[0]
        call.body["model"] = model.model_id
        _upstream_address(call, "/embeddings")
    except GatewayError as refused:
        _refused(call, refused)
        raise
    worst_tokens = tokens + sum(len(text.encode()) for text in texts)
    worst = ChatRequest(
        model_id=model.model_id, messages=[{"role": "user", "content": " " * (4 * worst_tokens)}], max_output_tokens=0
    )
    hold(call, worst, output_rules=False)
    call.request = ChatRequest(model_id=model.model_id, messages=[], max_output_tokens=0)


def call_kind_embeds(model: LanguageModel) -> bool:
    return str(model.provider.kind) == "openai_compatible"


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(f"`{name}` must be true or false.", param=name)
    return value


def _header_id(headers: dict[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if value and not ID_HEADER.match(value):
        raise invalid(f"The {name} header must be 1 to 200 printable characters without spaces.")
    return value


def _context(tenant: Tenant, key: ApiKey, headers: dict[str, str], body: dict[str, Any]) -> CallContext:
    """Who the call is for: agent (X-AOC-Agent: its id or name), end user (X-AOC-End-User, else
    the body's `user`), session (X-AOC-Session), tags (X-AOC-Tags, comma-separated), and the
    client's trace (traceparent) the call's spans join. An agent or end user the key is bound to
    (gateway.models.KeyBinding) wins over the request's."""
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise invalid("`user` must be a string.", param="user")
    end_user = _header_id(headers, "x-aoc-end-user") or (user or "")[:200]
    session = _header_id(headers, "x-aoc-session")
    tags = [tag.strip() for tag in headers.get("x-aoc-tags", "").split(",") if tag.strip()]
    if len(tags) > MAX_TAGS or any(not TAG.match(tag) for tag in tags):
        raise invalid(
            f"X-AOC-Tags: at most {MAX_TAGS} comma-separated tags of letters, digits and ._:/@+- (64 characters each)."
        )
    agent = _agent(tenant, headers.get("x-aoc-agent", "").strip())
    # What the key itself is bound to wins over what the request says (gateway.services).
    from gateway.services import binding_of

    if (binding := binding_of(key)) is not None:
        if binding.agent is not None:
            if binding.agent.archived:
                raise GatewayError(
                    403,
                    "agent_archived",
                    f"This API key is bound to the agent {binding.agent.name}, which is archived.",
                )
            agent = binding.agent
        end_user = binding.end_user_id or end_user
    trace_id, parent = secrets.token_hex(16), ""
    if raw := headers.get("traceparent"):
        joined = parse_traceparent(raw)
        if joined is None:
            raise invalid("The traceparent header is not a W3C trace context (00-<32 hex>-<16 hex>-<2 hex>).")
        trace_id, parent = joined
    return CallContext(
        tenant=tenant,
        trace_id=trace_id,
        api_key=key,
        agent=agent,
        agent_version=agent.current_version if agent is not None else None,
        end_user_id=end_user,
        session_id=session,
        run=None,
        source="gateway",
        parent_span_id=parent,
        metadata={"tags": tags},
    )


def _agent(tenant: Tenant, named: str) -> Agent | None:
    """The catalog agent X-AOC-Agent names (its id or its name), or None when none is named. From
    the configuration cache (tenants.cache), else one or two queries."""
    if not named:
        return None
    found = config_cache.cached("gateway_agent", (tenant.pk, named), lambda: _find_agent(tenant, named))
    if found is None:
        raise invalid(f"X-AOC-Agent: no agent {named!r} in {tenant.name} (send an agent's id or name).")
    return found


def _find_agent(tenant: Tenant, named: str) -> Agent | None:
    from agents.models import Agent

    agents = Agent.objects.for_tenant(tenant).filter(archived=False).select_related("current_version")
    found = None
    try:
        import uuid

        found = agents.filter(pk=uuid.UUID(named)).first()
    except ValueError:
        pass
    return found or agents.filter(name=named).first()


def _tools(raw: Any) -> list[ToolSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid("`tools` must be an array.", param="tools")
    specs = []
    for index, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(f"tools[{index}] must be {{'type': 'function', 'function': {{'name': …}}}}.", param="tools")
        parameters = function.get("parameters")
        specs.append(
            ToolSpec(
                name=function["name"],
                description=str(function.get("description") or ""),
                parameters=parameters if isinstance(parameters, dict) else {},
            )
        )
    return specs


def _output_bound(body: dict[str, Any], model: LanguageModel) -> int:
    """The output tokens the call may produce: the client's max_completion_tokens or max_tokens,
    never more than the model's own limit; the model's limit when the client set none."""
    asked = None
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise invalid(f"`{name}` must be a positive integer.", param=name)
        asked = value if asked is None else min(asked, value)
    return min(asked, model.max_output_tokens) if asked is not None else model.max_output_tokens


def _fit_cap(
    identified: tuple[ApiKey, CallContext, str, LanguageModel], body: dict[str, Any], request: ChatRequest, bound: int
) -> int:
    """The output bound, lowered to fit the per-request token cap of the agent the call is for
    and of the key (input + output), when the client set none itself: the gateway chose the bound,
    so it chooses one the caps admit, as the run engine does. A bound the client set is kept, and
    a cap it exceeds refuses the call (402) saying so."""
    if body.get("max_tokens") is not None or body.get("max_completion_tokens") is not None:
        return bound
    key, context = identified[0], identified[1]
    caps = [key.max_tokens_per_request]
    if context.agent_version is not None:
        caps.append(context.agent_version.max_tokens_per_request)
    cap = min((c for c in caps if c), default=None)
    if cap is None:
        return bound
    return max(1, min(bound, cap - estimate_request_tokens(request)))


def _guard_input(call: Call, messages: list[Any]) -> None:
    """Input guardrails on what the client added since the model last spoke: text from the user
    or system, and tool results (checked for indirect injection). A block refuses the request; a
    redaction replaces the text forwarded (in the body relayed and in the neutral request)."""
    last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    names = {
        c.get("id"): (c.get("function") or {}).get("name", "")
        for m in messages
        if m.get("role") == "assistant"
        for c in (m.get("tool_calls") or [])
        if isinstance(c, dict)
    }
    changed = False
    relayed = list(messages)
    neutral = list(call.request.messages)
    for index in range(last_assistant + 1, len(messages)):
        message = messages[index]
        role = message.get("role")
        content = message.get("content")
        if role == "tool":
            verdict = hooks.check_tool_result(
                call=call.context,
                tool=_catalog_tool(call, names.get(message.get("tool_call_id"))),
                result=_as_text(content),
            )
            stage = "tool result"
        elif role in ("user", "system", "developer"):
            if not _as_text(content):
                continue
            verdict = hooks.check_input(call=call.context, text=_as_text(content))
            stage = "input"
        else:
            continue
        if verdict.action in ("block", "require_approval"):
            raise GatewayError(
                400,
                "guardrail_blocked",
                f"A guardrail blocked the {stage} in messages[{index}]: {verdict.reason or 'refused by policy'}.",
                param=f"messages[{index}]",
            )
        if verdict.action == "redact":
            text = verdict.redacted if isinstance(verdict.redacted, str) else json.dumps(verdict.redacted)
            relayed[index] = {**message, "content": text}
            neutral[index] = {**neutral[index], "content": text}
            call.guarded.append(f"messages[{index}] redacted: {verdict.reason}")
            changed = True
    if changed:
        call.body["messages"] = relayed
        call.request = replace(call.request, messages=neutral)


def _catalog_tool(call: Call, name: str | None) -> Any:
    """The catalog tool a tool result came from, when the agent (or tenant) declares one by that name."""
    from agents.models import Tool

    if not name:
        return None
    tenant = call.context.tenant
    return config_cache.cached(
        "gateway_tool", (tenant.pk, name), lambda: Tool.objects.for_tenant(tenant).filter(name=name).first()
    )


def _as_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return json.dumps(content, ensure_ascii=False)


def _prepare_upstream(call: Call, bound: int) -> None:
    """The body and address an OpenAI-compatible provider is sent: the client's body with the
    exact model, an output bound always set (the reservation's worst case must hold), usage
    always asked for in a stream, and the provider URL checked against the SSRF guard."""
    if not call.passthrough:
        return
    body = call.body
    body["model"] = call.model.model_id
    name = (
        "max_completion_tokens"
        if "max_completion_tokens" in body or call.model.provider.hosted_vendor == "openai"
        else "max_tokens"
    )
    body.pop("max_tokens" if name == "max_completion_tokens" else "max_completion_tokens", None)
    body[name] = bound
    if call.stream:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    _upstream_address(call, "/chat/completions")


def _upstream_address(call: Call, path: str) -> None:
    """The provider URL for `path` (pinned to the address the SSRF guard approved) and its headers."""
    url = call.config.base_url.rstrip("/") + path
    headers = {"content-type": "application/json"}
    if call.config.api_key:
        headers["authorization"] = f"Bearer {call.config.api_key}"
    if call.config.check_address:
        try:
            address = check_provider_url(url)[0]
        except (UnsafeUrlError, UnresolvableHostError) as exc:
            raise GatewayError(
                502, "provider_unreachable", f"The provider {call.model.provider.name} may not be called: {exc}"
            ) from None
        url, call.extensions = pinned(url, address, headers)
    call.url, call.headers = url, headers


def _refused(call: Call, error: GatewayError) -> None:
    """Record a request refused before the provider was called as its gateway span."""
    call.span.status = "error"
    call.span.attributes.update(
        {"error.type": error.code, "error.message": error.message, "http.status_code": error.status}
    )
    _budget_attributes(call)
    call.span.ended_at = time.time()
    with call.recording():
        hooks.record_span(call=call.context, span=call.span)
    if call.spans is not None:
        call.spans.write()
    _log(call, status=error.status, error_code=error.code, usage=None, cost=0)


# --- conclude ------------------------------------------------------------------------------------


def conclude(call: Call, result: Result) -> Conclusion:
    """What the client is told about a call the provider answered, failed or was refused on (its
    cost, the tightest budget's remainder), computed in memory from the provider's usage and the
    admission's figures; what the console keeps (settlement, the output verdict, the spans, the
    request log) is handed to the process's recorder (gateway.recorder), which writes it off the
    client's path. Until then the call's worst case stays held, so a budget is never overspent
    meanwhile, only held a few milliseconds longer."""
    call.concluded = True
    usage = _usage_of(call, result)
    cost = _cost(call.model, usage)
    latency_ms = round((time.perf_counter() - call.started) * 1000, 1)
    endings = _endings(call, usage)
    recorder.submit(lambda: _record(call, result, usage, latency_ms), tenant_id=call.context.tenant.pk, endings=endings)
    return Conclusion(cost_micros=cost, budget_remaining=_remaining(call, usage, cost))


def _endings(call: Call, usage: Usage | None) -> list[Ending]:
    """The reservations `_record` will end, with the figures the budget hook ends them with
    (budgets.hooks: settled at `usage`, released without one), for the recorder to end them
    together with those of the other calls it writes."""
    ids = [d.reservation_id for d in call.admission.reservations if d.reservation_id]
    if usage is None:
        return [Ending(UUID(pk), "release") for pk in ids]
    return [
        Ending(
            UUID(pk),
            "settle",
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=min(usage.cached_input_tokens, usage.input_tokens),
            estimated=usage.estimated,
        )
        for pk in ids
    ]


def _usage_of(call: Call, result: Result) -> Usage | None:
    usage = result.usage
    if usage is None and (result.error is None or result.content or result.tool_calls):
        # No usage reported: estimated from what was produced (a stream cut short, a provider
        # that reports none). A call that failed before producing anything costs nothing.
        usage = estimate_usage(call.request, result.content, result.tool_calls)
    return usage


def _cost(model: LanguageModel, usage: Usage | None) -> int:
    """What agents.pipeline.settle will settle the call at."""
    if usage is None:
        return 0
    return model.cost_micros(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
    )


def _record(call: Call, result: Result, usage: Usage | None, latency_ms: float) -> recorder.Written:
    """The console's record of a concluded call, in the recorder's transaction: the output verdict
    and the settlement now; the call's spans and its request-log row handed back, for the recorder
    to write with those of the other calls of its batch (one ingest, one INSERT)."""
    try:
        with config_cache.snapshot(), call.recording():
            cost = _settle_and_trace(call, result, usage)
    finally:
        keeper.done(call)
    code = ""
    if result.error is not None:
        code = result.error.type if isinstance(result.error, ProviderError) else result.error.code
    elif result.disconnected:
        code = "client_disconnected"
    row = _log_row(call, status=result.status, error_code=code, usage=usage, cost=cost, latency_ms=latency_ms)
    return recorder.Written(spans=call.spans, rows=[row])


def _settle_and_trace(call: Call, result: Result, usage: Usage | None) -> int:
    current_span.set((call.context.trace_id, call.span.span_id))
    if call.output_rules and (result.original_content or result.content):
        hooks.check_output(call=call.context, text=result.original_content or result.content)
    model_span = Span(
        trace_id=call.context.trace_id,
        kind="model",
        name=call.model.model_id,
        parent_id=call.span.span_id,
        started_at=call.span.started_at,
        attributes={
            "gen_ai.request.model": call.alias,
            "gen_ai.response.model": result.model_id or call.model.model_id,
        },
    )
    model_span.input = (
        call.span_input
        if call.span_input is not None
        else {"messages": call.request.messages, "tools": [spec.name for spec in call.request.tools]}
    )
    if result.error is not None:
        model_span.status = "error"
        kind = result.error.type if isinstance(result.error, ProviderError) else result.error.code
        model_span.attributes.update({"error.type": kind, "error.message": result.error.message})
    elif result.output is not None:
        model_span.output = result.output
    else:
        message: dict[str, Any] = {"role": "assistant", "content": result.content}
        if result.tool_calls:
            message["tool_calls"] = [c.as_dict() for c in result.tool_calls]
        model_span.output = message
        model_span.attributes["gen_ai.response.finish_reasons"] = [result.finish_reason] if result.finish_reason else []
    if result.disconnected:
        model_span.attributes["gateway.client_disconnected"] = True
    model_span.ended_at = time.time()
    hooks.record_span(call=call.context, span=model_span)
    cost = pipeline.settle(call=call.context, model=call.model, reservations=call.admission, usage=usage)
    span = call.span
    span.ended_at = time.time()
    span.status = "error" if result.error is not None else "ok"
    span.input = model_span.input
    span.output = model_span.output
    span.attributes.update(
        {
            "gen_ai.response.model": result.model_id or call.model.model_id,
            "http.status_code": result.status,
            "cost_micros": cost,
        }
    )
    if usage is not None:
        span.attributes.update(
            {"gen_ai.usage.input_tokens": usage.input_tokens, "gen_ai.usage.output_tokens": usage.output_tokens}
        )
    if result.error is not None:
        span.attributes.update(
            {"error.type": model_span.attributes["error.type"], "error.message": model_span.attributes["error.message"]}
        )
    if call.guarded:
        span.attributes["gateway.guardrails"] = call.guarded
    _budget_attributes(call)
    hooks.record_span(call=call.context, span=span)
    return cost


def _log(
    call: Call, *, status: int, error_code: str, usage: Usage | None, cost: int, latency_ms: float | None = None
) -> None:
    """The request's row in the console's request log (gateway.models)."""
    row = _log_row(call, status=status, error_code=error_code, usage=usage, cost=cost, latency_ms=latency_ms)
    try:
        row.save(force_insert=True)
    except Exception:  # the log never fails a call that was answered
        logger.exception("gateway request %s: could not write the request log", call.request_id)


def _log_row(
    call: Call, *, status: int, error_code: str, usage: Usage | None, cost: int, latency_ms: float | None = None
) -> GatewayRequest:
    from gateway.models import GatewayRequest

    context = call.context
    if latency_ms is None:
        latency_ms = round((time.perf_counter() - call.started) * 1000, 1)
    return GatewayRequest(
        tenant=context.tenant,
        api_key=call.key,
        request_id=call.request_id,
        endpoint=call.endpoint,
        alias=call.alias[:200],
        model_id=call.model.model_id,
        stream=call.stream,
        status=status,
        error_code=error_code[:64],
        end_user_id=context.end_user_id,
        session_id=context.session_id,
        agent_id=str(context.agent_id or ""),
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        cost_micros=cost,
        latency_ms=latency_ms,
        trace_id=context.trace_id,
    )


def _log_unopened(key: ApiKey, headers: dict[str, str], body: Any, endpoint: str, error: GatewayError) -> None:
    """The request-log row of a request refused before its call was opened (rate limit, bad body,
    unknown alias), written by the recorder like any other."""
    from gateway.models import GatewayRequest

    alias = body.get("model") if isinstance(body, dict) else None
    user = body.get("user") if isinstance(body, dict) else None
    end_user = headers.get("x-aoc-end-user", "").strip() or (user if isinstance(user, str) else "")
    row = GatewayRequest(
        tenant_id=key.tenant_id,
        api_key=key,
        request_id="req_" + secrets.token_hex(12),
        endpoint=endpoint[:40],
        alias=(alias if isinstance(alias, str) else "")[:200],
        status=error.status,
        error_code=error.code[:64],
        end_user_id=end_user[:200],
        session_id=headers.get("x-aoc-session", "").strip()[:200],
        trace_id="",
    )
    recorder.submit(lambda: recorder.Written(rows=[row]), tenant_id=key.tenant_id)


def _budget_attributes(call: Call) -> None:
    decisions = call.admission.reservations
    ids = [d.reservation_id for d in decisions if d.reservation_id]
    if ids:
        call.span.attributes["budget.reservation_ids"] = ids
    if (refusal := call.admission.refusal) is not None:
        call.span.attributes["budget.refused"] = refusal.message
        if refusal.details:
            call.span.attributes["budget.details"] = refusal.details


def _remaining(call: Call, usage: Usage | None, cost: int) -> str | None:
    """The tightest budget's remainder once this call is settled, in its unit ("0.004210 USD",
    "1200 tokens"): its remainder at admission (this call's hold included, budgets.services.
    tightest) plus the hold, less what the call really used."""
    tightest = next((d.tightest for d in call.admission.reservations if d.tightest), None)
    if not tightest:
        return None
    try:
        left = int(tightest["remaining"]) + int(tightest.get("held") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    if tightest.get("unit") == "tokens":
        spent = usage.input_tokens + usage.output_tokens if usage else 0
        return f"{max(left - spent, 0)} tokens"
    return f"{max(left - cost, 0) / 1_000_000:.6f} USD"
