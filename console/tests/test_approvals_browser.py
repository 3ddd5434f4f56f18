"""Two reviewers in real Chromium, each in their own browser context: a request appears on both
queues without a reload, the navigation badge counts it, and when one reviewer decides it leaves
the other's screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from approvals import services
from approvals.models import ApprovalRequest
from console.tests.test_browser import sign_in
from tenants.audit import Actor
from tenants.testing import Cast

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_request_reaches_both_reviewers_live_and_leaves_the_second_when_the_first_decides(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    alice, bob = page_for(), page_for()
    for page, email in ((alice, "alice@acme.test"), (bob, "bob@acme.test")):
        sign_in(page, email)
        page.goto("/t/acme/approvals/")
        page.wait_for_selector('#live-status[data-state="open"]')
        assert page.locator('[data-testid="approval-row"]').count() == 0
        page.wait_for_selector('[data-testid="approvals-badge"][data-count="0"]', state="attached")

    approval = services.approval_request_create(
        actor=Actor.system_actor("support bot"),
        tenant=cast.acme,
        action="refund_order",
        arguments={"order_number": "A-1001", "note": "hidden\u200bchar"},
        risk="irreversible",
        reason="irreversible",
    ).approval

    # Neither page reloads: the row and the badge arrive over each one's websocket.
    for page in (alice, bob):
        page.locator(f"#approval-{approval.pk}").wait_for()
        page.wait_for_selector('[data-testid="approvals-badge"][data-count="1"]', state="attached")
        assert page.locator("#queue-empty").is_hidden()

    alice.locator(f"#approval-{approval.pk} a").click()
    alice.wait_for_url(f"**/t/acme/approvals/{approval.pk}/")
    assert "[U+200B]" in alice.get_by_test_id("approval-arguments").inner_text()
    alice.get_by_label("Decision").select_option("approve")
    alice.get_by_label("Note").fill("Customer sent photos")
    alice.get_by_test_id("decide-submit").click()
    alice.wait_for_selector('[data-testid="approval-status"][data-status="approved"]')

    bob.locator(f"#approval-{approval.pk}").wait_for(state="detached")
    bob.locator("#queue-empty").wait_for()  # the queue is empty again, and says so
    bob.wait_for_selector('[data-testid="approvals-badge"][data-count="0"]', state="attached")
    assert ApprovalRequest.objects.get(pk=approval.pk).decided_by == cast.alice


def test_a_reviewer_on_the_request_page_sees_the_other_reviewers_decision_live(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    bob = page_for()
    sign_in(bob, "bob@acme.test")
    approval = services.approval_request_create(
        actor=Actor.system_actor("support bot"),
        tenant=cast.acme,
        action="delete_account",
        arguments={"user": 7},
        risk="irreversible",
        reason="policy",
    ).approval
    bob.goto(f"/t/acme/approvals/{approval.pk}/")
    bob.wait_for_selector('#live-status[data-state="open"]')

    services.approval_decide(approval=approval, actor=Actor(user=cast.alice), decision="reject", note="Not verified")

    bob.wait_for_selector('[data-testid="approval-status"][data-status="rejected"]')
    assert "alice@acme.test" in bob.locator("#approval-decision").inner_text()
    assert bob.locator("#decide-form").count() == 0
