"""Approvals against real PostgreSQL and the real run engine (a scripted model at the provider
edge): rules, pausing, deciding exactly once, quorum, edits, expiry, escalation and autonomy."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from agents import hooks, runtime
from agents.models import DemoOrder, Run, Tool
from agents.tests.test_runtime import ScriptedClient, answer, build, calls
from agents.tools import arguments_hash
from approvals import selectors, services
from approvals.models import ApprovalRequest, ApprovalRule, ApprovalVote, AutonomyGrant
from approvals.tests.support import REFUND, Guard, SpanRecorder, paused, request_of, reviewer
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError
from tenants.models import AuditEvent, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The execute_run tasks a decision sends (the worker is tested in test_worker.py)."""
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr("agents.tasks.execute_run.delay", lambda *args: sent.append(args))
    return sent


def finish(run: Run, text: str = "Done.") -> tuple[Run, ScriptedClient]:
    client = ScriptedClient(answer(text))
    return runtime.execute(run, client=client), client


# --- Rules: what needs a human ------------------------------------------------------------------


def test_an_irreversible_call_pauses_the_run_by_default_and_becomes_a_request_bound_to_its_hash() -> None:
    run = paused()

    approval = request_of(run)
    assert approval.status == "pending" and approval.reason == "irreversible" and approval.risk == "irreversible"
    assert approval.action == "refund_order" and approval.arguments == REFUND
    assert approval.arguments_hash == arguments_hash(REFUND)
    assert (approval.call_id, approval.step_index, approval.agent_id) == ("c1", 1, run.agent_id)
    assert approval.quorum == 1 and approval.on_reject == "tool_error"
    waited = (approval.expires_at - approval.created_at).total_seconds()
    assert 899 <= waited <= 901  # the default timeout: 15 minutes
    assert approval.context["run_id"] == str(run.pk) and approval.context["trace_id"] == run.trace_id
    assert approval.context["messages"][-1]["content"] == "Please refund order T-1001."
    assert DemoOrder.objects.for_tenant(run.tenant).get(number="T-1001").refund_count == 0


def test_a_read_tool_runs_without_asking_and_a_never_rule_lets_an_irreversible_one_through() -> None:
    setup = build()
    setup.order("T-1001")
    ApprovalRule.objects.create(tenant=setup.tenant, tool=setup.tools["refund_order"], mode="never")
    client = ScriptedClient(
        calls(("lookup_order", {"order_number": "T-1001"})), calls(("refund_order", REFUND)), answer("Refunded.")
    )

    run = runtime.execute(setup.start(), client=client)

    assert run.status == Run.Status.SUCCEEDED
    assert not ApprovalRequest.objects.for_tenant(setup.tenant).exists()


def test_the_most_specific_rule_wins() -> None:
    setup = build()
    tool = setup.tools["lookup_order"]
    ApprovalRule.objects.create(tenant=setup.tenant, mode="never")
    ApprovalRule.objects.create(tenant=setup.tenant, agent=setup.agent, mode="never")
    ApprovalRule.objects.create(tenant=setup.tenant, tool=tool, mode="always")
    setup.order("T-1001")
    client = ScriptedClient(calls(("lookup_order", {"order_number": "T-1001"}), ids=["l1"]))

    run = runtime.execute(setup.start(), client=client)

    assert run.status == Run.Status.AWAITING_APPROVAL
    assert request_of(run).reason == "policy"


def test_a_low_reported_confidence_asks_a_human() -> None:
    setup = build(tools=("send_email",))
    schema = dict(setup.tools["send_email"].parameters)
    schema["properties"] = {**schema["properties"], "confidence": {"type": "number"}}
    Tool.objects.for_tenant(setup.tenant).filter(name="send_email").update(parameters=schema)
    ApprovalRule.objects.create(tenant=setup.tenant, mode="risk", risk_tiers=[], confidence_threshold=0.8)
    sure = {"to": "a@example.com", "subject": "Hi", "body": "Hello", "confidence": 0.95}
    unsure = {**sure, "subject": "Hi again", "confidence": 0.4}
    client = ScriptedClient(calls(("send_email", sure)), calls(("send_email", unsure), ids=["u1"]))

    run = runtime.execute(setup.start(), client=client)

    assert run.status == Run.Status.AWAITING_APPROVAL
    approval = request_of(run)
    assert approval.call_id == "u1" and approval.reason == "low_confidence"
    assert "0.40" in approval.reason_detail and "0.80" in approval.reason_detail


