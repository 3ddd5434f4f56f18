"""`POST /v1/responses`: the OpenAI Responses API (the Agents SDK's default) relayed to an
OpenAI-compatible provider, streamed or not, through the same admission and conclusion as Chat
Completions (gateway.calls). Input guardrails run on the user's text and on
`function_call_output` items (tool results: indirect injection) the client added since the
model last spoke; `max_output_tokens` is always set (the reservation's worst case must hold).

Output guardrails on a stream hold back a window of each text part's deltas (gateway.guard), and
the events that repeat a part's whole text (`response.output_text.done`, `content_part.done`,
`output_item.done`, `response.completed`) carry the guarded text, so no event leaks what the
deltas masked. A provider that is not OpenAI-compatible is refused with a 400 saying which
endpoint to use.
"""

from __future__ import annotations

import json
from typing import Any

from catalog.clients import ChatRequest, Message, ToolCall, ToolSpec, Usage
from gateway import calls, guard, holds, upstream
from gateway.asgi import Exchange
from gateway.errors import GatewayError, invalid

PATH = "/v1/responses"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("input_text", "output_text", "text")
        )
    return ""


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
        return raw
    raise invalid("`input` must be a string or a non-empty array of input items.", param="input")


def _neutral(body: dict[str, Any], items: list[dict[str, Any]]) -> list[Message]:
    out: list[Message] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        out.append({"role": "system", "content": body["instructions"]})
    for item in items:
        kind = item.get("type", "message")
        if kind == "message" or "role" in item:
            text = _text(item.get("content"))
            if item.get("role") == "assistant":
                out.append({"role": "assistant", "content": text})
            elif item.get("role") in ("system", "developer"):
                out.append({"role": "system", "content": text})
            else:
                out.append({"role": "user", "content": text})
        elif kind == "function_call":
            out.append({"role": "assistant", "content": f"{item.get('name', '')}({item.get('arguments', '')})"})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append({"role": "user", "content": output if isinstance(output, str) else json.dumps(output)})
    return out


def admit(headers: dict[str, str], body: Any, endpoint: str) -> calls.Call:
    with calls.snapshot(headers):
        return _admit(headers, body, endpoint)


def _admit(headers: dict[str, str], body: Any, endpoint: str) -> calls.Call:
    identified = calls.identify(headers, body, endpoint)
    alias, model = identified[2], identified[3]
    if str(model.provider.kind) != "openai_compatible":
        raise invalid(
            f"{alias!r} is pinned to a model of the {model.provider.get_kind_display()} provider "
            f"{model.provider.name}, which has no Responses API; use "
            + ("/v1/messages." if str(model.provider.kind) == "anthropic" else "/v1/chat/completions."),
            param="model",
        )
    stream = calls._flag(body, "stream")
    items = _items(body)
    asked = body.get("max_output_tokens")
    if asked is not None and (not isinstance(asked, int) or isinstance(asked, bool) or asked < 1):
        raise invalid("`max_output_tokens` must be a positive integer.", param="max_output_tokens")
    bound = min(asked, model.max_output_tokens) if asked else model.max_output_tokens
    tools = [
        ToolSpec(
            name=str(t.get("name", "")),
            description=str(t.get("description") or ""),
            parameters=t.get("parameters") or {},
        )
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function"
    ]
    request = ChatRequest(model_id=model.model_id, messages=_neutral(body, items), tools=tools, max_output_tokens=bound)
    call = calls.open_call(
        headers, body, endpoint, operation="chat", request=request, stream=stream, identified=identified
    )
    call.span.attributes["gen_ai.request.max_tokens"] = bound
    with call.recording():  # the guardrail spans go out with the call's other spans
        try:
            _guard(call, items, isinstance(body.get("input"), str))
            call.body.update(model=model.model_id, max_output_tokens=bound)
            calls._upstream_address(call, "/responses")
        except GatewayError as refused:
            calls._refused(call, refused)
            raise
        calls.hold(call, request)
    return call


