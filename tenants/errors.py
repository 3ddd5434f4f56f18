"""Domain errors raised by services, and the API's single error shape
`{"error": {"type": ..., "message": ..., ...}}` (see tenants.api_errors for the DRF side)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse


class ServiceError(Exception):
    """A refusal by a service that the caller can show to the user as it is."""

    type = "invalid_request"
    status_code = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class ConflictError(ServiceError):
    type = "conflict"
    status_code = 409


class FieldError(ServiceError):
    """A refusal about one input field; the API shows it like a serializer's validation error
    (`fields={field: [message]}`) and a console form shows `detail` next to the field."""

    type = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", fields={field: [message]})
        self.field = field
        self.detail = message


class FieldConflictError(ConflictError):
    """A field whose value clashes with an existing row (a duplicate name): 409, shaped like FieldError."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", fields={field: [message]})
        self.field = field
        self.detail = message


class LastAdminError(ConflictError):
    type = "last_admin"


class TenantSuspendedError(ServiceError):
    type = "tenant_suspended"
    status_code = 403


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, **extra}}


def api_error_response(request: HttpRequest, status_code: int, type_: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(type_, message), status=status_code)


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return api_error_response(request, 404, "not_found", "Not found.")


def json_500(request: HttpRequest) -> JsonResponse:
    return api_error_response(request, 500, "server_error", "Internal server error; it has been logged.")
