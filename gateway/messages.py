"""`POST /v1/messages`: the Anthropic Messages API relayed to an Anthropic provider, streamed
or not, through the same admission and conclusion as Chat Completions (gateway.calls): the key
(sent as `x-api-key`, as the anthropic SDK does, or as a Bearer token), who the call is for, the
pinned model, input guardrails on the user's text and on `tool_result` blocks, the worst case
(`max_tokens`, which the API requires) reserved, output guardrails (a stream holds back a window
of its text deltas), settlement at the provider's usage, spans. Errors are in Anthropic's shape.
"""

from __future__ import annotations

import json
from typing import Any

from catalog.clients import ChatRequest, Message, ToolCall
from catalog.clients.anthropic import _usage as anthropic_usage
from gateway import calls, guard, holds, upstream
from gateway.asgi import Exchange
from gateway.errors import GatewayError, invalid

PATH = "/v1/messages"
ANTHROPIC_VERSION = "2023-06-01"


def admit(headers: dict[str, str], body: Any, endpoint: str) -> calls.Call:
    if "authorization" not in headers and headers.get("x-api-key"):
        headers = {**headers, "authorization": f"Bearer {headers['x-api-key']}"}
    with calls.snapshot(headers):
        return _admit(headers, body, endpoint)


def _admit(headers: dict[str, str], body: Any, endpoint: str) -> calls.Call:
    identified = calls.identify(headers, body, endpoint)
    alias, model = identified[2], identified[3]
    if str(model.provider.kind) != "anthropic":
        raise invalid(
            f"{alias!r} is pinned to a model of the {model.provider.get_kind_display()} provider "
            f"{model.provider.name}; /v1/messages relays to Anthropic providers (use /v1/chat/completions).",
            param="model",
        )
    stream = calls._flag(body, "stream")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise invalid("`messages` must be a non-empty array of message objects.", param="messages")
    asked = body.get("max_tokens")
    if not isinstance(asked, int) or isinstance(asked, bool) or asked < 1:
        raise invalid("`max_tokens` is required: a positive integer.", param="max_tokens")
    bound = min(asked, model.max_output_tokens)
    request = ChatRequest(model_id=model.model_id, messages=_neutral(body), max_output_tokens=bound)
    call = calls.open_call(
        headers, body, endpoint, operation="chat", request=request, stream=stream, identified=identified
    )
    call.span.attributes["gen_ai.request.max_tokens"] = bound
    with call.recording():  # the guardrail spans go out with the call's other spans
        try:
            _guard(call, messages)
            call.body.update(model=model.model_id, max_tokens=bound)
            calls._upstream_address(call, "/v1/messages")
            call.headers.pop("authorization", None)
            call.headers["x-api-key"] = call.config.api_key
            call.headers["anthropic-version"] = headers.get("anthropic-version") or ANTHROPIC_VERSION
            if beta := headers.get("anthropic-beta"):
                call.headers["anthropic-beta"] = beta
        except GatewayError as refused:
            calls._refused(call, refused)
            raise
        calls.hold(call, request)
    return call


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def _neutral(body: dict[str, Any]) -> list[Message]:
    """The conversation as neutral messages, for the estimate and the spans."""
    out: list[Message] = []
    if system := _text(body.get("system")):
        out.append({"role": "system", "content": system})
    for message in body.get("messages") or []:
        content = message.get("content")
        text = _text(content)
        if isinstance(content, list):
            text += "".join(
                json.dumps(block.get("input") or block.get("content") or "")
                for block in content
                if isinstance(block, dict) and block.get("type") in ("tool_use", "tool_result")
            )
        if message.get("role") == "assistant":
            out.append({"role": "assistant", "content": text})
        else:
            out.append({"role": "user", "content": text})
    return out


