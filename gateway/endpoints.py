"""`POST /v1/chat/completions` (and the other provider-shaped endpoints): one request is

    body     = await exchange.json()                      400 for what is not JSON, 413 over the limit
    call     = await admitting(calls.admit, headers, body) the one thread hop: key, who, pin,
                                                          input guardrails, the worst case reserved
    answer   = await upstream.post(call) | stream(call)   the provider, on the loop's pooled client
                                                          (a demo or Anthropic provider: its
                                                          neutral client, in the pool)
    verdict  = guard.check(call.output_rules, text, fb)   output guardrails in memory; a stream
                                                          holds back a window (gateway.guard)
    send the answer, headers x-aoc-trace-id, x-request-id, x-aoc-cost-usd, x-aoc-budget-remaining
    calls.conclude(call, result)                          in memory: the cost and the budget's
                                                          remainder; the settlement, verdicts,
                                                          spans and log go to the recorder

A non-streamed answer is concluded before it is sent, so its cost and remaining budget are exact
in its headers; a stream is concluded after its last event, and a client that leaves mid-stream
is settled for what the provider produced until then.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from approvals.longpoll import pooled
from catalog.clients import ChatResponse, ProviderError, ToolCall, Usage, client_for
from gateway import calls, guard, holds, messages, responses, upstream
from gateway.asgi import Exchange, Handler
from gateway.errors import GatewayError, Shape

logger = logging.getLogger(__name__)

CHAT = "/v1/chat/completions"


def _headers(call: calls.Call, conclusion: calls.Conclusion | None = None) -> list[tuple[bytes, bytes]]:
    out = [(b"x-aoc-trace-id", call.context.trace_id.encode()), (b"x-request-id", call.request_id.encode())]
    if conclusion is not None:
        out.append((b"x-aoc-cost-usd", f"{conclusion.cost_micros / 1_000_000:.6f}".encode()))
        if conclusion.budget_remaining is not None:
            out.append((b"x-aoc-budget-remaining", conclusion.budget_remaining.encode()))
    return out


async def _conclude(call: calls.Call, result: calls.Result) -> calls.Conclusion:
    """Conclude in the loop, without a thread hop: `calls.conclude` only computes and hands over,
    and nothing can cancel it halfway, so a reservation is never left held."""
    return calls.conclude(call, result)


async def blocked_answer(call: calls.Call, result: calls.Result, blocked: guard.BlockedError) -> GatewayError:
    """A stream an output guardrail blocked: concluded (settled for what came) and the error to
    end it with, for every endpoint's stream."""
    error = GatewayError(400, "guardrail_blocked", f"A guardrail blocked the model's answer: {blocked.reason}.")
    result.error, result.status = error, 400
    await _conclude(call, result)
    return error


type Reader = Callable[[dict[str, Any], calls.Result], None]
type OutputGuard = Callable[[calls.Call, dict[str, Any], calls.Result], GatewayError | None]


async def failed(exchange: Exchange, call: calls.Call, result: calls.Result, error: GatewayError) -> GatewayError:
    """Conclude a call that failed before its answer was sent (released, or settled for what came),
    and return the error to raise to the client, with the call's headers."""
    result.error, result.status = error, error.status
    await _conclude(call, result)
    if not exchange.started:
        exchange.extra_headers.extend(_headers(call))
    return error


type Rewrite = Callable[[dict[str, Any], list[holds.Outcome]], None]


async def relay(
    exchange: Exchange,
    call: calls.Call,
    read: Reader,
    guard_output: OutputGuard | None = None,
    answer: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    held: tuple[Rewrite, float | None] | None = None,
) -> None:
    """A non-streamed call: the provider's JSON (`answer`, else a POST of the call's body), its
    facts read into the result, output guardrails applied to it, the call concluded, its tool
    calls reviewed and held for a reviewer when `held` (the endpoint's rewrite of its answer, and
    X-AOC-Approval-Wait) says so (gateway.holds), then the answer sent with its cost in the
    headers (or the guardrail's refusal)."""
    result = calls.Result()
    try:
        data = await (answer() if answer is not None else upstream.post(call))
    except GatewayError as error:
        raise await failed(exchange, call, result, error) from None
    read(data, result)
    blocked = guard_output(call, data, result) if guard_output is not None else None
    if blocked is not None:
        result.error, result.status = blocked, blocked.status
    conclusion = await _conclude(call, result)
    exchange.extra_headers.extend(_headers(call, conclusion))
    if blocked is not None:
        raise blocked
    if held is not None and result.tool_calls:
        rewrite, wait = held
        outcomes = await holds.hold(exchange, call, result.tool_calls, wait=wait, said=result.content)
        if exchange.disconnected.is_set():
            return  # nobody to answer; the held calls were settled (gateway.holds)
        if outcomes is not None:
            rewrite(data, outcomes)
    await exchange.send_json(200, data)


