"""The run engine writes its own trace through TraceHooks: one root span per run, named after its
agent, a span per model call (with its usage and cost, and its budget reservation and settlement as
spans under it) and per tool call; a resumed run continues the same tree; spans are queryable while
the run goes on; W3C context rides in Celery headers."""

from __future__ import annotations

from typing import Any

import pytest

from agents import hooks, runtime
from agents.hooks import RunHooks
from agents.models import Run, Tool
from agents.tests.test_runtime import ScriptedClient, answer, build, calls
from budgets.models import Budget
from budgets.tests.factories import make_budget
from traces import context
from traces.hooks import TraceHooks
from traces.models import Span, Trace

pytestmark = pytest.mark.django_db


ENGINE_KINDS = ("agent", "llm", "tool")


def spans_of(run: Run) -> list[Span]:
    """The spans the engine wrote itself (other capabilities, e.g. guardrails, add their own)."""
    return list(
        Span.objects.for_tenant(run.tenant)
        .filter(trace_id=run.trace_id, kind__in=ENGINE_KINDS)
        .order_by("started_at", "id")
    )


def all_spans(run: Run) -> int:
    return Span.objects.for_tenant(run.tenant).filter(trace_id=run.trace_id).count()


def test_the_trace_hook_is_registered_with_the_engine() -> None:
    assert TraceHooks.instance in hooks._registered


def test_a_run_writes_one_span_per_run_model_call_and_tool_call() -> None:
    setup = build()
    setup.order("T-1001")
    run = setup.start("Where is order T-1001?", end_user_id="ann", session_id="s-7")
    client = ScriptedClient(
        calls(("lookup_order", {"order_number": "T-1001"})), answer("It shipped.", input_tokens=300, output_tokens=50)
    )
    run = runtime.execute(run, client=client)
    assert run.status == Run.Status.SUCCEEDED
    spans = spans_of(run)
    assert [s.kind for s in spans] == ["agent", "llm", "tool", "llm"]
    root = spans[0]
    assert all(s.parent_span_id == root.span_id for s in spans[1:]) and root.parent_span_id == ""
    assert root.input == "Where is order T-1001?" and root.output == "It shipped."
    assert {(s.end_user_id, s.session_id, s.run_id, s.agent_id) for s in spans} == {
        ("ann", "s-7", str(run.pk), str(run.agent_id))
    }
    last_call = spans[3]
    assert (last_call.model, last_call.input_tokens, last_call.output_tokens) == (setup.model.model_id, 300, 50)
    assert last_call.cost_micros == last_call.attributes["cost_micros"] > 0
    assert spans[2].name == "lookup_order" and spans[2].attributes["call_id"]
    trace = Trace.objects.for_tenant(run.tenant).get(trace_id=run.trace_id)
    assert (trace.span_count, trace.run_id, trace.status) == (all_spans(run), str(run.pk), "ok")
    assert trace.input_tokens == run.input_tokens and trace.cost_micros == run.cost_micros


def test_model_and_tool_spans_carry_what_was_sent_and_what_came_back() -> None:
    setup = build()
    setup.order("T-1002")
    run = setup.start("Where is order T-1002?")
    client = ScriptedClient(calls(("lookup_order", {"order_number": "T-1002"})), answer("It shipped."))
    run = runtime.execute(run, client=client)
    _, first_call, tool_call, last_call = spans_of(run)
    assert first_call.input and first_call.output and tool_call.output and last_call.input and last_call.output
    sent = first_call.input["messages"]
    assert sent[-1] == {"role": "user", "content": "Where is order T-1002?"}
    assert "lookup_order" in first_call.input["tools"]
    assert first_call.output["tool_calls"][0]["name"] == "lookup_order"
    assert tool_call.input == {"order_number": "T-1002"}
    assert tool_call.output["order_number"] == "T-1002"
    assert last_call.output["content"] == "It shipped."
    assert [m["role"] for m in last_call.input["messages"]][-2:] == ["assistant", "tool"]


def test_a_model_calls_reservation_and_settlement_are_budget_spans_under_it() -> None:
    setup = build()
    make_budget(setup.tenant, scope=Budget.Scope.TENANT, limit=10_000_000, name="Tenant monthly")
    run = runtime.execute(setup.start("Hi"), client=ScriptedClient(answer("Hello")))
    [model_span] = [s for s in spans_of(run) if s.kind == "llm"]
    reserve, settle = (
        Span.objects.for_tenant(run.tenant).filter(trace_id=run.trace_id, kind="budget").order_by("started_at")
    )
    assert reserve.parent_span_id == settle.parent_span_id == model_span.span_id
    assert (reserve.name, settle.name) == ("budget reserve", "budget settle")
    # The step's span holds the reservation, the call and the settlement.
    assert model_span.started_at <= reserve.started_at and settle.ended_at <= model_span.ended_at
    held = reserve.attributes["budget.reserved_micros"]
    assert held >= run.cost_micros > 0 and reserve.attributes["budget.tightest"] == "Tenant monthly"
    assert reserve.attributes["budget.tightest_remaining"] == 10_000_000 - held
    assert settle.attributes["budget.reservation_status"] == "settled"
    assert settle.attributes["budget.settled_micros"] == run.cost_micros == model_span.cost_micros
    assert settle.attributes["budget.released_micros"] == held - run.cost_micros
    assert reserve.attributes["budget.reservation_id"] == settle.attributes["budget.reservation_id"]


