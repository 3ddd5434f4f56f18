"""Anthropic's Messages API (`POST {base_url}/v1/messages`) with tool use."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from catalog.clients.base import (
    ChatRequest,
    ChatResponse,
    Message,
    ProviderConfig,
    ProviderError,
    ToolCall,
    Usage,
    estimate_usage,
)
from catalog.clients.transport import Sleep, post_json, shared_http

ANTHROPIC_VERSION = "2023-06-01"

# Anthropic's stop reasons in the words the rest of the console uses (OpenAI's); others pass through.
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


class AnthropicClient:
    def __init__(self, config: ProviderConfig, *, http: httpx.Client | None = None, sleep: Sleep = time.sleep) -> None:
        self.config = config
        self.http = http or shared_http()
        self.sleep = sleep
        self.label = f"Anthropic provider {urlsplit(config.base_url).hostname or config.base_url or '(no base URL)'}"

    def chat(self, request: ChatRequest) -> ChatResponse:
        data = post_json(
            self.http,
            f"{self.config.base_url.rstrip('/')}/v1/messages",
            headers={"x-api-key": self.config.api_key, "anthropic-version": ANTHROPIC_VERSION},
            body=request_body(request),
            config=self.config,
            label=self.label,
            sleep=self.sleep,
        )
        return self.parse_response(request, data)

    def parse_response(self, request: ChatRequest, data: dict[str, Any]) -> ChatResponse:
        texts: list[str] = []
        tool_calls: list[ToolCall] = []
        try:
            for block in data["content"]:
                if block["type"] == "text":
                    texts.append(block["text"])
                elif block["type"] == "tool_use":
                    if not isinstance(block["input"], dict):
                        raise ProviderError(
                            "bad_response",
                            f"{self.label} called tool {block['name']!r} with input that is not an object",
                        )
                    tool_calls.append(ToolCall(id=block["id"], name=block["name"], arguments=block["input"]))
                # thinking and other block types carry nothing the console uses
        except (KeyError, TypeError) as exc:
            raise ProviderError("bad_response", f"{self.label} answered an unexpected shape: {exc!r}") from exc
        content = "".join(texts)
        stop_reason = data.get("stop_reason") or ""
        return ChatResponse(
            content=content,
            tool_calls=tool_calls,
            usage=_usage(data.get("usage")) or estimate_usage(request, content, tool_calls),
            model_id=data.get("model") or request.model_id,
            finish_reason=FINISH_REASONS.get(stop_reason, stop_reason),
            raw=data,
        )


def request_body(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model_id,
        "max_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "messages": messages_to_anthropic(request.messages),
    }
    system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system" and m["content"])
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
        ]
    return body


def messages_to_anthropic(messages: list[Message]) -> list[dict[str, Any]]:
    """Neutral messages as Anthropic turns: system prompts leave (they go to `system`), tool
    results become `tool_result` blocks of a user turn, and consecutive turns of one role merge
    into one, as Anthropic requires (several tool results answer one assistant turn together)."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "system":
            continue
        blocks: list[dict[str, Any]] = []
        if message["role"] == "tool":
            role = "user"
            blocks.append(
                {"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": message["content"]}
            )
        else:
            role = message["role"]
            if message["content"]:
                blocks.append({"type": "text", "text": message["content"]})
            for call in message.get("tool_calls", []):
                blocks.append({"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["arguments"]})
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _usage(usage: Any) -> Usage | None:
    """Anthropic counts cache reads and writes apart from `input_tokens`; the console's input
    tokens are all of them, of which the cache reads are the cached ones."""
    if not isinstance(usage, dict) or "input_tokens" not in usage:
        return None
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    return Usage(
        input_tokens=(usage.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=usage.get("output_tokens") or 0,
        cached_input_tokens=cache_read,
    )