def test_a_novel_argument_shape_asks_until_one_like_it_was_approved(queued: list[Any]) -> None:
    setup = build(tools=("send_email",))
    ApprovalRule.objects.create(tenant=setup.tenant, mode="risk", risk_tiers=[], novelty=True)
    first = {"to": "a@example.com", "subject": "Hi", "body": "Hello"}
    run = runtime.execute(setup.start(), client=ScriptedClient(calls(("send_email", first))))
    assert request_of(run).reason == "novel"
    services.approval_decide(approval=request_of(run), actor=reviewer(setup), decision="approve")

    same_shape = {"to": "b@example.com", "subject": "Other", "body": "Text"}
    other_shape = {**same_shape, "cc": ["c@example.com"]}
    again = runtime.execute(
        setup.start(),
        client=ScriptedClient(calls(("send_email", same_shape)), calls(("send_email", other_shape)), answer("ok")),
    )

    assert again.status == Run.Status.AWAITING_APPROVAL
    assert request_of(again).arguments == other_shape and request_of(again).reason == "novel"


def test_a_guardrail_asking_for_review_lands_in_the_queue_with_its_finding() -> None:
    class Reviewing(hooks.RunHooks):
        def check_tool_call(self, *, call: hooks.CallContext, tool: Tool, arguments: dict[str, Any]) -> hooks.Verdict:
            return hooks.Verdict(action="require_approval", reason="PII: an email address in the arguments")

    setup = build(tools=("send_email",))
    with hooks.registered(Reviewing()):
        run = runtime.execute(
            setup.start(),
            client=ScriptedClient(calls(("send_email", {"to": "a@example.com", "subject": "s", "body": "b"}))),
        )

    approval = request_of(run)
    assert approval.reason == "guardrail" and approval.reason_detail == "PII: an email address in the arguments"
    assert approval.context["guardrail_findings"] == [{"reason": "PII: an email address in the arguments"}]


# --- Deciding -------------------------------------------------------------------------------------


def test_an_approval_resumes_the_run_which_makes_exactly_the_approved_call_once(
    queued: list[Any], django_capture_on_commit_callbacks: Any, spans: SpanRecorder
) -> None:
    run = paused()
    rita = reviewer(run.tenant)

    with django_capture_on_commit_callbacks(execute=True):
        approval = services.approval_decide(approval=request_of(run), actor=rita, decision="approve", note="fine")

    assert approval.status == "approved" and approval.decided_by_label == rita.label
    assert queued == [(str(run.tenant_id), str(run.pk))]
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED
    run, _ = finish(run, "Refunded.")
    order = DemoOrder.objects.for_tenant(run.tenant).get(number="T-1001")
    assert run.status == Run.Status.SUCCEEDED and order.refund_count == 1
    # Recorded pending when the run paused, then again decided: one span id, under the run's root.
    pending, span = [s for s in spans.spans if s.kind == "approval"]
    assert pending.status == "unset" and pending.attributes["approval.decision"] == "pending"
    assert pending.span_id == span.span_id and span.replaces and span.parent_id == hooks.run_span_id(run)
    assert span.trace_id == run.trace_id and span.attributes["approval.decision"] == "approved"
    assert span.attributes["approval.decided_by"] == rita.label and span.attributes["approval.wait_ms"] >= 0
    # The traces app records it in the run's trace, like the engine's own spans.
    from traces.models import Span as TraceSpan

    recorded = TraceSpan.objects.for_tenant(run.tenant).get(trace_id=run.trace_id, kind="approval")
    assert recorded.name == "approval refund_order" and recorded.attributes["approval.decision"] == "approved"
    assert AuditEvent.objects.for_tenant(run.tenant).filter(action="approval.approve", target_id=approval.pk).exists()


