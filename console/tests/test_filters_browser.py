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


def test_a_broken_live_socket_says_so_reconnects_and_refetches(page_for: Callable[[], Any], cast: Cast) -> None:
    import os
    import time

    import redis

    from agents.models import Agent, Run

    page = page_for()
    sign_in(page, "alice@acme.test")
    page.goto("/t/acme/runs/")
    page.locator('#live-status[data-state="open"]').wait_for()
    # A run the page was never told about (no live event): only a refetch can show it.
    agent = Agent.objects.for_tenant(cast.acme).select_related("current_version").get(name="Support agent")
    assert agent.current_version is not None
    missed = Run.objects.create(tenant=cast.acme, agent=agent, agent_version=agent.current_version, input="missed")
    assert page.locator(f"#run-{missed.pk}").count() == 0

    # Redis keeps dropping the socket's blocking read: past its retries, the server closes the socket.
    admin = redis.Redis.from_url(os.environ["REDIS_URL"])
    db = int(admin.connection_pool.connection_kwargs.get("db", 0))
    deadline = time.monotonic() + 15
    while page.get_by_test_id("live-lost").count() == 0 and time.monotonic() < deadline:
        for client in admin.client_list():
            if int(client.get("db", -1)) == db and client.get("cmd", "") in ("bzpopmin", "blpop", "brpop"):
                admin.client_kill_filter(_id=client["id"])
        page.wait_for_timeout(50)

    page.get_by_test_id("live-lost").filter(has_text="reconnecting").wait_for()
    page.locator(f"#run-{missed.pk}").wait_for(timeout=20_000)
    page.locator('#live-status[data-state="open"]').wait_for()
    assert page.get_by_test_id("live-lost").count() == 0
