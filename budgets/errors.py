"""Refusals of the budget services, in the API's error shape (tenants.errors)."""

from __future__ import annotations

from typing import Any

from tenants.errors import ServiceError


class BudgetExceededError(ServiceError):
    """A block budget has no room for the reservation: 402 with the budget's figures in `extra`
    (budget, scope, scope_value, limit, used, reserved, unit, resets_at)."""

    type = "budget_exceeded"
    status_code = 402


class TokenCapExceededError(ServiceError):
    """The request's input + max output tokens exceed an agent's or API key's per-request cap."""

    type = "token_cap_exceeded"
    status_code = 400


class BudgetFieldError(ServiceError):
    """A refusal about one input field, shown like a serializer's validation error."""

    type = "validation_error"

    def __init__(self, field: str, message: str, **extra: Any) -> None:
        super().__init__(f"{field}: {message}", fields={field: [message]}, **extra)
        self.field = field
        self.detail = message


class DatabaseUnavailableError(ServiceError):
    """The database did not answer (a dropped connection, a restart): 503, retryable, nothing was
    written by the request that got it (`retry_after` in seconds)."""

    type = "unavailable"  # as every API answer while the database is down (console.views.errors)
    status_code = 503
