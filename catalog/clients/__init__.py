"""Provider clients: one provider-neutral chat interface over OpenAI-compatible, Anthropic and demo
endpoints. See base.py for the types; `client_for(config)` returns the client for a provider."""

from __future__ import annotations

import httpx

from catalog.clients.anthropic import AnthropicClient
from catalog.clients.base import (
    ChatClient,
    ChatRequest,
    ChatResponse,
    Message,
    ProviderConfig,
    ProviderError,
    ToolCall,
    ToolSpec,
    Usage,
)
from catalog.clients.demo import DemoClient
from catalog.clients.openai_compatible import OpenAICompatibleClient


def client_for(config: ProviderConfig, *, http: httpx.Client | None = None) -> ChatClient:
    """The client for `config.kind`. Without `http`, HTTP clients share the process's connection pool.
    Calls are synchronous and retry as `config.max_retries` says (see transport.post_json)."""
    if config.kind == "demo":
        return DemoClient()
    if config.kind == "openai_compatible":
        return OpenAICompatibleClient(config, http=http)
    if config.kind == "anthropic":
        return AnthropicClient(config, http=http)
    raise ValueError(f"unknown provider kind {config.kind!r}")


__all__ = [
    "AnthropicClient",
    "ChatClient",
    "ChatRequest",
    "ChatResponse",
    "DemoClient",
    "Message",
    "OpenAICompatibleClient",
    "ProviderConfig",
    "ProviderError",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "client_for",
]
