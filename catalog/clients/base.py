"""The provider-neutral chat interface the run engine (and later the gateway and evals) call.

Messages are plain JSON-able dicts so a run can persist its conversation after every step:

    {"role": "system" | "user", "content": str}
    {"role": "assistant", "content": str, "tool_calls": [{"id", "name", "arguments": {...}}]}
    {"role": "tool", "tool_call_id": str, "name": str, "content": str}   # content: the JSON result
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Protocol, TypedDict


class ToolCallDict(TypedDict):
    id: str
    name: str
    arguments: dict[str, Any]


class Message(TypedDict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: NotRequired[list[ToolCallDict]]
    tool_call_id: NotRequired[str]
    name: NotRequired[str]


@dataclass(frozen=True)
class ProviderConfig:
    """What a client needs to reach a provider (built from catalog.models.Provider)."""

    kind: Literal["openai_compatible", "anthropic", "demo"]
    base_url: str
    api_key: str = ""
    timeout_seconds: float = 60.0
    max_retries: int = 2
    # A base URL a tenant chose (not a vendor's default): checked against the SSRF guard before
    # each request (catalog.clients.transport.check_provider_url).
    check_address: bool = False


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    def as_dict(self) -> ToolCallDict:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False  # True when the provider reported no usage and we estimated it


@dataclass(frozen=True)
class ChatRequest:
    model_id: str  # the exact provider model id, never an alias
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    max_output_tokens: int = 1024
    temperature: float = 0.0


@dataclass(frozen=True)
class ChatResponse:
    content: str
    tool_calls: list[ToolCall]
    usage: Usage
    model_id: str  # as the provider reported it
    finish_reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def as_message(self) -> Message:
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.as_dict() for call in self.tool_calls]
        return message


def estimate_tokens(text: str) -> int:
    """A rough token count, about four characters a token and at least 1."""
    return max(1, -(-len(text) // 4))


def estimate_request_tokens(request: ChatRequest) -> int:
    """An estimate of what `request` sends: every message, tool call and tool definition."""
    sent = [m["content"] + json.dumps(m.get("tool_calls", [])) for m in request.messages]
    sent += [f"{t.name}{t.description}{json.dumps(t.parameters)}" for t in request.tools]
    return estimate_tokens("".join(sent))


def estimate_usage(request: ChatRequest, content: str, tool_calls: list[ToolCall], *, estimated: bool = True) -> Usage:
    """Usage estimated from the text exchanged, for when a provider reports none (and for the demo)."""
    received = content + "".join(f"{c.name}{json.dumps(c.arguments)}" for c in tool_calls)
    return Usage(
        input_tokens=estimate_request_tokens(request), output_tokens=estimate_tokens(received), estimated=estimated
    )


class ProviderError(Exception):
    """A provider call failed. `type` is one of: timeout, rate_limited, server_error, bad_request,
    authentication, bad_response, connection. `retryable` says whether retrying may help (the
    client has already retried `max_retries` times with backoff when it raises)."""

    def __init__(self, type_: str, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.status = status
        self.retryable = retryable


class ChatClient(Protocol):
    def chat(self, request: ChatRequest) -> ChatResponse: ...
