"""What the synchronous and the asynchronous client share: settings, request bodies, reading
answers and errors, approval outcomes, and binding a function's arguments for an approval."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any

import httpx

from aoc_client.errors import (
    ApiError,
    ApprovalCancelledError,
    ApprovalError,
    ApprovalExpiredError,
    ApprovalRejectedError,
    ConsoleError,
    RateLimitedError,
    ServerError,
    api_error,
)
from aoc_client.models import Approval, Usage

DEFAULT_TIMEOUT = 30.0
# The longest `wait` the console's long-poll accepts (approvals/longpoll.MAX_WAIT_SECONDS).
MAX_WAIT_SECONDS = 60.0
# A long-poll's read timeout is its wait plus this much.
WAIT_SLACK_SECONDS = 15.0
# Consecutive connection failures a wait for a decision survives (with backoff) before it raises.
WAIT_RETRIES = 4
USER_AGENT = "aoc-client-python/0.1.0"


def settings(url: str | None, key: str | None) -> tuple[str, str]:
    """The console's base URL (no trailing slash) and the API key, from the arguments or else the
    AOC_URL and AOC_API_KEY environment variables."""
    url = url or os.environ.get("AOC_URL", "")
    key = key or os.environ.get("AOC_API_KEY", "")
    if not url:
        raise ValueError("Console needs the console's URL (or AOC_URL in the environment).")
    if not key:
        raise ValueError("Console needs an API key (or AOC_API_KEY in the environment).")
    return url.rstrip("/"), key


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Accept": "application/json", "User-Agent": USER_AGENT}


def wait_timeout(wait: float) -> httpx.Timeout:
    """The HTTP timeout of a long-poll that the server may hold `wait` seconds."""
    return httpx.Timeout(DEFAULT_TIMEOUT, read=wait + WAIT_SLACK_SECONDS)


def read(response: httpx.Response) -> Any:
    """The JSON of a successful answer, or the ApiError the console's error body describes."""
    if response.is_success:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "invalid_response", "The console answered no JSON.") from exc
    raise error_of(response)


def error_of(response: httpx.Response) -> ApiError:
    """`{"error": {"type", "message", ...}}` as an ApiError subclass; an answer of another shape
    (a proxy's HTML page) keeps the start of its text as the message."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        details = {k: v for k, v in error.items() if k not in ("type", "message")}
        if "retry_after" not in details and (retry := response.headers.get("Retry-After")):
            details["retry_after"] = retry
        return api_error(status, str(error.get("type") or "error"), str(error.get("message") or ""), details)
    text = " ".join(response.text.split())[:300]
    return api_error(status, "http_error", text or response.reason_phrase or f"HTTP {status}")


def retry_delay(error: ApiError) -> float | None:
    """Seconds to wait before asking again after `error`, or None when it is not worth it: a rate
    limit, or the long-poll's 503 `unavailable` (the channel layer failed)."""
    if isinstance(error, RateLimitedError):
        return max(error.retry_after, 0.1)
    if isinstance(error, ServerError) and error.status == 503:
        try:
            return max(float(error.details.get("retry_after", 1)), 0.1)
        except (TypeError, ValueError):
            return 1.0
    return None


def approval_body(
    *,
    action: str,
    arguments: Mapping[str, Any],
    risk: str,
    reason: str,
    context: Mapping[str, Any] | None,
    expires_in: int | None,
    run: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"action": action, "arguments": dict(arguments), "risk": risk, "reason": reason}
    if context is not None:
        body["context"] = dict(context)
    if expires_in is not None:
        body["expires_in"] = expires_in
    if run is not None:
        body["run"] = run
    return body