async def chat_completions(exchange: Exchange) -> None:
    body = await exchange.json()
    wait = holds.requested_wait(exchange.headers)
    call: calls.Call = await calls.admitting(calls.admit, exchange.headers, body, CHAT)
    if call.stream:
        await _stream_chat(exchange, call, calls.Result(), wait)
        return
    if call.passthrough:
        await relay(exchange, call, _read_completion, _guard_choices, held=(holds.completion, wait))
        return

    async def neutral() -> dict[str, Any]:
        return _completion_body(call, await _neutral_chat(call))

    await relay(exchange, call, _read_completion, _guard_choices, answer=neutral, held=(holds.completion, wait))


async def _neutral_chat(call: calls.Call) -> ChatResponse:
    """A provider that does not speak Chat Completions (demo, Anthropic): its neutral client."""
    try:
        return await pooled(lambda: client_for(call.config).chat(call.request))
    except ProviderError as exc:
        raise _provider_error(call, exc) from None


def _provider_error(call: calls.Call, exc: ProviderError) -> GatewayError:
    name = call.model.provider.name
    if exc.type == "rate_limited":
        return GatewayError(
            429,
            "upstream_rate_limited",
            f"The provider {name} is rate limiting: {exc.message}",
            retry_after=1,
            retry=True,
        )
    if exc.type == "timeout":
        return GatewayError(504, "upstream_timeout", exc.message, retry=True)
    if exc.type == "bad_request":
        return GatewayError(400, "upstream_rejected", exc.message)
    return GatewayError(502, f"upstream_{exc.type}", exc.message, retry=exc.retryable)


def _read_completion(data: dict[str, Any], result: calls.Result) -> None:
    """The neutral facts of a Chat Completions answer: every choice's text, the first choice's
    tool calls and finish reason, the usage, the model."""
    raw = data.get("choices")
    choices: list[Any] = raw if isinstance(raw, list) else []
    texts = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("content"), str):
            texts.append(message["content"])
        for raw in message.get("tool_calls") or []:
            function = raw.get("function") or {}
            result.tool_calls.append(
                ToolCall(
                    id=str(raw.get("id", "")),
                    name=str(function.get("name", "")),
                    arguments=_arguments(function.get("arguments")),
                )
            )
    result.content = "\n".join(texts)
    if choices and isinstance(choices[0], dict):
        result.finish_reason = str(choices[0].get("finish_reason") or "")
    result.model_id = str(data.get("model") or "")
    result.usage = _usage(data.get("usage"))


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"_raw": str(raw)}
    return value if isinstance(value, dict) else {"_value": value}


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    try:
        return Usage(
            input_tokens=int(raw.get("prompt_tokens") or 0),
            output_tokens=int(raw.get("completion_tokens") or 0),
            cached_input_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
            reasoning_tokens=int(completion.get("reasoning_tokens") or 0) if isinstance(completion, dict) else 0,
        )
    except (TypeError, ValueError):
        return None


def _completion_body(call: calls.Call, response: ChatResponse) -> dict[str, Any]:
    """A neutral answer in Chat Completions' shape (for providers that are not OpenAI-compatible)."""
    message: dict[str, Any] = {"role": "assistant", "content": response.content or None, "refusal": None}
    if response.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in response.tool_calls
        ]
    finish = "tool_calls" if response.tool_calls else (_finish(response.finish_reason))
    usage = response.usage
    return {
        "id": f"chatcmpl-{call.request_id[4:]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model_id or call.model.model_id,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
        },
    }


def _finish(reason: str) -> str:
    return {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop", "tool_use": "tool_calls"}.get(
        reason, reason or "stop"
    )