def test_a_second_decision_is_refused_naming_who_decided(queued: list[Any]) -> None:
    run = paused()
    rita, sam = reviewer(run.tenant, "rita"), reviewer(run.tenant, "sam")
    services.approval_decide(approval=request_of(run), actor=rita, decision="approve")

    with pytest.raises(ConflictError) as refused:
        services.approval_decide(approval=request_of(run), actor=sam, decision="reject", note="no")

    assert rita.label in refused.value.message and refused.value.extra["decided_by"] == rita.label
    assert ApprovalVote.objects.for_tenant(run.tenant).count() == 1


def test_a_rejection_needs_a_comment_and_reaches_the_model_as_a_tool_error(queued: list[Any]) -> None:
    run = paused()
    rita = reviewer(run.tenant)
    with pytest.raises(FieldError) as refused:
        services.approval_decide(approval=request_of(run), actor=rita, decision="reject", note="  ")
    assert refused.value.field == "note"

    services.approval_decide(approval=request_of(run), actor=rita, decision="reject", note="Outside the window.")
    run, client = finish(run, "Sorry, no refund.")

    assert run.status == Run.Status.SUCCEEDED
    assert "A reviewer rejected this call: Outside the window." in client.requests[0].messages[-1]["content"]
    assert DemoOrder.objects.for_tenant(run.tenant).get(number="T-1001").refund_count == 0


def test_a_rejection_ends_the_run_when_the_rule_says_so(queued: list[Any]) -> None:
    setup = build()
    ApprovalRule.objects.create(tenant=setup.tenant, risk_tiers=["irreversible"], on_reject="end_run")
    run = paused(setup)

    services.approval_decide(approval=request_of(run), actor=reviewer(setup), decision="reject", note="Fraud.")
    run = runtime.execute(run, client=ScriptedClient())

    assert run.status == Run.Status.FAILED and run.error_type == "approval_rejected"
    assert "Fraud." in run.error_message


def test_an_edit_is_validated_rechecked_and_then_exactly_the_edit_runs(queued: list[Any]) -> None:
    setup = build()
    setup.order("T-2002")
    guard = Guard(blocked="T-6666")
    with hooks.registered(guard):
        run = paused(setup)
        rita = reviewer(setup)
        with pytest.raises(FieldError) as invalid:
            services.approval_decide(
                approval=request_of(run), actor=rita, decision="edit", arguments={"order_number": 7}
            )
        assert invalid.value.field == "arguments" and "order_number" in invalid.value.detail
        with pytest.raises(FieldError) as blocked:
            services.approval_decide(
                approval=request_of(run), actor=rita, decision="edit", arguments={"order_number": "T-6666"}
            )
        assert "under investigation" in blocked.value.detail
        assert request_of(run).status == "pending"

        edited = {"order_number": "T-2002", "reason": "Wrong order number"}
        approval = services.approval_decide(approval=request_of(run), actor=rita, decision="edit", arguments=edited)
        assert approval.status == "approved" and approval.edited_arguments == edited
        assert approval.edited_arguments_hash == arguments_hash(edited) != approval.arguments_hash
        run, _ = finish(run)

    orders = dict(DemoOrder.objects.for_tenant(setup.tenant).values_list("number", "refund_count"))
    assert orders == {"T-1001": 0, "T-2002": 1}
    assert guard.seen[-1] == edited  # the engine checked the edit again before running it


