"""Error pages: JSON `{"error": ...}` under /api/ and /v1/, HTML elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tenants.errors import api_error_response

JSON_PREFIXES = ("/api/", "/v1/")


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(JSON_PREFIXES)


def _page(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    response = TemplateResponse(request, "console/error.html", {"title": title, "message": message}, status=status)
    return response.render()


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return api_error_response(request, 404, "not_found", "Not found.")
    return _page(request, 404, "Not found", "There is nothing here, or it is not yours to see.")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = str(exception) if exception and str(exception) else "You do not have permission to do this."
    if _wants_json(request):
        return api_error_response(request, 403, "permission_denied", message)
    return _page(request, 403, "Not allowed", message)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return api_error_response(request, 400, "bad_request", "Bad request.")
    return _page(request, 400, "Bad request", "The request could not be understood.")


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return api_error_response(request, 500, "server_error", "Internal server error; it has been logged.")
    return _page(request, 500, "Something went wrong", "The error has been logged. Try again in a moment.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _page(
        request, 403, "Form expired", "The form was stale or missing its security token. Reload the page and try again."
    )