def outcome(approval: Approval) -> Approval:
    """`approval` when approved; else the ApprovalError for how it ended."""
    if approval.status == "approved":
        return approval
    if approval.status == "rejected":
        who = approval.decided_by or "a reviewer"
        raise ApprovalRejectedError(f"{approval.action} was rejected by {who}: {approval.note}", approval)
    if approval.status == "expired":
        raise ApprovalExpiredError(f"{approval.action}: the approval request expired without a decision.", approval)
    if approval.status == "cancelled":
        raise ApprovalCancelledError(f"{approval.action}: the approval request was cancelled.", approval)
    raise ApprovalError(f"{approval.action}: the approval request is {approval.status}.", approval)


def reservation_body(
    *,
    model: str,
    max_output_tokens: int,
    input_tokens: int | None,
    input_text: str | None,
    end_user_id: str | None,
    session_id: str | None,
    agent: str | None,
) -> dict[str, Any]:
    if input_tokens is None and input_text is None:
        raise ValueError("reserve() needs input_tokens or input_text.")
    body: dict[str, Any] = {"model": model, "max_output_tokens": max_output_tokens}
    if input_tokens is not None:
        body["input_tokens"] = input_tokens
    if input_text is not None:
        body["input_text"] = input_text
    for name, value in (("end_user_id", end_user_id), ("session_id", session_id), ("agent", agent)):
        if value is not None:
            body[name] = value
    return body


def worst_case(state: dict[str, Any]) -> Usage:
    """The usage a reservation was made for (its input and the whole output bound), flagged as an
    estimate: what a body that reported nothing is settled at."""
    return Usage(
        input_tokens=int(state.get("input_tokens") or 0),
        output_tokens=int(state.get("max_output_tokens") or 0),
        estimated=True,
    )


def check_body(
    *,
    stage: str,
    text: str | None,
    tool: str | None,
    arguments: Mapping[str, Any] | None,
    result: Any,
    agent: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"stage": stage}
    if text is not None:
        body["text"] = text
    if tool is not None:
        body["tool"] = tool
    if arguments is not None:
        body["arguments"] = dict(arguments)
    if result is not None:
        body["result"] = result
    if agent is not None:
        body["agent"] = agent
    return body


# --- Binding a decorated function's arguments --------------------------------------------------


class Binding:
    """How a function decorated with require_approval turns a call into the arguments a reviewer
    sees (a JSON object by parameter name, defaults filled in) and back into a call with the
    approved ones. `exclude` names parameters passed through unseen (by default self and cls)."""

    def __init__(self, fn: Callable[..., Any], exclude: Collection[str]) -> None:
        self.signature = inspect.signature(fn)
        self.exclude = frozenset(exclude)
        kinds = {p.kind for p in self.signature.parameters.values()}
        if inspect.Parameter.VAR_POSITIONAL in kinds:
            raise TypeError(f"require_approval cannot name the arguments of {fn.__qualname__}: it takes *args.")
        self.name = fn.__qualname__

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[inspect.BoundArguments, dict[str, Any]]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        shown: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if name in self.exclude:
                continue
            if self.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                shown.update(value)
            else:
                shown[name] = value
        try:
            json.dumps(shown)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"require_approval: the arguments of {self.name} must be JSON ({exc}).") from exc
        return bound, shown

    def call_args(self, bound: inspect.BoundArguments, approved: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments for the call with `approved` (an edit may change any
        value; a parameter it leaves out takes its default)."""
        params = self.signature.parameters
        named = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
        has_var_keyword = len(named) < len(params)
        unknown = sorted(set(approved) - named)
        if unknown and not has_var_keyword:
            raise ConsoleError(f"The approved arguments name {', '.join(unknown)}, which {self.name} does not take.")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, param in params.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                source = bound.arguments.get(name, {}) if name in self.exclude else {k: approved[k] for k in unknown}
                kwargs.update(source)
                continue
            if name in self.exclude:
                value = bound.arguments[name]
            elif name in approved:
                value = approved[name]
            elif param.default is not inspect.Parameter.empty:
                value = param.default
            else:
                raise ConsoleError(f"The approved arguments leave out {name}, which {self.name} needs.")
            if param.kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[name] = value
        return args, kwargs
