"""A run's trace tells the whole story (issue 19): one tree under one root named after the agent,
even across a pause for approval; the approval is a span under the root while it waits, closed
when decided or expired; each model call's budget reservation and settlement are spans under it;
llm spans carry the messages sent and the completion, tool spans the arguments and result, all
masked by the tenant's trace redaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents import hooks, runtime
from agents.models import Run
from agents.tests.test_runtime import ScriptedClient, Setup, answer, build, calls
from approvals import services as approvals
from approvals.models import ApprovalRequest
from approvals.tests.support import REFUND, paused, request_of, reviewer
from budgets.models import Budget
from budgets.tests.factories import make_budget
from guardrails.services import settings_for
from traces.models import Span, Trace

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision queues the run; the test executes it itself."""
    monkeypatch.setattr("agents.tasks.execute_run.delay", lambda *args: None)


def tree(run: Run) -> dict[str, list[Span]]:
    """The run's spans by parent span id ("" for roots), each list by start time."""
    found: dict[str, list[Span]] = {}
    for span in Span.objects.for_tenant(run.tenant).filter(trace_id=run.trace_id).order_by("started_at", "id"):
        found.setdefault(span.parent_span_id, []).append(span)
    return found


def given(value: Any) -> Any:
    """A span's stored input or output, which the test expects to be there."""
    assert value is not None
    return value


def budgeted() -> Setup:
    setup = build()
    make_budget(setup.tenant, scope=Budget.Scope.TENANT, limit=10_000_000, name="Acme monthly")
    return setup


def test_a_paused_run_is_one_trace_with_its_approval_and_budget_spans(django_capture_on_commit_callbacks: Any) -> None:
    run = paused(budgeted())

    # While it waits: one root, not over, with the pending approval under it.
    spans = tree(run)
    [root] = spans[""]
    assert root.span_id == hooks.run_span_id(run) and root.name == "Support" and root.kind == "agent"
    assert root.status == "unset" and root.attributes["run.status"] == "awaiting_approval"
    children = spans[root.span_id]
    assert [s.kind for s in children if s.kind != "guardrail"] == ["llm", "approval"]
    [llm] = [s for s in children if s.kind == "llm"]
    [waiting] = [s for s in children if s.kind == "approval"]
    approval = request_of(run)
    assert waiting.span_id == hooks.approval_span_id(approval.pk) and waiting.name == "approval refund_order"
    assert waiting.status == "unset" and waiting.attributes["approval.decision"] == "pending"
    assert waiting.attributes["approval.id"] == str(approval.pk) and waiting.input == REFUND
    assert [s.name for s in spans[llm.span_id]] == ["budget reserve", "budget settle"]
    # The prompt and the completion are on the llm span.
    assert given(llm.input)["messages"][-1] == {"role": "user", "content": "Please refund order T-1001."}
    assert given(llm.output)["tool_calls"][0]["name"] == "refund_order"
    trace = Trace.objects.for_tenant(run.tenant).get(trace_id=run.trace_id)
    assert (trace.name, trace.agent_name, trace.input_preview) == ("Support", "Support", "Please refund order T-1001.")

    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_decide(approval=approval, actor=reviewer(run.tenant), decision="approve", note="ok")
    run.refresh_from_db()
    run = runtime.execute(run, client=ScriptedClient(answer("Refunded.")))
    assert run.status == Run.Status.SUCCEEDED

    spans = tree(run)
    [root] = spans[""]  # still one root: the resumed execution updated it
    assert root.span_id == hooks.run_span_id(run) and root.status == "ok" and root.output == "Refunded."
    children = [s for s in spans[root.span_id] if s.kind != "guardrail"]
    assert [s.kind for s in children] == ["llm", "approval", "tool", "llm"]
    decided = children[1]
    assert decided.span_id == waiting.span_id and decided.status == "ok"
    assert decided.attributes["approval.decision"] == "approved" and decided.attributes["approval.decided_by"]
    assert decided.input == REFUND and decided.ended_at > waiting.ended_at
    tool, last = children[2], children[3]
    assert tool.name == "refund_order" and tool.input == REFUND and given(tool.output)["status"] == "refunded"
    assert given(last.output)["content"] == "Refunded." and [s.kind for s in spans[last.span_id]] == ["budget"] * 2
    assert Span.objects.for_tenant(run.tenant).filter(trace_id=run.trace_id, kind="approval").count() == 1
    trace = Trace.objects.for_tenant(run.tenant).get(trace_id=run.trace_id)
    assert trace.span_count == sum(len(level) for level in spans.values()) and trace.status == "ok"
    assert trace.ended_at >= root.ended_at and trace.name == "Support"


