"""Provider clients: one provider-neutral chat interface over OpenAI-compatible, Anthropic and demo
endpoints. See base.py for the types; `client_for(config)` returns the client for a provider."""

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

__all__ = [
    "ChatClient",
    "ChatRequest",
    "ChatResponse",
    "Message",
    "ProviderConfig",
    "ProviderError",
    "ToolCall",
    "ToolSpec",
    "Usage",
]