def _guard(call: calls.Call, items: list[dict[str, Any]], plain: bool) -> None:
    from agents import hooks

    last = max(
        (i for i, item in enumerate(items) if item.get("role") == "assistant" or item.get("type") == "function_call"),
        default=-1,
    )
    relayed = [dict(item) for item in items]
    for index in range(last + 1, len(items)):
        item = relayed[index]
        where = "input" if plain else f"input[{index}]"
        if item.get("type") == "function_call_output":
            output = item.get("output")
            verdict = hooks.check_tool_result(call=call.context, tool=None, result=output if output is not None else "")
            target = "output"
        elif item.get("role") in ("user", "system", "developer") and _text(item.get("content")):
            verdict = hooks.check_input(call=call.context, text=_text(item.get("content")))
            target = "content"
        else:
            continue
        if verdict.action in ("block", "require_approval"):
            raise GatewayError(
                400,
                "guardrail_blocked",
                f"A guardrail blocked {where}: {verdict.reason or 'refused by policy'}.",
                param=where,
            )
        if verdict.action == "redact":
            replacement = verdict.redacted if isinstance(verdict.redacted, str) else json.dumps(verdict.redacted)
            if target == "content" and isinstance(item.get("content"), list):
                item["content"] = [{"type": "input_text", "text": replacement}]
            else:
                item[target] = replacement
            call.guarded.append(f"{where} redacted: {verdict.reason}")
    if call.guarded:
        call.body["input"] = relayed[0]["content"] if plain else relayed


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("input_tokens_details") or {}
    try:
        return Usage(
            input_tokens=int(raw.get("input_tokens") or 0),
            output_tokens=int(raw.get("output_tokens") or 0),
            cached_input_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
        )
    except (TypeError, ValueError):
        return None


def _read(data: dict[str, Any], result: calls.Result) -> None:
    texts = []
    for item in data.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            texts.append(_text(item.get("content")))
        elif item.get("type") == "function_call":
            try:
                arguments = json.loads(item.get("arguments") or "{}")
            except (TypeError, ValueError):
                arguments = {"_raw": item.get("arguments")}
            result.tool_calls.append(
                ToolCall(
                    id=str(item.get("call_id", "")),
                    name=str(item.get("name", "")),
                    arguments=arguments if isinstance(arguments, dict) else {},
                )
            )
    result.content = "\n".join(t for t in texts if t)
    result.usage = _usage(data.get("usage"))
    result.model_id = str(data.get("model") or "")
    result.finish_reason = str(data.get("status") or "")


def _guard_output(call: calls.Call, data: dict[str, Any], result: calls.Result) -> GatewayError | None:
    if not call.output_rules:
        return None
    changed = False
    for item in data.get("output") or []:
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        for part in item.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "output_text" and part.get("text"):
                checked = guard.check(call.output_rules, str(part["text"]), call.output_feedback)
                if checked.blocks:
                    return GatewayError(
                        400, "guardrail_blocked", f"A guardrail blocked the model's answer: {checked.reason}."
                    )
                if checked.text != part["text"]:
                    part["text"], changed = checked.text, True
    if changed:
        call.guarded.append("output redacted")
        original = result.content
        result.tool_calls = []
        _read(data, result)
        result.original_content = original
    return None


async def handle(exchange: Exchange) -> None:
    from gateway.endpoints import relay

    body = await exchange.json()
    wait = holds.requested_wait(exchange.headers)
    call: calls.Call = await calls.admitting(admit, exchange.headers, body, PATH)
    if call.stream:
        await _stream(exchange, call, calls.Result(), wait)
        return
    await relay(exchange, call, _read, _guard_output, held=(holds.response, wait))


