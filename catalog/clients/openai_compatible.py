"""Chat Completions (`POST {base_url}/chat/completions`) with tool calling: OpenAI itself and the
servers that speak its API (vLLM, Ollama, LM Studio, llama.cpp, gateways)."""

from __future__ import annotations

import json
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


class OpenAICompatibleClient:
    def __init__(self, config: ProviderConfig, *, http: httpx.Client | None = None, sleep: Sleep = time.sleep) -> None:
        self.config = config
        self.http = http or shared_http()
        self.sleep = sleep
        host = urlsplit(config.base_url).hostname or config.base_url or "(no base URL)"
        self.label = f"OpenAI-compatible provider {host}"
        # OpenAI deprecated `max_tokens` (its reasoning models refuse it); other servers may only
        # know `max_tokens`.
        self.max_tokens_field = "max_completion_tokens" if host.endswith("openai.com") else "max_tokens"

    def chat(self, request: ChatRequest) -> ChatResponse:
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        data = post_json(
            self.http,
            f"{self.config.base_url.rstrip('/')}/chat/completions",
            headers=headers,
            body=self.request_body(request),
            config=self.config,
            label=self.label,
            sleep=self.sleep,
        )
        return self.parse_response(request, data)

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model_id,
            "messages": [message_to_openai(message) for message in request.messages],
            self.max_tokens_field: request.max_output_tokens,
            "temperature": request.temperature,
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
        return body

    def parse_response(self, request: ChatRequest, data: dict[str, Any]) -> ChatResponse:
        try:
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content") or ""
            raw_calls = message.get("tool_calls") or []
            calls = [(c["id"], c["function"]["name"], c["function"].get("arguments")) for c in raw_calls]
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError("bad_response", f"{self.label} answered an unexpected shape: {exc!r}") from exc
        tool_calls = [ToolCall(id=id_, name=name, arguments=self._arguments(name, args)) for id_, name, args in calls]
        usage = _usage(data.get("usage")) or estimate_usage(request, content, tool_calls)
        return ChatResponse(
            content=content,
            tool_calls=tool_calls,
            usage=usage,
            model_id=data.get("model") or request.model_id,
            finish_reason=choice.get("finish_reason") or "",
            raw=data,
        )

    def _arguments(self, name: str, arguments: Any) -> dict[str, Any]:
        try:
            if not isinstance(arguments, str):
                raise ValueError("not a JSON string")
            return _object(arguments)
        except ValueError as exc:
            raise ProviderError(
                "bad_response",
                f"{self.label} called tool {name!r} with malformed arguments ({exc}): {arguments!r:.200}",
            ) from exc


def message_to_openai(message: Message) -> dict[str, Any]:
    """A neutral message as a Chat Completions message."""
    if message["role"] == "tool":
        return {"role": "tool", "tool_call_id": message["tool_call_id"], "content": message["content"]}
    if message["role"] == "assistant" and message.get("tool_calls"):
        return {
            "role": "assistant",
            "content": message["content"] or None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                }
                for c in message["tool_calls"]
            ],
        }
    return {"role": message["role"], "content": message["content"]}


def messages_from_openai(messages: list[dict[str, Any]]) -> list[Message]:
    """Chat Completions messages (as a client sends them to the gateway) as neutral messages.
    Raises ValueError, naming the message, on a shape this interface cannot carry."""
    neutral: list[Message] = []
    tool_names: dict[str, str] = {}
    for index, data in enumerate(messages):
        try:
            role = {"developer": "system"}.get(data["role"], data["role"])
            content = _text(data.get("content"))
            if role in ("system", "user"):
                neutral.append({"role": role, "content": content})
            elif role == "assistant":
                message: Message = {"role": "assistant", "content": content}
                calls = data.get("tool_calls") or []
                if calls:
                    message["tool_calls"] = [
                        {"id": c["id"], "name": c["function"]["name"], "arguments": _object(c["function"]["arguments"])}
                        for c in calls
                    ]
                    tool_names.update((c["id"], c["function"]["name"]) for c in calls)
                neutral.append(message)
            elif role == "tool":
                call_id = data["tool_call_id"]
                neutral.append(
                    {"role": "tool", "tool_call_id": call_id, "name": tool_names.get(call_id, ""), "content": content}
                )
            else:
                raise ValueError(f"role {role!r} is not supported")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"messages[{index}]: {exc}") from exc
    return neutral


def _text(content: Any) -> str:
    """Content as a string: a string, null, or a list of text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise ValueError("only text content is supported")


def _object(arguments: str) -> dict[str, Any]:
    """Tool-call arguments (a JSON string) as an object. Empty means none: some servers send "" for
    a tool without parameters. Anything else that is not a JSON object is refused."""
    parsed = json.loads(arguments) if arguments.strip() else {}
    if not isinstance(parsed, dict):
        raise ValueError("tool call arguments must be a JSON object")
    return parsed


def _usage(usage: Any) -> Usage | None:
    """OpenAI's usage: prompt tokens include the cached ones, completion tokens the reasoning ones."""
    if not isinstance(usage, dict) or "prompt_tokens" not in usage:
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        cached_input_tokens=prompt_details.get("cached_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )
