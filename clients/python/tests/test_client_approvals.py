"""require_approval against the live server: the request is created through the REST API, the
client long-polls, and a reviewer decides in another thread, through the service layer (as the
console's pages do) or the REST API (as a reviewer bot would)."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from aoc_client import (
    ApprovalExpiredError,
    ApprovalRejectedError,
    ApprovalTimeoutError,
    AsyncConsole,
    Console,
    NotFoundError,
    ValidationError,
)
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services import approval_decide, approval_expire
from tenants.audit import Actor

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_decorated_function_runs_with_the_arguments_a_reviewer_edited(
    console: Console, setup, live_asgi: str, reviewer_thread
) -> None:
    refunds: list[tuple[str, int, str]] = []

    @console.require_approval(risk="irreversible", reason="policy", context={"ticket": "T-7"})
    def refund_order(order_id: str, amount_cents: int, currency: str = "EUR") -> str:
        refunds.append((order_id, amount_cents, currency))
        return f"refunded {amount_cents} {currency} on {order_id}"

    def edit_through_the_api(row: ApprovalRequest) -> None:
        answer = httpx.post(
            f"{live_asgi}/api/v1/approvals/{row.pk}/decision",
            json={"decision": "edit", "arguments": {**row.arguments, "amount_cents": 2500}, "note": "half of it"},
            headers={"Authorization": f"Bearer {setup.reviewer_key}"},
        )
        assert answer.status_code == 200, answer.text

    reviewed = reviewer_thread(setup.tenant, edit_through_the_api)
    started = time.monotonic()
    result = refund_order("A-1001", 5000)
    waited = time.monotonic() - started

    assert result == "refunded 2500 EUR on A-1001"
    assert refunds == [("A-1001", 2500, "EUR")]
    row = reviewed.result(timeout=30)
    assert row.status == "approved" and row.action == "refund_order" and row.risk == "irreversible"
    # The reviewer saw every argument, the default included, and what the client sent as context.
    assert row.arguments == {"order_id": "A-1001", "amount_cents": 5000, "currency": "EUR"}
    assert row.edited_arguments == {"order_id": "A-1001", "amount_cents": 2500, "currency": "EUR"}
    assert row.context == {"ticket": "T-7"}
    # Woken by the decision's push, not by the end of a 60 s long-poll.
    assert waited < 10


def test_a_rejection_raises_with_the_reviewers_comment(console: Console, setup, reviewer_thread) -> None:
    def reject(row: ApprovalRequest) -> None:
        approval_decide(
            approval=row,
            actor=Actor(user=setup.reviewer),
            decision="reject",
            note="Refunds above 40 EUR go through finance.",
        )

    reviewer_thread(setup.tenant, reject)
    ran = []
    with pytest.raises(ApprovalRejectedError) as raised:  # noqa: SIM117 (the raise is the point)
        with console.require_approval("refund_order", {"order_id": "A-1002", "amount_cents": 9000}) as approval:
            ran.append(approval)

    assert ran == []
    assert raised.value.comment == "Refunds above 40 EUR go through finance."
    assert raised.value.decided_by == setup.reviewer.email
    assert raised.value.approval.status == "rejected"
    assert "Refunds above 40 EUR go through finance." in str(raised.value)


def test_the_context_manager_hands_back_the_approved_arguments(console: Console, setup, reviewer_thread) -> None:
    reviewer_thread(
        setup.tenant, lambda row: approval_decide(approval=row, actor=Actor(user=setup.reviewer), decision="approve")
    )

    with console.require_approval("send_email", {"to": "customer@example.com"}, risk="write") as approval:
        sent = approval.arguments

    assert sent == {"to": "customer@example.com"}
    assert approval.status == "approved" and not approval.edited
    assert approval.decided_by == setup.reviewer.email


def test_expiry_raises_its_own_exception_not_a_rejection(console: Console, setup, reviewer_thread) -> None:
    def expire(row: ApprovalRequest) -> None:
        # What beat's sweep does once the expiry has passed (moved into the past instead of waiting).
        ApprovalRequest.objects.for_tenant(setup.tenant).filter(pk=row.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert approval_expire(approval=row)

    reviewer_thread(setup.tenant, expire)
    with pytest.raises(ApprovalExpiredError) as raised:
        console.request_approval("delete_account", {"account": "acct-9"}, risk="irreversible", expires_in=10)

    assert not isinstance(raised.value, ApprovalRejectedError)
    assert raised.value.approval.status == "expired"
    assert raised.value.approval.decided_by == "expiry"  # no human decided


def test_a_client_that_stops_waiting_leaves_the_request_pending(console: Console, setup) -> None:
    started = time.monotonic()
    with pytest.raises(ApprovalTimeoutError) as raised:
        console.request_approval("close_ticket", {"ticket": "T-1"}, wait_timeout=1.0)

    assert 0.9 < time.monotonic() - started < 8
    assert raised.value.approval.status == "pending"
    assert ApprovalRequest.objects.for_tenant(setup.tenant).get(pk=raised.value.approval.id).status == "pending"


def test_server_refusals_carry_the_servers_message(console: Console) -> None:
    with pytest.raises(ValidationError) as invalid:
        console.create_approval("refund_order", {"order_id": "A-1"}, risk="catastrophic")
    assert invalid.value.status == 400
    assert "risk" in invalid.value.fields
    assert "catastrophic" in invalid.value.message

    with pytest.raises(NotFoundError) as missing:
        console.get_approval("0193a0c4-0000-7000-8000-000000000000")
    assert (missing.value.status, missing.value.type, missing.value.message) == (404, "not_found", "Not found.")


def test_a_decorated_method_does_not_send_self(console: Console, setup, reviewer_thread) -> None:
    class Shop:
        def __init__(self) -> None:
            self.cancelled: list[str] = []

        @console.require_approval(risk="write")
        def cancel(self, order_id: str) -> None:
            self.cancelled.append(order_id)

    reviewer_thread(
        setup.tenant, lambda row: approval_decide(approval=row, actor=Actor(user=setup.reviewer), decision="approve")
    )
    shop = Shop()
    shop.cancel("A-1003")

    assert shop.cancelled == ["A-1003"]
    assert ApprovalRequest.objects.for_tenant(setup.tenant).get().arguments == {"order_id": "A-1003"}


def test_the_sync_decorator_refuses_a_coroutine_function(console: Console) -> None:
    async def pay() -> None:
        return None

    with pytest.raises(TypeError, match="AsyncConsole"):
        console.require_approval()(pay)


async def test_the_async_client_waits_and_hands_back_the_edit(
    async_console: AsyncConsole, setup, reviewer_thread
) -> None:
    def edit(row: ApprovalRequest) -> None:
        approval_decide(
            approval=row, actor=Actor(user=setup.reviewer), decision="edit", arguments={"order_id": "A-2", "qty": 1}
        )

    @async_console.require_approval
    async def reorder(order_id: str, qty: int) -> tuple[str, int]:
        return order_id, qty

    reviewed = reviewer_thread(setup.tenant, edit)
    async with async_console:
        assert await reorder("A-2", qty=40) == ("A-2", 1)
    assert reviewed.result(timeout=30).status == "approved"


def test_a_rate_limited_wait_is_waited_out_not_raised(console: Console, settings) -> None:
    # A key at its cap of waiting long-polls gets 429 with retry_after=1: the client asks again.
    settings.APPROVAL_MAX_WAITERS_PER_KEY = 0
    started = time.monotonic()
    with pytest.raises(ApprovalTimeoutError) as raised:
        console.request_approval("close_ticket", {"ticket": "T-2"}, wait_timeout=2.5)

    assert time.monotonic() - started >= 2.4
    assert raised.value.approval.status == "pending"
