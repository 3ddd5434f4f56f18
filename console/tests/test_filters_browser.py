"""A bad console filter in real Chromium: the traces page answers `?since=yesterday` (typed into
the filter, sent by htmx) with the message next to the field and no rows, never with everything;
correcting it clears the message and lists the traces again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from console.tests.test_browser import sign_in
from tenants.testing import Cast
from traces.tests.factories import make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_bad_trace_filter_is_shown_next_to_its_field(page_for: Callable[[], Any], cast: Cast) -> None:
    make_trace(cast.acme, name="visible flow")
    page = page_for()
    sign_in(page, "alice@acme.test")
    page.goto("/t/acme/traces/")
    assert page.get_by_text("visible flow").count() == 1

    page.get_by_label("From (ISO time)").fill("yesterday")
    page.get_by_role("button", name="Filter").click()
    error = page.get_by_test_id("filter-error-since")
    error.filter(has_text="is not an ISO 8601 time").wait_for()
    assert page.get_by_text("visible flow").count() == 0
    assert "since=yesterday" in page.url

    page.get_by_label("From (ISO time)").fill("2026-01-01T00:00:00Z")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("visible flow").wait_for()
    assert error.inner_text() == ""

    page.goto("/t/acme/traces/?colour=red")
    assert "'colour' is not a filter of this list" in page.get_by_test_id("filter-errors").inner_text()