def test_a_quorum_needs_distinct_reviewers_of_the_same_arguments(queued: list[Any]) -> None:
    setup = build()
    ApprovalRule.objects.create(tenant=setup.tenant, risk_tiers=["irreversible"], quorum=2)
    run = paused(setup)
    rita, sam, tom = reviewer(setup, "rita"), reviewer(setup, "sam"), reviewer(setup, "tom")

    first = services.approval_decide(approval=request_of(run), actor=rita, decision="approve")
    assert first.status == "pending" and first.quorum == 2
    with pytest.raises(ConflictError):
        services.approval_decide(approval=request_of(run), actor=rita, decision="approve")
    # An edit changes what is approved: rita's approval was for other arguments, so it counts no more.
    edited = {"order_number": "T-1001", "reason": "Partial damage"}
    second = services.approval_decide(approval=request_of(run), actor=sam, decision="edit", arguments=edited)
    assert second.status == "pending"
    third = services.approval_decide(approval=request_of(run), actor=tom, decision="approve")

    assert third.status == "approved" and third.decided_by_label == tom.label
    assert third.effective_arguments == edited
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED and run.approval_decisions["c1"]["arguments"] == edited


def test_one_rejection_rejects_a_quorum_request(queued: list[Any]) -> None:
    setup = build()
    ApprovalRule.objects.create(tenant=setup.tenant, risk_tiers=["irreversible"], quorum=3)
    run = paused(setup)
    services.approval_decide(approval=request_of(run), actor=reviewer(setup, "rita"), decision="approve")

    rejected = services.approval_decide(
        approval=request_of(run), actor=reviewer(setup, "sam"), decision="reject", note="No."
    )

    assert rejected.status == "rejected"


def test_a_decision_on_a_run_cancelled_meanwhile_cancels_the_request(queued: list[Any]) -> None:
    from agents.services import run_cancel

    run = paused()
    run_cancel(actor=Actor.system_actor("tests"), run=run)

    approval = services.approval_decide(approval=request_of(run), actor=reviewer(run.tenant), decision="approve")

    assert approval.status == "cancelled" and queued == []


def test_bulk_approval_is_for_one_tool_and_one_risk_tier(queued: list[Any]) -> None:
    setup = build()
    setup.order("T-2002")
    runs = [paused(setup, call_id=f"c{i}") for i in range(2)]
    other = services.approval_request_create(
        actor=Actor.system_actor("client"),
        tenant=setup.tenant,
        action="wire_money",
        arguments={"amount": 5},
        risk="irreversible",
        reason="irreversible",
    ).approval
    rita = reviewer(setup)
    ids = [request_of(r).pk for r in runs]

    with pytest.raises(FieldError):
        services.approvals_bulk_approve(tenant=setup.tenant, actor=rita, ids=[*ids, other.pk])
    done, problems = services.approvals_bulk_approve(tenant=setup.tenant, actor=rita, ids=ids)

    assert problems == [] and {a.status for a in done} == {"approved"}
    assert set(Run.objects.for_tenant(setup.tenant).values_list("status", flat=True)) == {"queued"}


# --- Expiry and escalation ----------------------------------------------------------------------


def test_expiry_denies_and_is_recorded_as_expiry_not_as_a_human_rejection(queued: list[Any]) -> None:
    run = paused()
    ApprovalRequest.objects.for_tenant(run.tenant).filter(run=run).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert services.approvals_expire_due() == 1

    approval = request_of(run)
    assert approval.status == "expired" and approval.decided_by is None and approval.decided_by_label == "expiry"
    assert not ApprovalVote.objects.for_tenant(run.tenant).exists()
    with pytest.raises(ConflictError):
        services.approval_decide(approval=approval, actor=reviewer(run.tenant), decision="approve")
    run, client = finish(run, "Nobody approved it in time.")
    assert "expired before a reviewer decided" in client.requests[0].messages[-1]["content"]
    assert DemoOrder.objects.for_tenant(run.tenant).get(number="T-1001").refund_count == 0
    assert services.approvals_expire_due() == 0


def test_a_decision_arriving_after_the_expiry_is_refused_and_records_the_expiry(queued: list[Any]) -> None:
    run = paused()
    ApprovalRequest.objects.for_tenant(run.tenant).filter(run=run).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    with pytest.raises(ConflictError) as refused:
        services.approval_decide(approval=request_of(run), actor=reviewer(run.tenant), decision="approve")

    assert "expired" in refused.value.message
    assert request_of(run).status == "expired"