async def _events(call: calls.Call, response: Any) -> Any:
    name = ""
    try:
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                raw = line[5:].strip()
                if raw == "[DONE]":
                    return
                try:
                    data = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(data, dict):
                    continue
                kind = str(data.get("type") or name)
                if kind in ("error", "response.failed"):
                    error = data.get("error") or (data.get("response") or {}).get("error") or {}
                    message = error.get("message", "error") if isinstance(error, dict) else str(error)
                    raise GatewayError(
                        502, "upstream_error", f"The provider {call.model.provider.name} failed mid-stream: {message}"
                    )
                yield kind, data
                if kind in ("response.completed", "response.incomplete"):
                    return
    except upstream.StreamBrokenError as exc:
        raise GatewayError(
            502,
            "upstream_stream_broken",
            f"The provider {call.model.provider.name} broke off the stream: {exc}.",
        ) from None
    raise GatewayError(
        502,
        "upstream_stream_broken",
        f"The provider {call.model.provider.name} ended the stream without response.completed.",
    )


def _part(data: dict[str, Any]) -> tuple[str, int]:
    return str(data.get("item_id", "")), int(data.get("content_index", 0) or 0)


async def _stream(exchange: Exchange, call: calls.Call, result: calls.Result, wait: float | None = None) -> None:
    """Relay a Responses stream; from its first function_call item on, the events are kept until
    the calls are reviewed and held for a reviewer if they need one (gateway.holds)."""
    from gateway.endpoints import _conclude, _headers, blocked_answer, failed

    kept = holds.ResponsesStream()
    guards: dict[tuple[str, int], guard.StreamGuard] = {}
    texts: list[str] = []
    try:
        async with upstream.stream(call) as response:
            await exchange.start_events(_headers(call))
            async for kind, data in _events(call, response):
                if exchange.disconnected.is_set():
                    result.disconnected = True
                    break
                if kind == "response.output_text.delta":
                    texts.append(str(data.get("delta", "")))
                    if call.output_rules:
                        window = guards.setdefault(
                            _part(data), guard.StreamGuard(call.output_rules, call.output_feedback)
                        )
                        data["delta"] = window.feed(str(data.get("delta", "")))
                        if not data["delta"]:
                            continue
                elif kind == "response.output_text.done" and call.output_rules:
                    window = guards.setdefault(_part(data), guard.StreamGuard(call.output_rules, call.output_feedback))
                    if rest := window.flush():
                        extra = {k: v for k, v in data.items() if k != "text"}
                        extra.update(type="response.output_text.delta", delta=rest)
                        if not kept.take("response.output_text.delta", extra):
                            await exchange.event(extra, event="response.output_text.delta")
                    data["text"] = window.sent
                elif kind == "response.content_part.done" and call.output_rules:
                    part_guard = guards.get(_part(data))
                    if part_guard is not None and isinstance(data.get("part"), dict):
                        data["part"]["text"] = part_guard.sent
                elif kind == "response.output_item.done" and call.output_rules:
                    _mask_item(data.get("item"), guards)
                elif kind in ("response.completed", "response.incomplete"):
                    answer = data.get("response") or {}
                    if call.output_rules:
                        for item in answer.get("output") or []:
                            _mask_item(item, guards)
                    _read(answer, result)
                if not kept.take(kind, data):
                    await exchange.event(data, event=kind)
    except guard.BlockedError as blocked:
        result.content = "".join(texts)
        raise await blocked_answer(call, result, blocked) from None
    except GatewayError as error:
        result.content = result.content or "".join(texts)
        raise await failed(exchange, call, result, error) from None
    if not result.content and not result.tool_calls:
        result.content = "".join(texts)
    if any(window.changed for window in guards.values()):
        result.original_content = "".join(texts)
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


def _mask_item(item: Any, guards: dict[tuple[str, int], guard.StreamGuard]) -> None:
    if not isinstance(item, dict) or item.get("type") != "message":
        return
    for index, part in enumerate(item.get("content") or []):
        window = guards.get((str(item.get("id", "")), index))
        if window is not None and isinstance(part, dict) and part.get("type") == "output_text":
            part["text"] = window.sent
