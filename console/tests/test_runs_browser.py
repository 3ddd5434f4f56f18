"""The newcomer's journey in real Chromium, with a real Celery worker: alice opens the Support
agent, asks it to refund an order with "Try it", approves the refund it asks a human for, and
watches the run finish live."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from agents.models import DemoEmail, DemoOrder, Run
from approvals.models import ApprovalRequest
from config.celery import app
from console.tests.test_browser import sign_in
from tenants.testing import Cast

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REQUEST = "Please refund order A-1001 and email the customer"


def test_alice_tries_the_support_agent_and_watches_the_run_succeed_live(
    celery_queue: None, page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    page = page_for()
    sign_in(page, "alice@acme.test")
    page.get_by_role("link", name="Agents").click()
    page.get_by_role("link", name="Support agent").click()
    assert page.get_by_test_id("pinned-to").inner_text() == "demo-support-2025-06-01"

    # A second tab watches the runs list.
    runs_list = page.context.new_page()
    runs_list.goto("/t/acme/runs/")
    runs_list.wait_for_selector('#live-status[data-state="open"]')

    # No worker yet: the run waits, queued, while both pages connect to the live socket.
    page.get_by_label("Input").fill(REQUEST)
    page.get_by_role("button", name="Start a run").click()
    page.wait_for_url(re.compile(r"/t/acme/runs/[0-9a-f-]{36}/$"))
    page.wait_for_selector('#live-status[data-state="open"]')
    run = Run.objects.get(tenant=cast.acme)
    assert page.get_by_test_id("run-status").get_attribute("data-status") == "queued"
    assert page.get_by_test_id("run-input").inner_text() == REQUEST
    row = runs_list.locator(f"#run-{run.pk}")
    row.wait_for()  # the new run's row arrived over the websocket
    assert row.get_attribute("data-status") == "queued"

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        # A refund is irreversible: the run pauses for a reviewer, and the worker is free.
        page.wait_for_selector('[data-testid="run-status"][data-status="awaiting_approval"]', timeout=30_000)
        runs_list.wait_for_selector(f'#run-{run.pk}[data-status="awaiting_approval"]', timeout=10_000)
        approval = ApprovalRequest.objects.get(run=run)
        queue = page.context.new_page()
        queue.goto("/t/acme/approvals/")
        queue.locator(f"#approval-{approval.pk} a", has_text="refund_order").click()
        assert "A-1001" in queue.get_by_test_id("approval-arguments").inner_text()
        queue.get_by_label("Comment").fill("The customer sent photos")
        queue.get_by_test_id("decide-approve").click()
        queue.get_by_test_id("decide-confirm-approve").click()
        queue.wait_for_selector('[data-testid="approval-status"][data-status="approved"]')
        # The decision re-queues the run, which refunds exactly what was approved and finishes.
        page.wait_for_selector('[data-testid="run-status"][data-status="succeeded"]', timeout=30_000)
        runs_list.wait_for_selector(f'#run-{run.pk}[data-status="succeeded"]', timeout=10_000)

    # The page was never reloaded: what it shows came over the websocket.
    output = page.get_by_test_id("run-output").inner_text()
    assert "refunded" in output.lower() and "emailed" in output.lower()
    assert set(page.get_by_test_id("model-id").all_inner_texts()) == {"demo-support-2025-06-01"}
    steps = page.locator("#run-steps article")
    assert [steps.nth(i).get_attribute("data-kind") for i in range(steps.count())] == [
        "model",
        "tool",
        "model",
        "tool",
        "model",
        "tool",
        "model",
    ]
    assert "A-1001" in page.get_by_test_id("tool-arguments").first.inner_text()
    assert page.get_by_role("button", name="Cancel run").count() == 0

    # The refund ran once and the customer's email is in the outbox, as the demo page shows.
    order = DemoOrder.objects.get(tenant=cast.acme, number="A-1001")
    assert (order.status, order.refund_count) == ("refunded", 1)
    assert DemoEmail.objects.get(tenant=cast.acme).to == "maria.lopez@example.com"
    page.goto("/t/acme/demo/")
    assert page.locator('tr[data-order="A-1001"] [data-testid="refund-count"]').inner_text() == "1"
    assert "maria.lopez@example.com" in page.locator("#demo-outbox").inner_text()


def test_bob_cancels_a_queued_run_from_its_page(page_for: Callable[[], Any], cast: Cast) -> None:
    page = page_for()
    sign_in(page, "bob@acme.test")
    page.goto("/t/acme/agents/")
    page.get_by_role("link", name="Support agent").click()
    page.get_by_label("Input").fill("Where is order A-1002?")
    page.get_by_role("button", name="Start a run").click()  # no worker: the run stays queued
    page.wait_for_url(re.compile(r"/t/acme/runs/[0-9a-f-]{36}/$"))
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_selector('[data-testid="run-status"][data-status="cancelled"]')
    assert page.get_by_role("button", name="Cancel run").count() == 0
    assert Run.objects.get(tenant=cast.acme).status == "cancelled"