def test_escalation_emails_the_admins_and_posts_the_signed_webhook_once_at_its_share_of_the_timeout(
    queued: list[Any], django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from approvals import tasks
    from approvals.tests.test_api import Receiver
    from tenants.webhooks import sign

    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = Receiver(fail=0)
    setup = build()
    services.approval_rule_save(
        actor=Actor.system_actor("admin"),
        tenant=setup.tenant,
        risk_tiers=["irreversible"],
        timeout_seconds=600,
        escalate_at_share=0.5,
        escalation_emails=["oncall@example.com"],
        escalation_webhook_url=receiver.url,
        webhook_secret="whsec-escalate",
    )
    run = paused(setup)
    admin = reviewer(setup, "ada", role=Role.ADMIN)
    approval = request_of(run)
    assert approval.escalate_at is not None
    assert round((approval.escalate_at - approval.created_at).total_seconds()) == 300
    assert services.approvals_escalate_due() == 0  # not yet
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(tasks.notify_escalation, "delay", lambda *ids: sent.append(ids))
    ApprovalRequest.objects.for_tenant(setup.tenant).filter(pk=approval.pk).update(escalate_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        assert services.approvals_escalate_due() == 1
        assert services.approvals_escalate_due() == 0  # once
    tasks.notify_escalation.run(*sent[0])

    [message] = mail.outbox
    assert sorted(message.to) == sorted([admin.label, "oncall@example.com"])
    assert "refund_order" in message.subject and str(approval.pk) in message.body
    [(headers, body)] = receiver.received
    receiver.close()
    assert headers["X-AOC-Event"] == "approval.escalated"
    assert headers["X-AOC-Signature"] == sign("whsec-escalate", headers["X-AOC-Timestamp"], body)
    assert json.loads(body)["id"] == str(approval.pk) and json.loads(body)["status"] == "pending"


# --- Autonomy ---------------------------------------------------------------------------------


def email_call(n: int) -> dict[str, Any]:
    return {"to": f"c{n}@example.com", "subject": f"Update {n}", "body": "Your order shipped."}


def test_consecutive_approvals_earn_autonomy_which_an_admin_can_revoke(queued: list[Any]) -> None:
    setup = build(tools=("send_email",))
    ApprovalRule.objects.create(tenant=setup.tenant, mode="always", autonomy_after=2)
    rita = reviewer(setup)
    for n in range(2):
        run = runtime.execute(setup.start(), client=ScriptedClient(calls(("send_email", email_call(n)))))
        assert run.status == Run.Status.AWAITING_APPROVAL
        services.approval_decide(approval=request_of(run), actor=rita, decision="approve")

    grant = AutonomyGrant.objects.for_tenant(setup.tenant).get()
    assert grant.is_active and grant.streak == 2
    assert AuditEvent.objects.for_tenant(setup.tenant).filter(action="autonomy.grant").count() == 1
    trusted = runtime.execute(
        setup.start(), client=ScriptedClient(calls(("send_email", email_call(9))), answer("Sent."))
    )
    assert trusted.status == Run.Status.SUCCEEDED
    grant.refresh_from_db()
    assert grant.auto_approved == 1

    admin = reviewer(setup, "ada", role=Role.ADMIN)
    with pytest.raises(FieldError):
        services.autonomy_revoke(grant=grant, actor=admin, reason="")
    services.autonomy_revoke(grant=grant, actor=admin, reason="Incident #12: wrong customer emailed")
    again = runtime.execute(setup.start(), client=ScriptedClient(calls(("send_email", email_call(10)))))

    assert again.status == Run.Status.AWAITING_APPROVAL
    assert AuditEvent.objects.for_tenant(setup.tenant).filter(action="autonomy.revoke").count() == 1
    # The streak starts again after a revocation.
    assert services.autonomy_streak(tenant=setup.tenant, agent=setup.agent, tool=setup.tools["send_email"]) == 0


def test_a_rejection_revokes_autonomy_and_breaks_the_streak(queued: list[Any]) -> None:
    setup = build(tools=("send_email",))
    tool = setup.tools["send_email"]
    ApprovalRule.objects.create(tenant=setup.tenant, mode="always", autonomy_after=2, novelty=True)
    grant = AutonomyGrant.objects.create(
        tenant=setup.tenant, agent=setup.agent, tool=tool, streak=2, granted_by_label="test"
    )
    # Autonomy does not cover a novel shape: that call still asks, and its rejection revokes.
    run = runtime.execute(setup.start(), client=ScriptedClient(calls(("send_email", email_call(1)))))
    assert request_of(run).reason == "novel"

    services.approval_decide(approval=request_of(run), actor=reviewer(setup), decision="reject", note="Wrong person")

    grant.refresh_from_db()
    assert not grant.is_active and grant.revoke_reason == "a reviewer rejected a call"


class Rehearsal(hooks.RunHooks):
    """Says every run is a rehearsal (as evals/hooks.py does for an eval case's run)."""

    def is_rehearsal(self, *, run: Run) -> bool:
        return True


def test_an_incident_a_guardrail_stopping_the_agent_at_the_tool_revokes_its_autonomy(queued: list[Any]) -> None:
    setup = build(tools=("lookup_order", "send_email"))
    lookup, email = setup.tools["lookup_order"], setup.tools["send_email"]
    ApprovalRule.objects.create(tenant=setup.tenant, mode="always", autonomy_after=2)
    grants = {
        tool.name: AutonomyGrant.objects.create(
            tenant=setup.tenant, agent=setup.agent, tool=tool, streak=2, granted_by_label="test"
        )
        for tool in (lookup, email)
    }
    blocked_call = ScriptedClient(calls(("lookup_order", {"order_number": "T-6666"})))
    with hooks.registered(Guard(blocked="T-6666")):
        # An eval case's run is a rehearsal: the same block there is no incident.
        with hooks.registered(Rehearsal()):
            rehearsed = runtime.execute(setup.start(), client=blocked_call)
        assert rehearsed.status == Run.Status.BLOCKED
        assert AutonomyGrant.objects.for_tenant(setup.tenant).filter(revoked_at__isnull=True).count() == 2

        run = runtime.execute(setup.start(), client=ScriptedClient(calls(("lookup_order", {"order_number": "T-6666"}))))

    assert run.status == Run.Status.BLOCKED and run.error_type == "guardrail_tool_call"
    revoked, untouched = (AutonomyGrant.objects.get(pk=grants[name].pk) for name in ("lookup_order", "send_email"))
    assert not revoked.is_active and untouched.is_active  # only the tool the agent was stopped at
    assert revoked.revoked_by_label == "incident"
    assert revoked.revoke_reason.startswith(f"incident in run {run.pk}: a guardrail blocked a call it proposed")
    assert "under investigation" in revoked.revoke_reason
    event = AuditEvent.objects.for_tenant(setup.tenant).get(action="autonomy.revoke")
    assert event.after == {"reason": revoked.revoke_reason}
    # The agent's next lookup asks a human again.
    setup.order("T-1001")
    again = runtime.execute(setup.start(), client=ScriptedClient(calls(("lookup_order", {"order_number": "T-1001"}))))
    assert again.status == Run.Status.AWAITING_APPROVAL


def test_autonomy_never_covers_an_irreversible_tool_unless_explicitly_allowed(queued: list[Any]) -> None:
    setup = build()
    setup.order("T-2002")
    rule = ApprovalRule.objects.create(tenant=setup.tenant, risk_tiers=["irreversible"], autonomy_after=1)
    rita = reviewer(setup)
    services.approval_decide(approval=request_of(paused(setup, call_id="a")), actor=rita, decision="approve")
    assert not AutonomyGrant.objects.for_tenant(setup.tenant).exists()

    rule.autonomy_irreversible = True
    rule.save()
    services.approval_decide(approval=request_of(paused(setup, call_id="b")), actor=rita, decision="approve")

    assert AutonomyGrant.objects.for_tenant(setup.tenant).filter(revoked_at__isnull=True).count() == 1


# --- External requests, rules and metrics -------------------------------------------------------


def test_an_external_request_is_validated_field_by_field() -> None:
    setup = build()
    actor = Actor.system_actor("client")
    good: dict[str, Any] = {"action": "wire", "arguments": {"a": 1}, "risk": "write", "reason": "policy"}
    for field, value in [
        ("action", " "),
        ("action", "refund\u202eredro"),
        ("arguments", [1]),
        ("risk", "huge"),
        ("reason", "because"),
        ("expires_in", 1),
        ("callback_url", "ftp://x"),
        ("callback_url", "http://example.com/hook"),
    ]:
        with pytest.raises(FieldError) as refused:
            services.approval_request_create(actor=actor, tenant=setup.tenant, **{**good, field: value})
        assert refused.value.field == field, (field, value)

    created = services.approval_request_create(actor=actor, tenant=setup.tenant, expires_in=60, **good)
    assert created.approval.status == "pending" and created.callback_secret == ""
    assert round((created.approval.expires_at - created.approval.created_at).total_seconds()) == 60


def test_a_rule_is_saved_with_validation_and_audited() -> None:
    setup = build()
    admin = Actor.system_actor("admin")
    with pytest.raises(FieldError) as refused:
        services.approval_rule_save(actor=admin, tenant=setup.tenant, quorum=0)
    assert refused.value.field == "quorum"

    rule = services.approval_rule_save(actor=admin, tenant=setup.tenant, mode="always", quorum=2)
    again = services.approval_rule_save(actor=admin, tenant=setup.tenant, quorum=3)

    assert again.pk == rule.pk and again.quorum == 3 and again.mode == "always"
    actions = list(AuditEvent.objects.for_tenant(setup.tenant).order_by("created_at").values_list("action", flat=True))
    assert actions == ["approval_rule.create", "approval_rule.update"]


def test_metrics_give_decision_time_percentiles_and_rates_per_tool_and_reviewer(queued: list[Any]) -> None:
    setup = build()
    actor = Actor.system_actor("client")
    rita, sam = reviewer(setup, "rita"), reviewer(setup, "sam")
    made = []
    for n in range(10):
        made.append(
            services.approval_request_create(
                actor=actor,
                tenant=setup.tenant,
                action="wire" if n < 6 else "delete",
                arguments={"n": n},
                risk="write",
                reason="policy",
            ).approval
        )
    for n, approval in enumerate(made[:8]):
        who = rita if n % 2 == 0 else sam
        decision = "reject" if n == 1 else "approve"
        approval = services.approval_decide(approval=approval, actor=who, decision=decision, note="x")
        assert approval.decided_at is not None
        # Waited n+1 minutes: the decision times are 1..8 minutes.
        ApprovalRequest.objects.filter(pk=approval.pk).update(created_at=approval.decided_at - timedelta(minutes=n + 1))
    ApprovalRequest.objects.filter(pk=made[8].pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    services.approvals_expire_due()

    metrics = selectors.approval_metrics(tenant=setup.tenant)

    assert (metrics.decided, metrics.pending) == (9, 1)
    assert metrics.p50_seconds == pytest.approx(240, abs=1) and metrics.p95_seconds == pytest.approx(480, abs=1)
    by_tool = {r.label: (r.total, r.approved, r.rejected, r.expired) for r in metrics.by_tool}
    assert by_tool == {"wire": (6, 5, 1, 0), "delete": (3, 2, 0, 1)}
    by_reviewer = {r.label: (r.total, r.approved, r.rejected) for r in metrics.by_reviewer}
    assert by_reviewer == {rita.label: (4, 4, 0), sam.label: (4, 3, 1)}
    assert json.dumps([r.approve_pct for r in metrics.by_tool]) == "[83, 67]"