def _guard_choices(call: calls.Call, data: dict[str, Any], result: calls.Result) -> GatewayError | None:
    """Output guardrails on every choice's text, in memory: a block refuses the answer (400
    guardrail_blocked), a redaction replaces the text the client receives."""
    if not call.output_rules:
        return None
    redacted = []
    for choice in data.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), str) or not message["content"]:
            continue
        checked = guard.check(call.output_rules, message["content"], call.output_feedback)
        if checked.blocks:
            return GatewayError(
                400,
                "guardrail_blocked",
                f"A guardrail blocked the model's answer: {checked.reason}.",
                extra={"findings": checked.findings},
            )
        if checked.text != message["content"]:
            message["content"] = checked.text
            redacted.append(checked.text)
    if redacted:
        call.guarded.append("output redacted")
        texts = [
            c["message"]["content"]
            for c in data.get("choices") or []
            if isinstance((c.get("message") or {}).get("content"), str)
        ]
        result.original_content, result.content = result.content, "\n".join(texts)
    return None


# --- streams -------------------------------------------------------------------------------------


class _Accumulated:
    """What a Chat Completions stream has said so far, assembled from its chunks."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.finish_reason = ""
        self.model = ""
        self.usage: Usage | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        self.model = self.model or str(chunk.get("model") or "")
        if (usage := _usage(chunk.get("usage"))) is not None:
            self.usage = usage
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self.text.append(delta["content"])
            for raw in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(int(raw.get("index", 0)), {"id": "", "name": "", "arguments": ""})
                function = raw.get("function") or {}
                slot["id"] = raw.get("id") or slot["id"]
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])

    def into(self, result: calls.Result) -> None:
        result.content = "".join(self.text)
        result.tool_calls = [
            ToolCall(id=c["id"], name=c["name"], arguments=_arguments(c["arguments"]))
            for _, c in sorted(self.calls.items())
        ]
        result.finish_reason, result.model_id, result.usage = self.finish_reason, self.model, self.usage


async def _stream_chat(exchange: Exchange, call: calls.Call, result: calls.Result, wait: float | None = None) -> None:
    """Relay a stream: chunks as they come (content held back by the output guard when the policy
    has output rules; tool calls kept until the stream has ended, then reviewed and held for a
    reviewer if they need one, gateway.holds), the usage chunk only when the client asked for
    it, `[DONE]` last. An error after the first event is a final error event, never a silent cut."""
    acc = _Accumulated()
    tool_calls = holds.ChatStream()
    window = guard.StreamGuard(call.output_rules, call.output_feedback) if call.output_rules else None
    usage_chunk: dict[str, Any] | None = None
    template: dict[str, Any] = {}
    try:
        if not call.passthrough:
            response = await _neutral_chat(call)
            chunks = _chunks_of(call, response)
        else:
            chunks = None
        async with _Source(call, chunks) as source:
            await exchange.start_events(_headers(call))
            async for chunk in source:
                if exchange.disconnected.is_set():
                    result.disconnected = True
                    break
                acc.add(chunk)
                choices = chunk.get("choices") or []
                if not choices:
                    if chunk.get("usage") is not None:
                        usage_chunk = chunk
                    continue
                template = template or {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
                if not call.include_usage:
                    chunk.pop("usage", None)
                if tool_calls.take(chunk):
                    continue
                if window is not None:
                    finishing = any(isinstance(c, dict) and c.get("finish_reason") for c in choices)
                    for choice in choices:
                        delta = choice.get("delta") if isinstance(choice, dict) else None
                        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                            delta["content"] = window.feed(delta["content"])
                    if finishing and (rest := window.flush()):
                        await exchange.event(_content_chunk(template, rest))
                    if _empty(chunk):
                        continue
                await exchange.event(chunk)
    except guard.BlockedError as blocked:
        acc.into(result)
        raise await blocked_answer(call, result, blocked) from None
    except GatewayError as error:
        acc.into(result)
        raise await failed(exchange, call, result, error) from None
    acc.into(result)
    if window is not None and window.changed:
        result.original_content, result.content = result.content, window.sent
    if result.disconnected:
        # Settled for what the provider produced until the client left (estimated when the
        # provider's usage chunk never came).
        await _conclude(call, result)
        return
    if window is not None and (rest := window.flush()):
        await exchange.event(_content_chunk(template, rest))
    conclusion = await _conclude(call, result)
    if tool_calls.calls:
        outcomes = await holds.hold(exchange, call, tool_calls.proposed(), wait=wait, said=result.content, stream=True)
        if exchange.disconnected.is_set():
            return  # nobody to answer; the held calls were settled (gateway.holds)
        for chunk in tool_calls.release(outcomes):
            await exchange.event(chunk)
    if call.include_usage and usage_chunk is not None:
        await exchange.event(usage_chunk)
    await exchange.raw(f": aoc cost_usd={conclusion.cost_micros / 1_000_000:.6f}\n\n".encode())
    await exchange.event("[DONE]")
    await exchange.end()


def _empty(chunk: dict[str, Any]) -> bool:
    """A chunk left with nothing to say (its content is held back by the output guard)."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if (
            choice.get("finish_reason")
            or delta.get("content")
            or delta.get("tool_calls")
            or delta.get("role")
            or delta.get("refusal")
        ):
            return False
    return True