def test_a_budget_refusal_is_an_error_budget_span_under_the_refused_call() -> None:
    setup = build()
    make_budget(setup.tenant, scope=Budget.Scope.TENANT, limit=1, name="Tiny")
    run = runtime.execute(setup.start("Hi"), client=ScriptedClient(answer("Hello")))
    assert run.status == Run.Status.BUDGET_EXCEEDED
    root, model_span = spans_of(run)
    [refusal] = Span.objects.for_tenant(run.tenant).filter(trace_id=run.trace_id, kind="budget")
    assert refusal.parent_span_id == model_span.span_id and refusal.status == "error"
    assert refusal.error_type == "budget_exceeded" and "Tiny" in refusal.error_message
    assert refusal.attributes["budget.budget_name"] == "Tiny" and refusal.attributes["budget.limit"] == 1
    # The call was never made: no output, no usage; the run's root says why it ended.
    assert model_span.status == "error" and model_span.output is None and model_span.input_tokens == 0
    assert root.status == "error" and root.error_type == "budget_exceeded"


def test_a_failed_run_and_a_failed_model_call_are_error_spans() -> None:
    from catalog.clients import ProviderError

    setup = build()
    run = runtime.execute(setup.start(), client=ScriptedClient(ProviderError("rate_limited", "slow down", status=429)))
    assert run.status == Run.Status.FAILED
    root, model_span = spans_of(run)
    assert root.status == "error" and root.error_type == "provider_rate_limited"
    assert model_span.status == "error" and model_span.error_message == "slow down"
    assert Trace.objects.for_tenant(run.tenant).get(trace_id=run.trace_id).status == "error"


class NeedsApproval(RunHooks):
    def needs_approval(self, *, run: Run, tool: Tool, arguments: dict[str, Any]) -> bool:
        return tool.name == "refund_order"


def test_a_run_paused_for_approval_and_resumed_continues_the_same_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = build()
    setup.order("T-1001")
    monkeypatch.setattr("agents.tasks.execute_run.delay", lambda *args: None)
    with hooks.registered(NeedsApproval()):
        run = runtime.execute(
            setup.start(), client=ScriptedClient(calls(("refund_order", {"order_number": "T-1001"}), ids=["c1"]))
        )
        assert run.status == Run.Status.AWAITING_APPROVAL
        trace_id = run.trace_id
        # Visible while the run waits: the first execution's spans are committed, its root not over.
        assert [s.kind for s in spans_of(run)] == ["agent", "llm"]
        waiting = spans_of(run)[0]
        assert waiting.status == "unset" and waiting.attributes["run.status"] == "awaiting_approval"
        run = runtime.resume_after_approval(run=run, call_id="c1", approved=True)
        run = runtime.execute(run, client=ScriptedClient(answer("Refunded.")))
    assert run.status == Run.Status.SUCCEEDED and run.trace_id == trace_id
    spans = spans_of(run)
    # One tree: the resumed execution continues the run's one root span (updated, not repeated).
    assert [s.kind for s in spans] == ["agent", "llm", "tool", "llm"]
    root = spans[0]
    assert root.span_id == hooks.run_span_id(run) and root.name == "Support"
    assert all(s.parent_span_id == root.span_id for s in spans[1:])
    assert root.status == "ok" and root.output == "Refunded." and root.attributes["run.status"] == "succeeded"
    assert root.ended_at >= spans[-1].ended_at and root.started_at <= spans[1].started_at
    trace = Trace.objects.for_tenant(run.tenant).get(trace_id=trace_id)
    assert Trace.objects.for_tenant(run.tenant).filter(run_id=str(run.pk)).count() == 1
    assert trace.span_count == all_spans(run) >= 4 and trace.status == "ok"
    assert (trace.name, trace.agent_name) == ("Support", "Support")
    assert trace.input_preview == "Please refund order T-1001."


def test_celery_messages_carry_the_current_span_as_w3c_traceparent() -> None:
    from agents.tasks import execute_run

    token = context.current_span.set(("a" * 32, "b" * 16))
    try:
        headers: dict[str, Any] = {}
        context.inject_headers(headers=headers)
        assert headers == {"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}
        # The worker side: the header becomes the current span before the task runs.
        context.current_span.set(None)
        request = type("Request", (), {"traceparent": headers["traceparent"]})()
        context.extract_headers(task=type("Task", (), {"request": request})())
        assert context.current_span.get() == ("a" * 32, "b" * 16)
    finally:
        context.current_span.reset(token)
    assert execute_run.name == "agents.tasks.execute_run"


def test_a_run_started_by_a_task_from_inside_its_trace_is_that_spans_child() -> None:
    setup = build()
    run = setup.start("Hi")
    run.trace_id = "c" * 32
    run.save(update_fields=["trace_id"])
    token = context.current_span.set(("c" * 32, "d" * 16))
    try:
        run = runtime.execute(run, client=ScriptedClient(answer("Hello")))
    finally:
        context.current_span.reset(token)
    assert spans_of(run)[0].parent_span_id == "d" * 16


def test_a_model_call_that_crashes_the_engine_still_leaves_its_span() -> None:
    setup = build()
    run = runtime.execute(setup.start("Hi"), client=ScriptedClient(RuntimeError("client bug")))
    assert run.status == Run.Status.FAILED and run.error_type == "internal_error"
    root, model_span = spans_of(run)
    assert root.status == "error" and model_span.kind == "llm" and model_span.status == "error"
