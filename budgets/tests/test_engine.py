"""Budgets in the run engine: every model call is reserved before and settled after, through the
real runtime (agents/runtime.py) and the hook registered by BudgetsConfig.ready()."""

from __future__ import annotations

from typing import Any

import pytest

from agents import hooks, runtime
from agents.models import Agent, Run, Step
from agents.tests.test_runtime import ScriptedClient, answer, no_human_review
from budgets.hooks import BudgetHooks
from budgets.models import Budget, BudgetCounter, LedgerEntry, Reservation
from budgets.selectors import ledger_discrepancies
from budgets.tests.factories import make_budget
from catalog.clients import ProviderError
from tenants.testing import Cast

pytestmark = pytest.mark.django_db


def support_run(cast: Cast, *, text: str = "Order A-1001 arrived broken, please refund it.", **kwargs: Any) -> Run:
    agent = Agent.objects.for_tenant(cast.acme).select_related("current_version").get(name="Support agent")
    assert agent.current_version is not None
    return Run.objects.create(tenant=cast.acme, agent=agent, agent_version=agent.current_version, input=text, **kwargs)


def test_the_budget_hook_is_registered_with_the_engine() -> None:
    assert BudgetHooks.instance in hooks._registered


def test_a_run_reserves_and_settles_every_model_call_at_its_real_cost(cast: Cast) -> None:
    no_human_review(cast.acme)  # the refund would wait for a reviewer
    budget = make_budget(cast.acme, scope=Budget.Scope.END_USER, limit=1_000_000)
    run = runtime.execute(support_run(cast, end_user_id="ann", session_id="s-1"))  # the offline demo provider
    assert run.status == Run.Status.SUCCEEDED, (run.error_type, run.error_message)
    model_steps = Step.objects.for_tenant(cast.acme).filter(run=run, kind="model").count()
    reservations = Reservation.objects.for_tenant(cast.acme).filter(run=run)
    assert reservations.count() == model_steps >= 2
    assert set(reservations.values_list("status", "end_user_id", "session_id", "agent_id")) == {
        ("settled", "ann", "s-1", run.agent_id)
    }
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert (counter.scope_value, counter.settled, counter.reserved) == ("ann", run.cost_micros, 0)
    kinds = list(LedgerEntry.objects.for_tenant(cast.acme).filter(counter=counter).values_list("kind", flat=True))
    assert kinds == ["reserve", "settle"] * model_steps
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_a_run_without_room_ends_budget_exceeded_naming_the_budget_before_calling_the_model(cast: Cast) -> None:
    make_budget(cast.acme, name="Support per session", scope=Budget.Scope.SESSION, limit=100)
    client = ScriptedClient()
    run = runtime.execute(support_run(cast, session_id="s-9"), client=client)
    assert run.status == Run.Status.BUDGET_EXCEEDED and run.error_type == "budget_exceeded"
    assert "Support per session" in run.error_message
    assert client.requests == []  # refused before any model call
    assert not Reservation.objects.for_tenant(cast.acme).exists()


def test_a_budget_spent_by_one_run_refuses_the_next_run(cast: Cast) -> None:
    # Room for one worst-case call (the agent bounds output at 1 024 tokens: 1 536 micro-USD plus
    # the input); once it settled at 2 000, no room for a second.
    make_budget(cast.acme, name="Tiny", limit=3_000, unit=Budget.Unit.USD_MICROS)
    client = ScriptedClient(answer("Let me look.", input_tokens=1000, output_tokens=1000))
    assert runtime.execute(support_run(cast, text="hi"), client=client).status == Run.Status.SUCCEEDED
    second = runtime.execute(support_run(cast, text="hi again"), client=ScriptedClient())
    assert second.status == Run.Status.BUDGET_EXCEEDED and "Tiny" in second.error_message


def test_a_failed_provider_call_releases_its_reservation(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=1_000_000)
    failure = ProviderError("server_error", "upstream said 503", status=503)
    run = runtime.execute(support_run(cast), client=ScriptedClient(failure))
    assert run.status == Run.Status.FAILED
    assert Reservation.objects.for_tenant(cast.acme).get(run=run).status == "released"
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert (counter.settled, counter.reserved) == (0, 0)
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_an_api_key_cap_ends_the_run_before_the_model_call(cast: Cast) -> None:
    from tenants.testing import make_key

    key, _ = make_key(cast.acme, ["runs:write"])
    key.max_tokens_per_request = 100
    key.save(update_fields=["max_tokens_per_request"])
    client = ScriptedClient()
    run = runtime.execute(support_run(cast, text="hello", api_key=key), client=client)
    assert run.status == Run.Status.BUDGET_EXCEEDED and "100 tokens per request" in run.error_message
    assert client.requests == []


