"""Error pages: JSON `{"error": ...}` under /api/ and /v1/, HTML elsewhere."""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
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


# Seconds a client is told to wait when the database is unreachable (a restart takes a few).
DATABASE_RETRY_AFTER = 2


def server_error(request: HttpRequest) -> HttpResponse:
    """500, or 503 `unavailable` with Retry-After when what failed was reaching the database (it is
    restarting or the connection died): the transaction was rolled back, and the request may be retried."""
    if isinstance(sys.exc_info()[1], OperationalError | InterfaceError):
        response = unavailable(request)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
    if _wants_json(request):
        return api_error_response(request, 500, "server_error", "Internal server error; it has been logged.")
    return _page(request, 500, "Something went wrong", "The error has been logged. Try again in a moment.")


def unavailable(request: HttpRequest) -> HttpResponse:
    title, message = "Unavailable for a moment", "The database is unavailable for a moment; retry shortly."
    if _wants_json(request):
        return api_error_response(request, 503, "unavailable", message)
    # Rendered without the request: the console's context processors read the database that failed.
    try:
        html: str = render_to_string("console/error.html", {"title": title, "message": message})
    except Exception:  # the page must answer whatever else is broken
        html = f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{message}</p>"
    return HttpResponse(html, status=503)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _page(
        request, 403, "Form expired", "The form was stale or missing its security token. Reload the page and try again."
    )