def _guard(call: calls.Call, messages: list[dict[str, Any]]) -> None:
    """Input guardrails on what the client added since the model last spoke (user text, tool
    results); a redaction replaces the text relayed."""
    from agents import hooks

    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    relayed = [dict(m) for m in messages]
    for index in range(last + 1, len(messages)):
        content = messages[index].get("content")
        if isinstance(content, str):
            blocks: list[Any] = [{"type": "text", "text": content}]
            plain = True
        elif isinstance(content, list):
            blocks, plain = [dict(b) if isinstance(b, dict) else b for b in content], False
        else:
            continue
        for position, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            where = f"messages[{index}]" + ("" if plain else f".content[{position}]")
            if block.get("type") == "text" and block.get("text"):
                verdict = hooks.check_input(call=call.context, text=str(block["text"]))
                field = "text"
            elif block.get("type") == "tool_result":
                verdict = hooks.check_tool_result(
                    call=call.context, tool=None, result=_text(block.get("content")) or ""
                )
                field = "content"
            else:
                continue
            if verdict.action in ("block", "require_approval"):
                raise GatewayError(
                    400,
                    "guardrail_blocked",
                    f"A guardrail blocked {where}: {verdict.reason or 'refused by policy'}.",
                    param=where,
                )
            if verdict.action == "redact" and isinstance(verdict.redacted, str):
                block[field] = verdict.redacted
                call.guarded.append(f"{where} redacted: {verdict.reason}")
        relayed[index]["content"] = blocks[0]["text"] if plain else blocks
    if call.guarded:
        call.body["messages"] = relayed


def _read(data: dict[str, Any], result: calls.Result) -> None:
    texts, tools = [], []
    for block in data.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            arguments = block.get("input")
            tools.append(
                ToolCall(
                    id=str(block.get("id", "")),
                    name=str(block.get("name", "")),
                    arguments=arguments if isinstance(arguments, dict) else {},
                )
            )
    result.content, result.tool_calls = "\n".join(texts), tools
    result.usage = anthropic_usage(data.get("usage"))
    result.model_id = str(data.get("model") or "")
    result.finish_reason = str(data.get("stop_reason") or "")


def _guard_answer(call: calls.Call, data: dict[str, Any], result: calls.Result) -> GatewayError | None:
    if not call.output_rules:
        return None
    changed = False
    for block in data.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "text" and block.get("text"):
            checked = guard.check(call.output_rules, str(block["text"]), call.output_feedback)
            if checked.blocks:
                return GatewayError(
                    400, "guardrail_blocked", f"A guardrail blocked the model's answer: {checked.reason}."
                )
            if checked.text != block["text"]:
                block["text"], changed = checked.text, True
    if changed:
        call.guarded.append("output redacted")
        result.original_content = result.content
        result.content = "\n".join(
            str(b.get("text", "")) for b in data.get("content") or [] if isinstance(b, dict) and b.get("type") == "text"
        )
    return None


async def handle(exchange: Exchange) -> None:
    from gateway.endpoints import relay

    body = await exchange.json()
    wait = holds.requested_wait(exchange.headers)
    call: calls.Call = await calls.admitting(admit, exchange.headers, body, PATH)
    if call.stream:
        await _stream(exchange, call, calls.Result(), wait)
        return
    await relay(exchange, call, _read, _guard_answer, held=(holds.message, wait))


async def _events(call: calls.Call, response: Any) -> Any:
    """(event, data) pairs of an Anthropic stream; a GatewayError when it breaks off."""
    name = ""
    try:
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                try:
                    data = json.loads(line[5:].strip())
                except ValueError:
                    continue
                if not isinstance(data, dict):
                    continue
                kind = name or str(data.get("type", ""))
                if kind == "error":
                    message = (data.get("error") or {}).get("message", "error")
                    raise GatewayError(
                        502, "upstream_error", f"The provider {call.model.provider.name} failed mid-stream: {message}"
                    )
                yield kind, data
                if kind == "message_stop":
                    return
    except upstream.StreamBrokenError as exc:
        raise GatewayError(
            502,
            "upstream_stream_broken",
            f"The provider {call.model.provider.name} broke off the stream: {exc}.",
        ) from None
    raise GatewayError(
        502, "upstream_stream_broken", f"The provider {call.model.provider.name} ended the stream without message_stop."
    )