def test_an_expired_approval_closes_its_span_as_expired(django_capture_on_commit_callbacks: Any) -> None:
    run = paused()
    approval = request_of(run)
    ApprovalRequest.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert approvals.approval_expire(approval=approval)
    span = Span.objects.for_tenant(run.tenant).get(trace_id=run.trace_id, kind="approval")
    assert span.parent_span_id == hooks.run_span_id(run) and span.status == "error"
    assert span.attributes["approval.decision"] == "expired" and span.attributes["approval.decided_by"] == "expiry"
    trace = Trace.objects.for_tenant(run.tenant).get(trace_id=run.trace_id)
    assert trace.error_count == 1 and trace.status == "error"


def test_a_budget_approval_waits_as_a_span_under_the_root() -> None:
    setup = build()
    make_budget(setup.tenant, scope=Budget.Scope.TENANT, limit=1, on_exceed=Budget.OnExceed.REQUIRE_APPROVAL)
    run = runtime.execute(setup.start("Hi"), client=ScriptedClient(answer("Hello")))
    assert run.status == Run.Status.AWAITING_APPROVAL
    spans = tree(run)
    [root] = spans[""]
    kinds = [s.kind for s in spans[root.span_id] if s.kind != "guardrail"]
    assert kinds == ["llm", "approval"]
    [llm] = [s for s in spans[root.span_id] if s.kind == "llm"]
    [refused] = spans[llm.span_id]
    assert refused.kind == "budget" and refused.status == "error" and refused.attributes["budget.limit"] == 1
    [waiting] = [s for s in spans[root.span_id] if s.kind == "approval"]
    assert waiting.name == "approval budget_override" and waiting.attributes["approval.decision"] == "pending"


def test_the_llm_and_tool_spans_are_masked_by_the_tenants_trace_redaction() -> None:
    secret = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
    prompt = f"Email ana.lopez@example.com the refund; my key is {secret}"
    arguments = {"to": "ana.lopez@example.com", "subject": "Refund", "body": "Done."}

    def run_once(redact: bool) -> tuple[Run, dict[str, list[Span]]]:
        setup = build(tools=("send_email",))
        guardrail_settings = settings_for(setup.tenant)
        guardrail_settings.redact_traces = redact
        guardrail_settings.save(update_fields=["redact_traces"])
        client = ScriptedClient(calls(("send_email", arguments)), answer(f"Sent to ana.lopez@example.com. {secret}"))
        with hooks.registered(AllowAll()):
            run = runtime.execute(setup.start(prompt), client=client)
        return run, tree(run)

    run, spans = run_once(redact=False)
    # Off: the spans hold what was sent and returned as it was (the guardrails let it through).
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    llm = next(s for s in spans[hooks.run_span_id(run)] if s.kind == "llm")
    tool = next(s for s in spans[hooks.run_span_id(run)] if s.kind == "tool")
    assert (
        "ana.lopez@example.com" in given(llm.input)["messages"][-1]["content"]
        and given(tool.input)["to"] == arguments["to"]
    )

    run, spans = run_once(redact=True)
    assert run.status == Run.Status.SUCCEEDED, run.error_message
    [root] = spans[""]
    llms = [s for s in spans[root.span_id] if s.kind == "llm"]
    tool = next(s for s in spans[root.span_id] if s.kind == "tool")
    stored = [root.input, root.output, tool.input, tool.output, *(s.input for s in llms), *(s.output for s in llms)]
    text = repr(stored)
    assert "ana.lopez@example.com" not in text and secret not in text
    # Masked, not dropped: the rest of the prompt is there.
    assert "the refund; my key is" in given(llms[0].input)["messages"][-1]["content"]
    assert given(tool.input)["subject"] == "Refund" and given(tool.input)["to"] != arguments["to"]
    preview = Trace.objects.for_tenant(run.tenant).get(trace_id=run.trace_id).input_preview
    assert preview.startswith("Email ") and "ana.lopez@example.com" not in preview and secret not in preview


class AllowAll(hooks.RunHooks):
    """No reviewer for the email (this test is about what the trace stores, not approvals)."""

    def decide_without_reviewer(
        self, *, run: Run, tool: Any, call_id: str, arguments: dict[str, Any], reason: str
    ) -> dict[str, Any] | None:
        return {"approved": True, "note": ""}
