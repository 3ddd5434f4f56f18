"""Model control in real Chromium: alice adds a model, requests a pin change and approves it;
bob (a reviewer) can read the request but cannot decide it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog import selectors, services
from catalog.demo import DEMO_MODEL_ID
from catalog.models import PinChange, Provider
from console.tests.test_browser import sign_in
from tenants.audit import Actor
from tenants.models import AuditEvent
from tenants.testing import Cast

pytestmark = pytest.mark.browser


def test_alice_pins_a_new_model_through_a_reviewed_change_and_bob_cannot_approve_it(
    page_for: Callable[[], Any], cast: Cast
) -> None:
    services.provider_create(
        actor=Actor.system_actor("tests"),
        tenant=cast.acme,
        name="openai",
        kind=Provider.Kind.OPENAI_COMPATIBLE,
        api_key="sk-browser-secret",
    )
    alice = page_for()
    sign_in(alice, "alice@acme.test")
    alice.get_by_role("link", name="Models").click()
    alice.wait_for_url("**/t/acme/models/")
    assert "sk-browser-secret" not in alice.content()

    # A floating name is refused beside the field, then the dated snapshot is accepted.
    alice.locator("#model-form select[name=provider]").select_option(label="openai")
    alice.get_by_label("Model id").fill("gpt-4o")
    alice.locator("#model-form input[name=input_price]").fill("2.50")
    alice.locator("#model-form input[name=output_price]").fill("10.00")
    alice.get_by_label("Context window (tokens)").fill("128000")
    alice.get_by_label("Max output tokens").fill("16384")
    alice.get_by_role("button", name="Add model").click()
    alice.get_by_text("is not a dated snapshot").wait_for()
    alice.get_by_label("Model id").fill("gpt-4o-2024-08-06")
    alice.get_by_role("button", name="Add model").click()
    alice.get_by_text("Model gpt-4o-2024-08-06 was added").wait_for()
    assert alice.locator('tr[data-model="gpt-4o-2024-08-06"]').inner_text().count("$") == 2

    # Request the change, with a reason.
    alice.get_by_role("link", name="Pins and changes").click()
    alice.wait_for_url("**/t/acme/pins/")
    alice.get_by_label("Alias").fill("default")
    alice.get_by_label("Pin to model").select_option(label="gpt-4o-2024-08-06 (openai)")
    alice.get_by_label("Reason").fill("Passes the support eval set at lower latency")
    alice.get_by_role("button", name="Request change").click()
    alice.get_by_text("Change of default to gpt-4o-2024-08-06 requested").wait_for()
    pending = alice.locator('tr[data-change="default"]')
    assert "Passes the support eval set" in pending.inner_text()
    assert alice.locator('tr[data-pin="default"] [data-testid=pinned-model]').inner_text() == DEMO_MODEL_ID
    change = PinChange.objects.get(tenant=cast.acme, status=PinChange.Status.PENDING)

    # Bob, a reviewer, sees the request but has no way to decide it, and a forged post is refused.
    bob = page_for()
    sign_in(bob, "bob@acme.test")
    bob.goto(f"/t/acme/pins/changes/{change.pk}/")
    assert bob.get_by_test_id("change-status").inner_text() == "Pending"
    assert bob.get_by_text("A tenant admin decides this request.").is_visible()
    assert bob.get_by_role("button", name="Approve and apply").count() == 0
    csrf = next(c["value"] for c in bob.context.cookies() if c["name"] == "csrftoken")
    forged = bob.request.post(
        f"/t/acme/pins/changes/{change.pk}/decide/", form={"approve": "1"}, headers={"X-CSRFToken": csrf}
    )
    assert forged.status == 403
    change.refresh_from_db()
    assert change.is_open

    # Alice approves from the pins page; the pin moves and its history shows the change.
    pending.get_by_label("Decision note for default").fill("evals attached")
    pending.get_by_role("button", name="Approve").click()
    alice.get_by_text("Approved: default now points at gpt-4o-2024-08-06").wait_for()
    assert alice.locator('tr[data-pin="default"] [data-testid=pinned-model]').inner_text() == "gpt-4o-2024-08-06"
    assert alice.locator('tr[data-change="default"]').count() == 0
    history = alice.locator('details[data-history="default"]')
    assert "(2 changes)" in history.inner_text()
    history.locator("summary").click()
    assert "gpt-4o-2024-08-06" in history.inner_text() and "evals attached" in history.inner_text()
    assert selectors.pinned_model(tenant=cast.acme, alias="default").model_id == "gpt-4o-2024-08-06"
    assert AuditEvent.objects.filter(tenant=cast.acme, action="pin_change.approve", actor_user=cast.alice).exists()

    # Bob, reloading, sees the decision and who made it.
    bob.reload()
    assert bob.get_by_test_id("change-status").inner_text() == "Approved and applied"
    assert "alice@acme.test" in bob.locator("main").inner_text()