def test_the_agents_cap_bounds_input_plus_output_of_every_call(cast: Cast) -> None:
    from catalog.clients.base import estimate_request_tokens

    run = support_run(cast, text="hi")
    type(run.agent_version).objects.filter(pk=run.agent_version_id).update(max_tokens_per_request=900)
    run.agent_version.refresh_from_db()
    client = ScriptedClient(answer("Hello."))
    assert runtime.execute(run, client=client).status == Run.Status.SUCCEEDED
    (request,) = client.requests
    assert request.max_output_tokens == 900 - estimate_request_tokens(request)
    reservation = Reservation.objects.for_tenant(cast.acme).get(run=run)
    assert reservation.input_tokens + reservation.max_output_tokens == 900


def test_a_conversation_over_the_agents_cap_ends_the_run_before_the_model_call(cast: Cast) -> None:
    run = support_run(cast, text="hi")
    type(run.agent_version).objects.filter(pk=run.agent_version_id).update(max_tokens_per_request=40)
    run.agent_version.refresh_from_db()
    client = ScriptedClient()
    run = runtime.execute(run, client=client)
    assert (run.status, run.error_type) == (Run.Status.BUDGET_EXCEEDED, "token_cap_exceeded")
    assert "40 tokens per request allowed for agent 'Support agent'" in run.error_message
    assert client.requests == []


def _full_budget_run(cast: Cast) -> tuple[Budget, Run]:
    budget = make_budget(cast.acme, name="Ask first", limit=1, on_exceed=Budget.OnExceed.REQUIRE_APPROVAL)
    client = ScriptedClient()
    run = runtime.execute(support_run(cast, text="hi"), client=client)
    assert client.requests == []  # no call before the decision
    return budget, run


def _decide(cast: Cast, run: Run, decision: str, note: str = "") -> None:
    from approvals.models import ApprovalRequest
    from approvals.services import approval_decide
    from tenants.audit import Actor
    from tenants.testing import make_key

    approval = ApprovalRequest.objects.for_tenant(cast.acme).get(run=run)
    reviewer, _ = make_key(cast.acme, "approvals:decide", "reviewer")
    approval_decide(approval=approval, actor=Actor(api_key=reviewer), decision=decision, note=note)


def test_a_full_require_approval_budget_pauses_the_run_for_a_reviewer(cast: Cast) -> None:
    from approvals.models import ApprovalRequest

    budget, run = _full_budget_run(cast)
    assert run.status == Run.Status.AWAITING_APPROVAL
    approval = ApprovalRequest.objects.for_tenant(cast.acme).get(run=run)
    assert (approval.action, approval.reason, approval.call_id) == ("budget_override", "budget", "budget:0")
    assert approval.arguments["budget"] == str(budget.pk) and approval.arguments["budget_name"] == "Ask first"
    assert approval.arguments["limit"] == 1 and approval.arguments["requested"] > 1
    assert "Ask first" in approval.reason_detail


def test_an_approved_override_lets_that_one_call_through_counted_past_the_limit(cast: Cast) -> None:
    budget, run = _full_budget_run(cast)
    _decide(cast, run, "approve", "a key customer")
    client = ScriptedClient(answer("Hello.", input_tokens=100, output_tokens=20))
    run = runtime.execute(Run.objects.for_tenant(cast.acme).get(pk=run.pk), client=client)
    assert run.status == Run.Status.SUCCEEDED, (run.error_type, run.error_message)
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert counter.settled > budget.limit and counter.reserved == 0
    assert ledger_discrepancies(tenant=cast.acme) == []
    # The approval was for that call: the next run finds the budget full again and asks again.
    again = runtime.execute(support_run(cast, text="hi again"), client=ScriptedClient())
    assert again.status == Run.Status.AWAITING_APPROVAL


def test_a_rejected_override_ends_the_run_budget_exceeded_with_the_reviewers_comment(cast: Cast) -> None:
    _, run = _full_budget_run(cast)
    _decide(cast, run, "reject", "not for this customer")
    run = runtime.execute(Run.objects.for_tenant(cast.acme).get(pk=run.pk), client=ScriptedClient())
    assert (run.status, run.error_type) == (Run.Status.BUDGET_EXCEEDED, "budget_exceeded")
    assert "Ask first" in run.error_message and "a reviewer declined: not for this customer" in run.error_message


def test_a_budget_override_cannot_be_edited(cast: Cast) -> None:
    from approvals.models import ApprovalRequest
    from approvals.services import approval_decide
    from tenants.audit import Actor
    from tenants.errors import FieldError
    from tenants.testing import make_key

    _, run = _full_budget_run(cast)
    approval = ApprovalRequest.objects.for_tenant(cast.acme).get(run=run)
    reviewer, _ = make_key(cast.acme, "approvals:decide", "reviewer")
    with pytest.raises(FieldError):
        approval_decide(approval=approval, actor=Actor(api_key=reviewer), decision="edit", arguments={"limit": 9})
