"""Two reviewers in real Chromium, each in their own browser context: a request appears on both
queues without a reload, the navigation badge counts it, and when one reviewer decides it leaves
the other's screen. A reviewer tells requests apart in the queue and decides the right one with
explicit buttons, under DEBUG as under `make run`."""

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

    alice.locator(f"#approval-{approval.pk} a", has_text="refund_order").click()
    alice.wait_for_url(f"**/t/acme/approvals/{approval.pk}/")
    assert "[U+200B]" in alice.get_by_test_id("approval-arguments").inner_text()
    alice.get_by_label("Comment").fill("Customer sent photos")
    alice.get_by_test_id("decide-approve").click()
    alice.get_by_test_id("decide-confirm-approve").click()
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


def test_a_reviewer_under_debug_decides_the_right_refund_from_the_queue_with_explicit_buttons(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str, settings: Any
) -> None:
    settings.DEBUG = True  # as under `make run`: a 4xx fragment must still stay inside its form
    actor = Actor.system_actor("support bot")

    def ask(order: str, reason: str) -> ApprovalRequest:
        return services.approval_request_create(
            actor=actor,
            tenant=cast.acme,
            action="refund_order",
            arguments={"order_number": order, "reason": reason},
            risk="irreversible",
            reason="irreversible",
        ).approval

    a1003, a1004, again = ask("A-1003", "Wrong size"), ask("A-1004", "Keys stick"), ask("A-1004", "Keys stick")
    bob = page_for()
    sign_in(bob, "bob@acme.test")
    bob.goto("/t/acme/approvals/")
    bob.wait_for_selector('#live-status[data-state="open"]')

    # Rows differ at a glance: id, order, amount and customer; the two A-1004 requests are one group.
    row_1003 = bob.locator(f"#approval-{a1003.pk}")
    assert "refund $124.00 on A-1003 to amara.okafor@example.com" in row_1003.inner_text()
    group = bob.locator('[data-testid="approval-group"][data-count="2"]')
    assert "2 requests for the same call" in group.inner_text() and "A-1004" in group.inner_text()
    assert group.locator('[data-testid="approval-row"]').count() == 2
    assert bob.get_by_test_id("bulk-controls").is_visible()

    bob.locator(f"#approval-{a1004.pk} a", has_text="refund_order").click()
    bob.wait_for_url(f"**/t/acme/approvals/{a1004.pk}/")
    assert "refund $89.99 on A-1004" in bob.get_by_test_id("approval-summary").inner_text()

    # Enter in the comment decides nothing; Reject without a comment errs inside the form.
    note = bob.get_by_label("Comment")
    note.click()
    note.press("Enter")
    bob.get_by_test_id("decide-reject").click()
    error = bob.locator("#approval-decision").get_by_text("A rejection needs a comment saying why.")
    error.wait_for()
    assert bob.locator("header nav").is_visible() and bob.get_by_test_id("approval-arguments").is_visible()
    assert ApprovalRequest.objects.get(pk=a1004.pk).status == "pending"

    # Approve asks to confirm, naming the action and what it does; nothing is decided before.
    bob.get_by_label("Comment").fill("Photos of the stuck keys received")
    bob.get_by_test_id("decide-approve").click()
    confirm = bob.get_by_test_id("decide-confirm")
    confirm.wait_for()
    assert "Approve refund_order" in confirm.inner_text() and "refund $89.99 on A-1004" in confirm.inner_text()
    assert ApprovalRequest.objects.get(pk=a1004.pk).status == "pending"
    bob.get_by_test_id("decide-confirm-approve").click()
    bob.wait_for_selector('[data-testid="approval-status"][data-status="approved"]')
    decided = ApprovalRequest.objects.get(pk=a1004.pk)
    assert decided.status == "approved" and decided.decision_note == "Photos of the stuck keys received"
    assert ApprovalRequest.objects.get(pk=a1003.pk).status == "pending"

    # Back in the queue, the twin says the same call was just approved, by whom.
    bob.goto("/t/acme/approvals/")
    twin = bob.locator(f"#approval-{again.pk}").locator("..")
    assert "The same call was approved" in twin.inner_text() and "bob@acme.test" in twin.inner_text()

    # Bulk approval first lists what it will approve.
    bob.locator(f"#select-{a1003.pk}").check()
    bob.locator(f"#select-{again.pk}").check()
    bob.get_by_test_id("bulk-approve").click()
    bob.wait_for_url("**/approvals/bulk/")
    items = bob.get_by_test_id("bulk-item")
    assert items.count() == 2 and "A-1003" in items.nth(0).inner_text() and "A-1004" in items.nth(1).inner_text()
    bob.get_by_test_id("bulk-confirm").click()
    bob.wait_for_url("**/t/acme/approvals/")
    assert "Approved 2 refund_order requests" in bob.locator("#messages").inner_text()
    bob.locator("#queue-empty").wait_for()
    assert bob.get_by_test_id("bulk-controls").is_hidden()
