"""Budgets in real Chromium: alice creates a budget, sees it, and its usage bar shows a
reservation an agent client made over the REST API, then its settlement; the spend chart draws
under the CSP; the ledger filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from budgets.models import Budget
from console.tests.test_browser import sign_in
from tenants.models import Scope
from tenants.testing import Cast, make_key

pytestmark = pytest.mark.browser


def test_alice_creates_a_budget_and_its_usage_bar_shows_a_reservation_then_its_settlement(
    page_for: Callable[[], Any], cast: Cast
) -> None:
    alice = page_for()
    sign_in(alice, "alice@acme.test")
    alice.get_by_role("link", name="Budgets").click()
    alice.wait_for_url("**/t/acme/budgets/")
    alice.get_by_text("No budgets yet.").wait_for()
    alice.get_by_role("button", name="New budget").click()
    alice.wait_for_url("**/t/acme/budgets/new/")

    # A limit that is not a number is refused beside the field; then a valid one is accepted.
    alice.get_by_label("Name").fill("Support tokens")
    alice.get_by_label("Period").select_option(label="Day")
    alice.get_by_label("Unit").select_option(label="Tokens")
    alice.get_by_label("Limit").fill("ten thousand")
    alice.get_by_role("button", name="Create budget").click()
    alice.locator("#id_limit_error").get_by_text("Enter a number").wait_for()
    alice.get_by_label("Limit").fill("10000")
    alice.get_by_role("button", name="Create budget").click()
    alice.wait_for_url("**/t/acme/budgets/")
    alice.get_by_text("Budget Support tokens was created.").wait_for()
    card = alice.locator('article[data-budget="Support tokens"]')
    assert card.get_by_test_id("used-pct").inner_text() == "0%"
    assert card.get_by_test_id("limit").inner_text() == "10,000 tokens"
    assert Budget.objects.get(tenant=cast.acme, name="Support tokens").limit == 10_000

    # An agent client reserves 2,000 tokens' worst case over the REST API: the bar shows it reserved.
    _, key = make_key(cast.acme, [Scope.BUDGETS_RESERVE], name="agent client")
    bearer = {"Authorization": f"Bearer {key}"}
    reserved = alice.request.post(
        "/api/v1/reservations",
        headers=bearer,
        data={"model": "default", "input_tokens": 1_500, "max_output_tokens": 500, "end_user_id": "customer-1"},
    )
    assert reserved.status == 201, reserved.text()
    alice.reload()
    card = alice.locator('article[data-budget="Support tokens"]')
    assert card.get_by_test_id("reserved").inner_text() == "2,000 tokens"
    assert card.get_by_test_id("settled").inner_text() == "0 tokens"
    assert card.get_by_test_id("used-pct").inner_text() == "20%"
    assert float(card.locator("rect.usage-reserved").get_attribute("width") or 0) == pytest.approx(20.0)

    # It settles for what the call really used: the reservation turns into settled spend.
    settled = alice.request.post(
        f"/api/v1/reservations/{reserved.json()['id']}/settle",
        headers=bearer,
        data={"input_tokens": 1_500, "output_tokens": 100},
    )
    assert settled.status == 200, settled.text()
    alice.reload()
    card = alice.locator('article[data-budget="Support tokens"]')
    assert card.get_by_test_id("settled").inner_text() == "1,600 tokens"
    assert card.get_by_test_id("reserved").inner_text() == "0 tokens"
    assert float(card.locator("rect.usage-settled").get_attribute("width") or 0) == pytest.approx(16.0)

    # The spend chart is drawn by the vendored Chart.js from the data block, and switches view.
    alice.locator("#spend-chart[data-ready=true]").wait_for()
    alice.get_by_role("button", name="By end user").click()
    assert alice.get_by_role("button", name="By end user").get_attribute("aria-pressed") == "true"
    legend = alice.evaluate("Chart.getChart('spend-chart').data.datasets.map(d => d.label)")
    assert legend == ["customer-1"]

    # The ledger shows the reservation and its settlement, and filters by kind.
    alice.get_by_role("link", name="Ledger").click()
    alice.wait_for_url("**/t/acme/budgets/ledger/")
    assert alice.locator("tr[data-entry]").count() == 2
    alice.get_by_label("Kind").select_option(label="Settle")
    alice.get_by_role("button", name="Filter").click()
    alice.wait_for_url("**kind=settle**")
    assert alice.locator("tr[data-entry]").count() == 1
    assert alice.locator("tr[data-entry]").get_attribute("data-kind") == "settle"
