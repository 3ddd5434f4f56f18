"""What a step of the run engine costs with every hook on (issue 14): one transaction, in which
its spans commit with it; no configuration read from the database once it is cached; and what a
step that did not commit loses (its spans, as it loses itself)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents import hooks, runtime
from agents.models import Run
from agents.tests.test_runtime import Crash, ScriptedClient, answer, build, calls
from approvals.models import ApprovalRequest, ApprovalRule
from budgets.models import Budget
from budgets.tests.factories import make_budget
from catalog.clients import ChatRequest, ChatResponse
from traces.models import Span

LOOKUPS = (("T-1001", "c1"), ("T-1002", "c2"))


def lookups_then_answer() -> ScriptedClient:
    """Two look-ups, one per answer, then a final answer: five steps (model, tool, model, tool, model)."""
    replies = [calls(("lookup_order", {"order_number": number}), ids=[call_id]) for number, call_id in LOOKUPS]
    return ScriptedClient(*replies, answer("Both shipped."))


def spans(run: Run, **filters: Any) -> list[Span]:
    return list(Span.objects.for_tenant(run.tenant).filter(trace_id=run.trace_id, **filters))


@pytest.mark.django_db(transaction=True)
def test_each_step_is_one_transaction_that_commits_its_spans() -> None:
    setup = build()
    for number, _ in LOOKUPS:
        setup.order(number)
    runtime.execute(setup.start("Where are they?"), client=lookups_then_answer())  # warms the caches
    run = setup.start("Where are they?")

    with CaptureQueriesContext(connection) as queries:
        run = runtime.execute(run, client=lookups_then_answer())

    assert run.status == Run.Status.SUCCEEDED and run.step_count == 5
    commits = [q for q in queries.captured_queries if q["sql"] == "COMMIT"]
    # The claim, then one per step (the conversation's start commits with the first, the run's end
    # with the last): no transaction of spans alone.
    assert len(commits) == 1 + 5
    kinds = sorted(span.kind for span in spans(run))
    # Each model call's reservation and settlement are spans too, written with its step.
    assert kinds == sorted(["agent"] + ["llm"] * 3 + ["tool"] * 2 + ["guardrail"] * 6 + ["budget"] * 6)


@pytest.mark.django_db
def test_a_warm_step_reads_no_configuration_from_the_database() -> None:
    setup = build()
    for number, _ in LOOKUPS:
        setup.order(number)
    runtime.execute(setup.start("Where are they?"), client=lookups_then_answer())
    run = setup.start("Where are they?")

    with CaptureQueriesContext(connection) as queries:
        run = runtime.execute(run, client=lookups_then_answer())

    assert run.status == Run.Status.SUCCEEDED
    read = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    for table in ("agents_tool", "approvals_approvalrule", "guardrails_policy", "guardrails_guardrailsettings"):
        assert not [sql for sql in read if f'FROM "{table}"' in sql], table
    # The settlement's span says what was settled from the settlement, not from a read of it.
    assert not [sql for sql in read if 'FROM "budgets_reservation"' in sql]
    # The version's tools, once per execution (not per step).
    assert len([sql for sql in read if 'FROM "agents_agentversiontool"' in sql]) == 1
    [model_span, *_] = spans(run, kind="llm")
    settled = sorted(
        (s for s in spans(run, kind="budget") if s.parent_span_id == model_span.span_id), key=lambda s: s.started_at
    )
    assert [s.name for s in settled] == ["budget reserve", "budget settle"]
    assert settled[1].attributes["budget.reservation_status"] == "settled"


class CrashBeforeCommit(hooks.RunHooks):
    """The worker dies while the step of the `nth` tool call is committing (after its spans were
    written in its transaction, before the commit)."""

    def __init__(self, nth: int) -> None:
        self.tool_steps = 0
        self.nth = nth

    def step_committing(self, *, call: hooks.CallContext) -> None:
        assert call.run is not None
        if call.run.messages and call.run.messages[-1]["role"] == "tool":
            self.tool_steps += 1
            if self.tool_steps == self.nth:
                raise Crash


@pytest.mark.django_db
def test_the_spans_of_a_step_that_did_not_commit_are_lost_with_it_and_recorded_when_it_is_redone() -> None:
    setup = build()
    setup.order("T-1001")
    run = setup.start("Where is T-1001?")
    with hooks.registered(CrashBeforeCommit(1)), pytest.raises(Crash):
        runtime.execute(run, client=ScriptedClient(calls(("lookup_order", {"order_number": "T-1001"}), ids=["c1"])))
    run.refresh_from_db()
    assert run.step_count == 1  # the model step; the tool step rolled back
    assert spans(run, kind="tool") == [] and len(spans(run, kind="llm")) == 1
    Run.objects.for_tenant(setup.tenant).filter(pk=run.pk).update(lease_expires_at=timezone.now())

    run = runtime.execute(run, client=ScriptedClient(answer("It shipped.")))

    assert run.status == Run.Status.SUCCEEDED and run.step_count == 3
    assert len(spans(run, kind="tool")) == 1  # the redone call, once
    assert len(spans(run, kind="guardrail", name="guardrail tool_call lookup_order")) == 1
    assert len(spans(run, kind="llm")) == 2


@pytest.mark.django_db
def test_an_approval_rule_added_during_a_run_applies_from_its_next_tool_call() -> None:
    setup = build()
    for number, _ in LOOKUPS:
        setup.order(number)
    first, second = (calls(("lookup_order", {"order_number": n}), ids=[i]) for n, i in LOOKUPS)

    def after_an_admin_changed_the_rule(request: ChatRequest) -> ChatResponse:
        # A read tool asks nobody by default; an admin now wants every look-up approved.
        ApprovalRule.objects.create(
            tenant=setup.tenant, tool=setup.tools["lookup_order"], mode=ApprovalRule.Mode.ALWAYS
        )
        return second

    run = runtime.execute(setup.start("Where are they?"), client=ScriptedClient(first, after_an_admin_changed_the_rule))

    assert run.status == Run.Status.AWAITING_APPROVAL
    assert run.step_count == 3  # the first look-up ran; the second waits for a reviewer
    [request] = ApprovalRequest.objects.for_tenant(setup.tenant).filter(run=run)
    assert request.call_id == "c2"


@pytest.mark.django_db
def test_a_run_refused_before_its_first_model_call_keeps_its_conversation() -> None:
    setup = build()
    make_budget(setup.tenant, scope=Budget.Scope.TENANT, limit=1)  # one micro-USD: no call fits

    run = runtime.execute(setup.start("Hello"), client=ScriptedClient())

    assert run.status == Run.Status.BUDGET_EXCEEDED and run.step_count == 0
    # Kept in memory until the first step, written by the transaction that ended the run.
    assert run.messages == [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Hello"},
    ]
    assert len(spans(run, kind="guardrail", name="guardrail input")) == 1
