"""Every API error answers `{"error": {"type": ..., "message": ..., ...}}`, whatever raised it: a
service, DRF (validation, 401, 403, 404, 405, 415, 429) or Django itself."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from tenants.errors import ServiceError, error_body

_DRF_TYPES: dict[type[exceptions.APIException], str] = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "parse_error",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def _first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, dict) and detail:
        field, value = next(iter(detail.items()))
        text = _first_message(value)
        return text if field == "non_field_errors" else f"{field}: {text}"
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.type, exc.message, **exc.extra), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.messages)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        type_ = next((t for cls, t in _DRF_TYPES.items() if isinstance(exc, cls)), exc.default_code)
        if isinstance(exc, exceptions.ValidationError):
            body = error_body(type_, _first_message(exc.detail), fields=exc.detail)
        else:
            code = exc.get_codes() if isinstance(exc.detail, str) else None
            if isinstance(code, str) and code not in {exc.default_code, "invalid"} and type_ != "throttled":
                type_ = code
            body = error_body(type_, _first_message(exc.detail))
            wait = getattr(exc, "wait", None)
            if isinstance(exc, exceptions.Throttled) and wait is not None:
                body["error"]["retry_after"] = round(wait)
    elif isinstance(exc, Http404):
        body = error_body("not_found", "Not found.")
    elif isinstance(exc, PermissionDenied):
        body = error_body("permission_denied", "You do not have permission to perform this action.")
    else:
        body = error_body("error", str(exc))
    response.data = body
    return response
