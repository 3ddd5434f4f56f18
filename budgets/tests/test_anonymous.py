"""A per-end-user or per-session budget applies only to calls that name an end user (a session),
unless it opts in with `meter_anonymous`: then calls without one share one "(none given)" bucket.

Each case against the three callers: a run of the engine, an eval run, and a gateway call (a
CallContext without a Run, through the budget hook), and the REST reservation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import reverse

from agents import runtime
from agents.hooks import CallContext
from agents.models import Agent, Run
from agents.tests.test_runtime import ScriptedClient, answer
from budgets import services
from budgets.hooks import BudgetHooks
from budgets.models import Budget, BudgetCounter
from budgets.selectors import applicable_budgets, ledger_discrepancies
from budgets.tests.factories import SYSTEM, demo_model, make_budget
from catalog.clients import ChatRequest
from evals import services as eval_services
from evals.models import EvalRun, Suite
from tenants.models import Scope
from tenants.testing import ApiClient, Cast, assert_error

pytestmark = pytest.mark.django_db

ONE_CENT = 10_000  # micro-USD


def spent_anonymous_cent(
    cast: Cast, *, meter_anonymous: bool, scope: str = Budget.Scope.END_USER, name: str = "Support daily"
) -> Budget:
    """A one-cent per-end-user (per-session) budget whose anonymous bucket is already full, as if
    earlier calls without an end user had spent it (an `adjust` on the "" counter)."""
    budget = make_budget(
        cast.acme, name=name, scope=scope, period="day", limit=ONE_CENT, meter_anonymous=meter_anonymous
    )
    services.budget_adjust(actor=SYSTEM, budget=budget, settled_delta=ONE_CENT, note="earlier anonymous calls")
    return budget


def anonymous_run(cast: Cast, **kwargs: str) -> Run:
    agent = Agent.objects.for_tenant(cast.acme).select_related("current_version").get(name="Support agent")
    assert agent.current_version is not None
    run = Run.objects.create(tenant=cast.acme, agent=agent, agent_version=agent.current_version, input="hi", **kwargs)
    return runtime.execute(run, client=ScriptedClient(answer("Hello.")))


def gateway_call(cast: Cast, *, end_user_id: str = "", session_id: str = "") -> tuple[bool, str]:
    model = demo_model(cast.acme)
    call = CallContext(
        tenant=cast.acme, trace_id="0" * 32, end_user_id=end_user_id, session_id=session_id, source="gateway"
    )
    request = ChatRequest(model_id=model.model_id, messages=[{"role": "user", "content": "hi"}], max_output_tokens=100)
    decision = BudgetHooks.instance.reserve_before_model_call(call=call, model=model, request=request)
    if decision.admitted:
        BudgetHooks.instance.settle_after_model_call(
            call=call, model=model, reservation=decision, usage=None, cost_micros=0
        )
    return decision.admitted, decision.message


def first_eval_case(suite: Suite, execute: Callable[..., EvalRun]) -> str:
    eval_run = execute(eval_services.eval_run_start(actor=SYSTEM, suite=suite, dispatch=False), limit=1)
    result = eval_run.results.order_by("position").first()
    assert result is not None
    return f"{result.status}: {result.error}"


def test_a_new_budget_leaves_anonymous_metering_off() -> None:
    assert Budget._meta.get_field("meter_anonymous").default is False


def test_a_spent_per_end_user_budget_no_longer_stops_anonymous_runs_evals_or_calls(
    cast: Cast, suite: Suite, execute: Callable[..., EvalRun]
) -> None:
    budget = spent_anonymous_cent(cast, meter_anonymous=False)
    assert applicable_budgets(tenant=cast.acme) == []
    assert anonymous_run(cast).status == Run.Status.SUCCEEDED
    assert first_eval_case(suite, execute).startswith("passed")
    assert gateway_call(cast) == (True, "")
    reservation = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=10, max_output_tokens=10)
    assert not reservation.lines.exists()  # it held nothing: no budget applied
    # Only the "" counter the adjustment made: no anonymous call was counted.
    assert list(BudgetCounter.objects.for_tenant(cast.acme).values_list("scope_value", "settled", "reserved")) == [
        ("", ONE_CENT, 0)
    ]
    # A call that names an end user still counts against that end user's cent.
    assert anonymous_run(cast, end_user_id="u-42").status == Run.Status.SUCCEEDED
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget, scope_value="u-42")
    assert counter.settled > 0 and counter.reserved == 0
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_with_meter_anonymous_the_anonymous_calls_share_one_bucket_and_are_stopped(
    cast: Cast, suite: Suite, execute: Callable[..., EvalRun]
) -> None:
    spent_anonymous_cent(cast, meter_anonymous=True)
    run = anonymous_run(cast)
    assert run.status == Run.Status.BUDGET_EXCEEDED and "Support daily" in run.error_message
    outcome = first_eval_case(suite, execute)
    assert not outcome.startswith("passed") and "Support daily" in outcome
    admitted, message = gateway_call(cast)
    assert not admitted and "Support daily" in message and "calls without an end user" in message
    # An end user of their own is not in the anonymous bucket.
    assert gateway_call(cast, end_user_id="u-42") == (True, "")
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_a_per_session_budget_skips_calls_without_a_session_unless_it_meters_them(cast: Cast) -> None:
    spent_anonymous_cent(cast, meter_anonymous=False, scope=Budget.Scope.SESSION)
    assert gateway_call(cast, end_user_id="u-1") == (True, "")
    spent_anonymous_cent(cast, meter_anonymous=True, scope=Budget.Scope.SESSION, name="Per session")
    admitted, message = gateway_call(cast, end_user_id="u-1")
    assert not admitted and "calls without a session" in message
    assert gateway_call(cast, end_user_id="u-1", session_id="s-1") == (True, "")


def test_meter_anonymous_over_rest_is_read_written_and_checked(cast: Cast, api: Callable[..., ApiClient]) -> None:
    admin = api(Scope.ADMIN)
    created = admin.post(
        reverse("budget-list"), {"name": "Per user", "scope": "end_user", "limit": ONE_CENT, "meter_anonymous": True}
    )
    assert created.status_code == 201, created.content
    assert created.json()["meter_anonymous"] is True
    budget_id = created.json()["id"]
    assert admin.get(reverse("budget-detail", args=[budget_id])).json()["meter_anonymous"] is True
    patched = admin.patch(reverse("budget-detail", args=[budget_id]), {"meter_anonymous": False})
    assert patched.status_code == 200 and patched.json()["meter_anonymous"] is False
    default = admin.post(reverse("budget-list"), {"name": "Per user 2", "scope": "end_user", "limit": ONE_CENT})
    assert default.json()["meter_anonymous"] is False
    # Only a scope a call may leave out has anonymous calls to meter; a bad value names the field.
    error = assert_error(
        admin.post(reverse("budget-list"), {"name": "Tenant", "limit": ONE_CENT, "meter_anonymous": True}), 400
    )
    assert "meter_anonymous" in error["fields"]
    error = assert_error(admin.patch(reverse("budget-detail", args=[budget_id]), {"meter_anonymous": "often"}), 400)
    assert "meter_anonymous" in error["fields"]
    schema = admin.get("/api/v1/schema/?format=json").json()
    assert "meter_anonymous" in schema["components"]["schemas"]["Budget"]["properties"]
    assert "meter_anonymous" in schema["components"]["schemas"]["BudgetWrite"]["properties"]


def test_moving_a_metering_budget_to_the_tenant_scope_turns_metering_off(cast: Cast) -> None:
    budget = make_budget(cast.acme, scope=Budget.Scope.END_USER, limit=ONE_CENT, meter_anonymous=True)
    budget = services.budget_update(actor=SYSTEM, budget=budget, scope=Budget.Scope.TENANT)
    assert (budget.scope, budget.meter_anonymous) == ("tenant", False)


def test_the_anonymous_rest_reservation_is_refused_only_with_metering(
    cast: Cast, api: Callable[..., ApiClient]
) -> None:
    reserver = api(Scope.BUDGETS_RESERVE)
    body = {"model": "default", "input_tokens": 10, "max_output_tokens": 10}
    budget = spent_anonymous_cent(cast, meter_anonymous=False)
    assert reserver.post(reverse("reservation-list"), body).status_code == 201
    services.budget_update(actor=SYSTEM, budget=budget, meter_anonymous=True)
    error = assert_error(reserver.post(reverse("reservation-list"), body), 402, "budget_exceeded")
    assert (error["budget"], error["scope"], error["scope_value"]) == (str(budget.pk), "end_user", "")
