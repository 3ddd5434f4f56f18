"""Approvals end to end with a real Celery worker (prefork, a subprocess, beat inside it), real
PostgreSQL (committed: transaction=True) and Redis, and the offline demo model: the run pauses and
frees its worker, a decision resumes it, and beat expires what nobody decided."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import DemoOrder, Run, Step, ToolExecution
from agents.tasks import execute_run
from agents.tests.test_crash import Worker, wait_for
from agents.tests.test_runtime import build
from approvals import services
from approvals.models import ApprovalRequest
from approvals.tests.support import reviewer

pytestmark = pytest.mark.django_db(transaction=True)


def status_of(run: Run) -> str:
    return Run.objects.for_tenant(run.tenant).values_list("status", flat=True).get(pk=run.pk)


def test_a_paused_run_frees_its_worker_and_a_decision_resumes_it_with_exactly_the_approved_call(
    workers: Callable[..., Worker],
) -> None:
    worker = workers("approvals", beat=True)
    setup = build()
    setup.order("T-1001")
    setup.order("T-2002")
    first, second = setup.start("Please refund order T-1001."), setup.start("Please refund order T-2002.")

    for run in (first, second):
        execute_run.delay(str(setup.tenant.pk), str(run.pk))
    # One worker process (concurrency 1) parks both: waiting never holds it.
    wait_for(lambda: status_of(first) == status_of(second) == "awaiting_approval", 30, "both runs to pause")
    assert Run.objects.for_tenant(setup.tenant).get(pk=first.pk).lease_owner == ""
    rita = reviewer(setup)
    one = ApprovalRequest.objects.for_tenant(setup.tenant).select_related("tenant").get(run=first)
    two = ApprovalRequest.objects.for_tenant(setup.tenant).select_related("tenant").get(run=second)

    edited = {"order_number": "T-2002", "reason": "Approved by support lead"}
    services.approval_decide(approval=one, actor=rita, decision="approve")
    services.approval_decide(approval=two, actor=rita, decision="edit", arguments=edited)

    wait_for(lambda: status_of(first) == status_of(second) == "succeeded", 30, "both runs to finish")
    orders = dict(DemoOrder.objects.for_tenant(setup.tenant).values_list("number", "refund_count"))
    assert orders == {"T-1001": 1, "T-2002": 1}
    executed = ToolExecution.objects.for_tenant(setup.tenant).get(run=second)
    assert executed.arguments == edited  # exactly the edit, once
    refund_step = Step.objects.for_tenant(setup.tenant).get(run=second, tool_name="refund_order")
    assert refund_step.request == {"arguments": edited}
    assert worker.process.poll() is None


def test_beat_expires_an_undecided_request_and_the_run_is_told_nobody_decided(
    workers: Callable[..., Worker],
) -> None:
    workers("approvals-expiry", beat=True)
    setup = build()
    setup.order("T-1001")
    run = setup.start("Please refund order T-1001.")
    execute_run.delay(str(setup.tenant.pk), str(run.pk))
    wait_for(lambda: status_of(run) == "awaiting_approval", 30, "the run to pause")
    ApprovalRequest.objects.for_tenant(setup.tenant).filter(run=run).update(
        expires_at=timezone.now() + timedelta(seconds=1)
    )
    started = time.monotonic()

    wait_for(lambda: status_of(run) == "succeeded", 30, "beat to expire the request and the run to finish")

    approval: Any = ApprovalRequest.objects.for_tenant(setup.tenant).get(run=run)
    assert approval.status == "expired" and approval.decided_by_id is None
    assert time.monotonic() - started < 15
    told = Step.objects.for_tenant(setup.tenant).get(run=run, tool_name="refund_order")
    assert "expired before a reviewer decided" in told.error
    assert DemoOrder.objects.for_tenant(setup.tenant).get(number="T-1001").refund_count == 0


def test_the_worker_delivers_a_signed_callback_retrying_until_the_receiver_answers(
    workers: Callable[..., Worker], worker_env: dict[str, str], settings: Any
) -> None:
    from approvals.tests.test_api import Receiver
    from tenants.audit import Actor
    from tenants.webhooks import sign

    receiver = Receiver(fail=1)
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    worker_env["WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    worker_env["APPROVAL_WEBHOOK_BACKOFF_SECONDS"] = "0.2"
    workers("approvals-callback")
    setup = build()
    created = services.approval_request_create(
        actor=Actor.system_actor("client"),
        tenant=setup.tenant,
        action="wire_money",
        arguments={"amount": 10},
        risk="irreversible",
        reason="irreversible",
        callback_url=receiver.url,
    )
    approval = ApprovalRequest.objects.for_tenant(setup.tenant).select_related("tenant").get(pk=created.approval.pk)

    services.approval_decide(approval=approval, actor=reviewer(setup), decision="approve")

    try:
        wait_for(lambda: len(receiver.received) == 2, 20, "the callback's retry")
        headers, body = receiver.received[-1]
        assert headers["X-AOC-Signature"] == sign(created.callback_secret, headers["X-AOC-Timestamp"], body)
        assert headers["X-AOC-Event"] == "approval.decided" and b'"status":"approved"' in body
        delivered = wait_for(
            lambda: (
                ApprovalRequest.objects.for_tenant(setup.tenant)
                .filter(pk=approval.pk, callback_delivered_at__isnull=False)
                .first()
            ),
            10,
            "the delivery to be recorded",
        )
        assert delivered.callback_attempts == 2
    finally:
        receiver.close()


def test_beat_escalates_a_waiting_request_by_email_to_the_admins(workers: Callable[..., Worker]) -> None:
    from approvals.models import ApprovalRule
    from tenants.audit import Actor
    from tenants.models import Role

    worker = workers("approvals-escalation", beat=True)
    setup = build()
    ApprovalRule.objects.create(
        tenant=setup.tenant, risk_tiers=["irreversible"], timeout_seconds=60, escalate_at_share=0.05
    )
    admin = reviewer(setup, "ada", role=Role.ADMIN)
    created = services.approval_request_create(
        actor=Actor.system_actor("client"),
        tenant=setup.tenant,
        action="refund_order",
        arguments={"order_number": "T-1"},
        risk="irreversible",
        reason="irreversible",
    )
    approval = ApprovalRequest.objects.for_tenant(setup.tenant).get(pk=created.approval.pk)
    assert approval.escalate_at is not None and (approval.escalate_at - approval.created_at).total_seconds() == 3

    escalated = wait_for(
        lambda: (
            ApprovalRequest.objects.for_tenant(setup.tenant).filter(pk=approval.pk, escalated_at__isnull=False).first()
        ),
        20,
        "beat to escalate the request",
    )
    # The worker's mail backend is the console's: the email is in its log, to the tenant's admin.
    wait_for(lambda: "Approval waiting: refund_order" in worker.text(), 10, "the escalation email")
    assert admin.label in worker.text() and escalated.status == "pending"
