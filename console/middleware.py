"""What every console page shares around the view: the tenant's time zone, and flash messages on
htmx answers.

- The tenant's time zone is active for the request, so every time a page prints (`|date`,
  `{% when %}`, form input) follows one rule: the tenant's zone, UTC outside a tenant.
- A view's `messages.success(...)` reaches the reader after an htmx action too: a fragment answer
  carries the pending messages in a `<template data-flash>`, which console.js moves into
  `#messages` as the answer arrives and again once the swap settles (full pages render them
  themselves); read off the answer too because a live update may have detached the target first.
  Not an out-of-band swap: htmx looks its target up from the requesting element, and when a live
  update has replaced that element meanwhile it finds none and logs an error. Redirects and
  HX-Redirect answers keep their messages for the page they lead to. Placed after
  TenantMiddleware, which sets `request.tenant` in its process_view.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone


class ConsoleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.get_response(request)
        finally:
            timezone.deactivate()
        return self._flash(request, response)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> None:
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            try:
                timezone.activate(zoneinfo.ZoneInfo(tenant.timezone))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                timezone.deactivate()

    def _flash(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        htmx = getattr(request, "htmx", None)
        if not htmx or htmx.boosted or response.streaming or not 200 <= response.status_code < 300:
            return response
        if not response.get("Content-Type", "").startswith("text/html") or response.status_code in (204, 286):
            return response
        if any(header in response for header in ("HX-Redirect", "HX-Location", "HX-Refresh")):
            return response
        storage = getattr(request, "_messages", None)
        if storage is None or storage.used:
            return response
        pending = list(messages.get_messages(request))  # marks them shown
        if not pending:
            return response
        html = render_to_string("console/_messages.html", {"messages": pending})
        # A <template> may follow any fragment, a table row included.
        response.content = response.content + f"<template data-flash>{html}</template>".encode()
        return response
