"""What the client raises. Every refusal by the console is an `ApiError` carrying the server's
`{"error": {"type", "message", ...}}`: its `type`, `message` and the rest as `details`; the HTTP
status picks the subclass. A decision on an approval that is not "approved" is an `ApprovalError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aoc_client.models import Approval


class ConsoleError(Exception):
    """Anything this client raises about the console."""


class ConnectionFailedError(ConsoleError):
    """The console could not be reached, or did not answer in time (the httpx error is the cause)."""


class ApiError(ConsoleError):
    """The console refused a request: `status`, the error's `type` and `message` as the server
    wrote them, and its other fields in `details` (e.g. `fields` of a validation error)."""

    def __init__(self, status: int, type: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {type}: {message}")
        self.status = status
        self.type = type
        self.message = message
        self.details: dict[str, Any] = details or {}


class ValidationError(ApiError):
    """400: the request was invalid; `fields` maps each bad field to its messages."""

    @property
    def fields(self) -> dict[str, Any]:
        fields = self.details.get("fields")
        return fields if isinstance(fields, dict) else {}


class AuthenticationError(ApiError):
    """401: no key, a wrong key, or a revoked or expired one."""


class PermissionDeniedError(ApiError):
    """403: the key lacks a scope, or the tenant is suspended."""


class NotFoundError(ApiError):
    """404: no such object for this key's tenant."""


class ConflictError(ApiError):
    """409: e.g. a reservation settled twice, an approval decided twice."""


class BudgetExceededError(ApiError):
    """402: a budget has no room. `details` names it: budget, budget_name, scope, scope_value,
    limit, used, reserved, requested, remaining, unit, resets_at."""

    @property
    def budget_name(self) -> str:
        return str(self.details.get("budget_name", ""))


class RateLimitedError(ApiError):
    """429: the key's rate limit, or its cap on waiting long-polls; retry after `retry_after` s."""

    @property
    def retry_after(self) -> float:
        try:
            return float(self.details.get("retry_after", 1))
        except (TypeError, ValueError):
            return 1.0


class ServerError(ApiError):
    """5xx: the console failed (503 `unavailable` is worth retrying)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: BudgetExceededError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}


def api_error(status: int, type: str, message: str, details: dict[str, Any] | None = None) -> ApiError:
    """The ApiError subclass for `status` (a 400 of another type than validation is still a
    ValidationError: the request was wrong)."""
    cls = ServerError if status >= 500 else _BY_STATUS.get(status, ApiError)
    return cls(status, type, message, details)


class ApprovalError(ConsoleError):
    """The approval request did not end `approved`; `approval` is its final state."""

    def __init__(self, message: str, approval: Approval) -> None:
        super().__init__(message)
        self.approval = approval


class ApprovalRejectedError(ApprovalError):
    """A reviewer rejected the action; `comment` is their note (a rejection always has one)."""

    @property
    def comment(self) -> str:
        return self.approval.note

    @property
    def decided_by(self) -> str:
        return self.approval.decided_by


class ApprovalExpiredError(ApprovalError):
    """Nobody decided before the request expired (never a human rejection)."""


class ApprovalCancelledError(ApprovalError):
    """The request was withdrawn (its run ended, or its requester cancelled it)."""


class ApprovalTimeoutError(ApprovalError, TimeoutError):
    """This client stopped waiting (`wait_timeout`) while the request was still pending."""


class GuardrailBlockedError(ConsoleError):
    """`Verdict.raise_for_block()`: the guardrails blocked the content or asked for approval."""

    def __init__(self, verdict: Any) -> None:
        super().__init__(f"guardrail {verdict.action}: {verdict.reason or 'blocked'}")
        self.verdict = verdict