def _content_chunk(template: dict[str, Any], text: str) -> dict[str, Any]:
    return {**template, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


class _Source:
    """The stream's chunks: the provider's SSE lines parsed, or chunks synthesised from a neutral answer."""

    def __init__(self, call: calls.Call, chunks: list[dict[str, Any]] | None) -> None:
        self.call, self.chunks = call, chunks
        self._cm: Any = None

    async def __aenter__(self) -> Any:
        if self.chunks is not None:
            return _iterate(self.chunks)
        self._cm = upstream.stream(self.call)
        response = await self._cm.__aenter__()
        return _parse_sse(self.call, response)

    async def __aexit__(self, *exc: Any) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc)


async def _iterate(chunks: list[dict[str, Any]]) -> Any:
    for chunk in chunks:
        yield chunk


async def _parse_sse(call: calls.Call, response: Any) -> Any:
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError:
                continue
            if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                message = (
                    (chunk["error"] or {}).get("message") if isinstance(chunk["error"], dict) else str(chunk["error"])
                )
                raise GatewayError(
                    502, "upstream_error", f"The provider {call.model.provider.name} failed mid-stream: {message}"
                )
            if isinstance(chunk, dict):
                yield chunk
    except upstream.StreamBrokenError as exc:
        raise GatewayError(
            502,
            "upstream_stream_broken",
            f"The provider {call.model.provider.name} broke off the stream: {exc}.",
        ) from None
    raise GatewayError(
        502, "upstream_stream_broken", f"The provider {call.model.provider.name} ended the stream without [DONE]."
    )


def _chunks_of(call: calls.Call, response: ChatResponse) -> list[dict[str, Any]]:
    body = _completion_body(call, response)
    base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"]}
    message = body["choices"][0]["message"]
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    if message.get("content"):
        chunks.append(
            {**base, "choices": [{"index": 0, "delta": {"content": message["content"]}, "finish_reason": None}]}
        )
    for index, tool_call in enumerate(message.get("tool_calls") or []):
        chunks.append(
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"tool_calls": [{"index": index, **tool_call}]}, "finish_reason": None}
                ],
            }
        )
    chunks.append(
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": body["choices"][0]["finish_reason"]}]}
    )
    chunks.append({**base, "choices": [], "usage": body["usage"]})
    return chunks


EMBEDDINGS = "/v1/embeddings"


async def embeddings(exchange: Exchange) -> None:
    """`POST /v1/embeddings` to an OpenAI-compatible provider, priced per input token."""
    body = await exchange.json()
    call: calls.Call = await calls.admitting(calls.admit_embeddings, exchange.headers, body, EMBEDDINGS)
    await relay(exchange, call, _read_embeddings)


def _read_embeddings(data: dict[str, Any], result: calls.Result) -> None:
    raw_usage = data.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    try:
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
    except (TypeError, ValueError):
        tokens = 0
    raw_data = data.get("data")
    vectors: list[Any] = raw_data if isinstance(raw_data, list) else []
    result.usage = Usage(input_tokens=tokens, output_tokens=0, estimated=not tokens)
    result.model_id = str(data.get("model") or "")
    result.output = {"embeddings": len(vectors)}


ROUTES: dict[str, tuple[Handler, Shape]] = {
    CHAT: (chat_completions, "openai"),
    EMBEDDINGS: (embeddings, "openai"),
    messages.PATH: (messages.handle, "anthropic"),
    responses.PATH: (responses.handle, "openai"),
}
