"""An admin's journey through evals in real Chromium, with a real (in-process) Celery worker:
alice opens the demo suite from the navigation, runs it, and watches the run page fill in live."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app
from console.tests.test_browser import sign_in
from tenants.testing import Cast

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_alice_runs_the_demo_suite_and_watches_its_progress_live(
    celery_queue: None, page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    page = page_for()
    sign_in(page, "alice@acme.test")
    page.get_by_role("link", name="Evals").click()
    page.get_by_role("link", name="Support agent: the ten must-dos").click()
    assert page.locator("#cases tbody tr").count() == 10

    page.get_by_role("button", name="Run the suite").click()
    page.wait_for_url(re.compile(r"/t/acme/evals/runs/[0-9a-f-]{36}/$"))
    page.wait_for_selector('#live-status[data-state="open"]')
    assert page.get_by_test_id("eval-run-status").get_attribute("data-status") == "queued"
    assert page.get_by_test_id("eval-run-progress").inner_text() == "0/10"

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        page.wait_for_selector('[data-testid="eval-run-status"][data-status="succeeded"]', timeout=90_000)

    # Never reloaded: the totals and each case's verdicts came over the websocket.
    assert page.get_by_test_id("eval-run-progress").inner_text() == "10/10"
    assert page.get_by_test_id("eval-run-passed").inner_text() == "10"
    assert page.locator('article.eval-result[data-status="passed"]').count() == 10
    refusal = page.locator('article[data-result="Refuses an injected instruction"]')
    assert "a guardrail blocked the run" in refusal.inner_text()
    assert page.get_by_role("button", name="Cancel run").count() == 0