async def _stream(exchange: Exchange, call: calls.Call, result: calls.Result, wait: float | None = None) -> None:
    """Relay a Messages stream; from its first tool_use block on, the events are kept until the
    calls are reviewed and held for a reviewer if they need one (gateway.holds)."""
    from gateway.endpoints import _conclude, _headers, blocked_answer, failed

    kept = holds.MessagesStream()
    window = guard.StreamGuard(call.output_rules, call.output_feedback) if call.output_rules else None
    texts: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    try:
        async with upstream.stream(call) as response:
            await exchange.start_events(_headers(call))
            async for kind, data in _events(call, response):
                if exchange.disconnected.is_set():
                    result.disconnected = True
                    break
                if kind == "message_start":
                    message = data.get("message") or {}
                    usage.update(message.get("usage") or {})
                    result.model_id = str(message.get("model") or "")
                elif kind == "content_block_start":
                    block = data.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        tools[int(data.get("index", 0))] = {
                            "id": block.get("id", ""),
                            "name": block.get("name", ""),
                            "json": "",
                        }
                elif kind == "content_block_delta":
                    delta = data.get("delta") or {}
                    if delta.get("type") == "text_delta":
                        texts.append(str(delta.get("text", "")))
                        if window is not None:
                            delta["text"] = window.feed(str(delta.get("text", "")))
                            if not delta["text"]:
                                continue
                    elif delta.get("type") == "input_json_delta" and int(data.get("index", 0)) in tools:
                        tools[int(data.get("index", 0))]["json"] += str(delta.get("partial_json", ""))
                elif kind == "content_block_stop" and window is not None and (rest := window.flush()):
                    flushed = {
                        "type": "content_block_delta",
                        "index": data.get("index", 0),
                        "delta": {"type": "text_delta", "text": rest},
                    }
                    if not kept.take("content_block_delta", flushed):
                        await exchange.event(flushed, event="content_block_delta")
                elif kind == "message_delta":
                    usage.update(data.get("usage") or {})
                    result.finish_reason = str((data.get("delta") or {}).get("stop_reason") or "")
                if not kept.take(kind, data):
                    await exchange.event(data, event=kind)
    except guard.BlockedError as blocked:
        _collect(result, texts, tools, usage)
        raise await blocked_answer(call, result, blocked) from None
    except GatewayError as error:
        _collect(result, texts, tools, usage)
        raise await failed(exchange, call, result, error) from None
    _collect(result, texts, tools, usage)
    if window is not None and window.changed:
        result.original_content, result.content = result.content, window.sent
    await _conclude(call, result)
    if result.disconnected:
        return
    if kept.events:
        outcomes = await holds.hold(exchange, call, result.tool_calls, wait=wait, said=result.content, stream=True)
        if exchange.disconnected.is_set():
            return  # nobody to answer; the held calls were settled (gateway.holds)
        for kind, data in kept.release(outcomes):
            await exchange.event(data, event=kind)
    await exchange.end()


def _collect(result: calls.Result, texts: list[str], tools: dict[int, dict[str, Any]], usage: dict[str, Any]) -> None:
    result.content = "".join(texts)
    for _, tool in sorted(tools.items()):
        try:
            arguments = json.loads(tool["json"] or "{}")
        except ValueError:
            arguments = {"_raw": tool["json"]}
        result.tool_calls.append(
            ToolCall(
                id=str(tool["id"]), name=str(tool["name"]), arguments=arguments if isinstance(arguments, dict) else {}
            )
        )
    if "input_tokens" in usage:  # else estimated from what was produced (gateway.calls.conclude)
        result.usage = anthropic_usage(usage)
