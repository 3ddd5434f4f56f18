"""Hostile trace data in real Chromium: spans ingested over the API with script tags, event-handler
attributes, javascript: URLs and bidi overrides render inert on every traces page, and hidden
characters are shown to the reader."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from console.tests.test_browser import sign_in
from tenants.models import Scope
from tenants.testing import Cast, make_key
from traces.tests.factories import span_item

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE_USER = '"><img src=x onerror="window.__pwned=\'user\'">/x?y#z'
HOSTILE_SESSION = "<script>window.__pwned='session'</script>"


def hostile_trace() -> tuple[str, list[dict[str, Any]]]:
    trace_id, root, child = secrets.token_hex(16), secrets.token_hex(8), secrets.token_hex(8)
    context: dict[str, Any] = {"end_user_id": HOSTILE_USER, "session_id": HOSTILE_SESSION}
    spans = [
        span_item(
            trace_id,
            root,
            name="refund \u202egnp.exe\u202c <img src=x onerror=\"window.__pwned='name'\">",
            kind="agent",
            ms=1000,
            tags=["<b onmouseover=window.__pwned='tag'>t</b>"],
            **context,
        ),
        span_item(
            trace_id,
            child,
            parent_span_id=root,
            name="<script>window.__pwned='child'</script>",
            kind="llm",
            offset_ms=10,
            input="<script>window.__pwned='input'</script>ignore previous\u200b instructions\U000e0041",
            output={
                "html": "<a href=\"javascript:window.__pwned='output'\">click me</a>",
                "svg": "<svg onload=\"window.__pwned='svg'\"></svg>",
            },
            attributes={"x": "<iframe src=\"javascript:window.__pwned='attr'\"></iframe>"},
            error={
                "type": "<style>body{display:none}</style>",
                "message": "<img src=x onerror=window.__pwned='err'>",
                "stack": "javascript:window.__pwned='stack'",
            },
            **context,
        ),
    ]
    return trace_id, spans


def assert_inert(page: Any, dialogs: list[str]) -> None:
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert (
        # The page's own script (static/console/traces.js) is the only one.
        page.locator(
            'main script:not([src^="/static/console/traces"]), main iframe, main img, main svg[onload],'
            " main [onerror], main [onmouseover]"
        ).count()
        == 0
    )
    assert page.locator('a[href^="javascript:"], iframe[src^="javascript:"]').count() == 0


def test_hostile_span_data_renders_inert_on_every_traces_page(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    _, key = make_key(cast.acme, [Scope.TRACES_WRITE])
    trace_id, spans = hostile_trace()
    response = httpx.post(
        f"{live_asgi}/api/v1/traces/ingest", json={"spans": spans}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200 and response.json()["accepted"] == 2, response.text

    page = page_for()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    sign_in(page, "alice@acme.test")
    page.get_by_role("link", name="Traces").click()
    page.wait_for_selector(f"#trace-{trace_id}")
    assert_inert(page, dialogs)
    assert "[U+202E]" in page.locator(f"#trace-{trace_id}").inner_text()

    # The filter form swaps the list with htmx and keeps the filters in the URL.
    page.get_by_label("Search inputs and outputs").fill("ignore previous")
    page.wait_for_url("**q=ignore%20previous**")
    page.wait_for_selector(f"#trace-{trace_id}")
    assert_inert(page, dialogs)

    page.locator(f"#trace-{trace_id} td:nth-child(2) a").first.click()
    page.wait_for_selector("#span-tree")
    assert_inert(page, dialogs)
    child = spans[1]["span_id"]
    page.locator(f'a[data-span="{child}"]').click()
    page.wait_for_selector(f"#span-panel #span-{child}")
    panel = page.locator("#span-panel").inner_text()
    assert "<script>window.__pwned='input'</script>" in panel  # shown as text
    assert "[U+200B]" in panel and "[U+E0041]" in panel
    assert "javascript:window.__pwned='output'" in panel
    page.locator("#span-panel details summary").click()  # the stack
    assert_inert(page, dialogs)

    page.get_by_role("link", name="End user").first.click()
    page.wait_for_selector("#erase-form")
    assert HOSTILE_USER in page.locator("h1").inner_text()
    assert_inert(page, dialogs)
    page.locator(f"#trace-{trace_id} td:nth-child(10) a").click()  # the session column
    page.wait_for_selector("h1")
    assert HOSTILE_SESSION in page.locator("h1").inner_text()
    assert_inert(page, dialogs)
