"""A Python client of the Agent Operations Console for agent code that runs its own tools:
approvals (`require_approval`), budget reservations (`reserve`), guardrail checks (`check`) and
OpenTelemetry export to the console (`instrument`).

    from aoc_client import Console

    console = Console("https://console.example.com", "aoc_...")
"""

from aoc_client.aio import AsyncApprovalGate, AsyncConsole, AsyncReservation
from aoc_client.console import ApprovalGate, Console, Reservation
from aoc_client.errors import (
    ApiError,
    ApprovalCancelledError,
    ApprovalError,
    ApprovalExpiredError,
    ApprovalRejectedError,
    ApprovalTimeoutError,
    AuthenticationError,
    BudgetExceededError,
    ConflictError,
    ConnectionFailedError,
    ConsoleError,
    GuardrailBlockedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    ValidationError,
)
from aoc_client.models import Approval, Finding, ReservationState, Usage, Verdict
from aoc_client.otel import instrument

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "Approval",
    "ApprovalCancelledError",
    "ApprovalError",
    "ApprovalExpiredError",
    "ApprovalGate",
    "ApprovalRejectedError",
    "ApprovalTimeoutError",
    "AsyncApprovalGate",
    "AsyncConsole",
    "AsyncReservation",
    "AuthenticationError",
    "BudgetExceededError",
    "ConflictError",
    "ConnectionFailedError",
    "Console",
    "ConsoleError",
    "Finding",
    "GuardrailBlockedError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "Reservation",
    "ReservationState",
    "ServerError",
    "Usage",
    "ValidationError",
    "Verdict",
    "instrument",
]
