"""Gateway errors in the shape the provider SDKs parse: OpenAI's `{"error": {"message", "type",
"code", "param"}}` on the OpenAI endpoints, Anthropic's `{"type": "error", "error": {"type",
"message"}}` on /v1/messages, with statuses the SDKs handle as they should (a hard stop is never
one they retry: `x-should-retry: false`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Shape = Literal["openai", "anthropic"]

# OpenAI's error `type` for each status (what its SDK and servers use).
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
}
# Anthropic's error `type` for each status.
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


@dataclass
class GatewayError(Exception):
    """A refusal or failure answered to the client. `code` is ours (budget_exceeded,
    guardrail_blocked, model_not_found, …); `retry_after` adds a Retry-After header; `retry` False
    adds `x-should-retry: false` (every hard stop); `extra` joins the error object (a budget's
    figures, a guardrail's findings)."""

    status: int
    code: str
    message: str
    param: str | None = None
    retry_after: float | None = None
    retry: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def body(self, shape: Shape = "openai") -> dict[str, Any]:
        if shape == "anthropic":
            return {
                "type": "error",
                "error": {"type": ANTHROPIC_TYPES.get(self.status, "api_error"), "message": self.message, **self.extra},
            }
        error = {
            "message": self.message,
            "type": OPENAI_TYPES.get(self.status, "api_error"),
            "code": self.code,
            "param": self.param,
            **self.extra,
        }
        return {"error": error}

    def headers(self) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if self.retry_after is not None:
            out.append((b"retry-after", str(max(1, round(self.retry_after))).encode()))
        if not self.retry:
            out.append((b"x-should-retry", b"false"))
        if self.status == 401:
            out.append((b"www-authenticate", b'Bearer realm="gateway"'))
        return out


def invalid(message: str, *, param: str | None = None, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, code, message, param=param)
