"""W3C trace context across Celery: a task published while a span is current carries a
`traceparent` header, and the worker makes it current again before the task runs.

A run's own continuity does not depend on it (Run.trace_id is kept on the row, so a resumed run
writes into the same trace); the header lets a task sent from inside a span (a webhook, an
approval callback, a follow-up run) join that trace as the span's child.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

current_span: ContextVar[tuple[str, str] | None] = ContextVar("current_span", default=None)

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def traceparent() -> str | None:
    """The W3C traceparent of the current span, if any."""
    found = current_span.get()
    if not found or not found[1]:
        return None
    return f"00-{found[0]}-{found[1]}-01"


def parse_traceparent(value: Any) -> tuple[str, str] | None:
    match = TRACEPARENT.match(str(value or "").strip().lower())
    return (match.group(1), match.group(2)) if match else None


def inject_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Celery `before_task_publish`: add `traceparent` to the message headers."""
    value = traceparent()
    if value and headers is not None and "traceparent" not in headers:
        headers["traceparent"] = value


def extract_headers(task: Any = None, **_: Any) -> None:
    """Celery `task_prerun`: make the message's `traceparent` the current span context."""
    request = getattr(task, "request", None)
    value = getattr(request, "traceparent", None) or (getattr(request, "headers", None) or {}).get("traceparent")
    current_span.set(parse_traceparent(value))
