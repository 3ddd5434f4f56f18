"""What a refused or admitted call is told: the refusal as a sentence with every figure kept for
machines (BudgetDecision.message and .details), and on admission the tightest budget
(BudgetDecision.tightest), which the gateway sends as `x-aoc-budget-remaining`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.hooks import BudgetDecision, CallContext
from agents.models import Agent
from budgets import services
from budgets.errors import BudgetExceededError
from budgets.hooks import BudgetHooks
from budgets.models import Budget
from budgets.tests.factories import SYSTEM, demo_model, make_budget
from catalog.clients import ChatRequest
from catalog.models import LanguageModel
from tenants.models import Tenant
from tenants.testing import Cast, make_key

pytestmark = pytest.mark.django_db

AT = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)
FIGURES = {
    "budget",
    "budget_name",
    "scope",
    "scope_value",
    "period",
    "limit",
    "used",
    "reserved",
    "requested",
    "remaining",
    "unit",
    "on_exceed",
    "resets_at",
}


def in_utc(tenant: Tenant) -> Tenant:
    tenant.timezone = "UTC"
    tenant.save(update_fields=["timezone"])
    return tenant


def refusal(tenant: Tenant, **kwargs: object) -> BudgetExceededError:
    with pytest.raises(BudgetExceededError) as refused:
        services.budget_reserve(tenant=tenant, model="default", at=AT, **kwargs)  # type: ignore[arg-type]
    return refused.value


def decide(
    cast: Cast, *, max_output_tokens: int = 1000, model: LanguageModel | None = None, **context: object
) -> BudgetDecision:
    model = model or demo_model(cast.acme)
    call = CallContext(tenant=cast.acme, trace_id="1" * 32, source="gateway", **context)  # type: ignore[arg-type]
    # 3 998 characters and the message's "[]" of tool calls: estimated at 1 000 input tokens.
    request = ChatRequest(
        model_id=model.model_id, messages=[{"role": "user", "content": "x" * 3998}], max_output_tokens=max_output_tokens
    )
    return BudgetHooks.instance.reserve_before_model_call(call=call, model=model, request=request)


def test_a_used_up_per_end_user_budget_says_so_in_a_sentence(cast: Cast) -> None:
    tenant = in_utc(cast.acme)
    budget = make_budget(tenant, name="Support daily", scope="end_user", period="day", limit=10_000)
    services.budget_adjust(actor=SYSTEM, budget=budget, settled_delta=10_000, note="spent", scope_value="u-42", at=AT)
    error = refusal(tenant, input_tokens=200, max_output_tokens=200, end_user_id="u-42")
    assert error.message == (
        "Budget 'Support daily' (per end user, daily) is used up for end user 'u-42': $0.0100 of $0.0100 spent; "
        "this call needs up to $0.0004. It resets at 2026-12-05 00:00 UTC."
    )
    assert set(error.extra) == FIGURES
    assert (error.extra["scope_value"], error.extra["remaining"], error.extra["requested"]) == ("u-42", 0, 400)


def test_a_budget_with_calls_in_flight_says_what_is_reserved_and_left(cast: Cast) -> None:
    tenant = in_utc(cast.acme)
    make_budget(tenant, name="Team", period="month", limit=10_000)
    services.budget_reserve(tenant=tenant, model="default", input_tokens=1200, max_output_tokens=5000, at=AT)
    error = refusal(tenant, input_tokens=1000, max_output_tokens=1000)
    assert error.message == (
        "Budget 'Team' (tenant-wide, monthly) has too little left for the tenant: $0.0000 of $0.0100 spent, "
        "$0.0081 more reserved by calls in flight, $0.0019 left; this call needs up to $0.0020. "
        "It resets at 2027-01-01 00:00 UTC."
    )


def test_a_tokens_budget_counts_in_tokens_and_a_total_one_never_resets(cast: Cast) -> None:
    make_budget(cast.acme, name="Tokens", unit="tokens", period="total", limit=1_500)
    error = refusal(cast.acme, input_tokens=1000, max_output_tokens=1000)
    assert error.message == (
        "Budget 'Tokens' (tenant-wide, in total) has too little left for the tenant: 0 of 1,500 tokens spent, "
        "1,500 tokens left; this call needs up to 2,000 tokens. It is a total budget and never resets."
    )
    assert (error.extra["unit"], error.extra["resets_at"]) == ("tokens", None)


def test_the_tenants_zone_is_named_beside_utc(cast: Cast) -> None:
    make_budget(cast.acme, name="Paris daily", period="day", limit=100)  # Acme's zone is Europe/Paris
    assert refusal(cast.acme, input_tokens=1000, max_output_tokens=1000).message.endswith(
        "It resets at 2026-12-04 23:00 UTC (2026-12-05 00:00 Europe/Paris)."
    )


def test_agent_and_key_budgets_name_the_agent_and_the_key_not_their_ids(cast: Cast) -> None:
    agent = Agent.objects.for_tenant(cast.acme).get(name="Support agent")
    key, _ = make_key(cast.acme, ["budgets:reserve"], name="checkout service")
    per_agent = make_budget(cast.acme, name="Per agent", scope="agent", limit=10)
    error = refusal(cast.acme, input_tokens=10, max_output_tokens=10, agent=agent, check_agent_cap=False)
    assert "(per agent, monthly) has too little left for agent 'Support agent':" in error.message
    assert error.extra["scope_value"] == str(agent.pk)
    services.budget_update(actor=SYSTEM, budget=per_agent, enabled=False)
    make_budget(cast.acme, name="Per key", scope="api_key", limit=10, agent=agent)
    error = refusal(cast.acme, input_tokens=10, max_output_tokens=10, agent=agent, api_key=key, check_agent_cap=False)
    assert (
        "(per API key, monthly, for agent 'Support agent' only) has too little left for API key 'checkout service':"
        in error.message
    )


def test_a_metered_anonymous_bucket_reads_as_calls_without_an_end_user(cast: Cast) -> None:
    make_budget(cast.acme, name="Per user", scope="end_user", limit=10, meter_anonymous=True)
    error = refusal(cast.acme, input_tokens=10, max_output_tokens=10)
    assert "(per end user, monthly) has too little left for calls without an end user:" in error.message


def test_the_hook_puts_the_sentence_in_message_and_every_figure_in_details(cast: Cast) -> None:
    make_budget(cast.acme, name="Support daily", scope="end_user", period="day", limit=1_000)
    decision = decide(cast, end_user_id="u-42")
    assert not decision.admitted and decision.reservation_id == "" and decision.tightest is None
    assert decision.message.startswith("Budget 'Support daily' (per end user, daily) has too little left for end user")
    assert set(decision.details) == FIGURES
    assert (decision.details["scope_value"], decision.details["limit"], decision.details["unit"]) == (
        "u-42",
        1_000,
        "usd_micros",
    )


def test_a_token_cap_refusal_carries_its_type_and_figures(cast: Cast) -> None:
    from tenants.models import ApiKey

    key, _ = make_key(cast.acme, ["gateway"], name="capped")
    ApiKey.objects.filter(pk=key.pk).update(max_tokens_per_request=100)
    key.refresh_from_db()
    decision = decide(cast, api_key=key)
    assert not decision.admitted
    assert decision.details == {"type": "token_cap_exceeded", "cap": 100, "requested": 2000}


def test_an_admission_names_the_tightest_budget_after_its_hold(cast: Cast) -> None:
    make_budget(cast.acme, name="Roomy", limit=1_000_000)  # 0.2 % held
    make_budget(cast.acme, name="Team tokens", unit="tokens", limit=10_000)  # 20 % held
    user = make_budget(cast.acme, name="Per user", scope="end_user", period="day", limit=5_000)  # 40 % held
    make_budget(cast.acme, name="Soft", limit=2_000, on_exceed="alert_only")  # full, but never refuses
    decision = decide(cast, end_user_id="u-7")
    assert decision.admitted
    resets_at = decision.tightest["resets_at"] if decision.tightest else None
    assert decision.tightest == {
        "id": str(user.pk),
        "name": "Per user",
        "unit": "usd_micros",
        "limit": 5_000,
        "remaining": 3_000,
        "resets_at": resets_at,
        "held": 2_000,
        "scope": "end_user",
        "scope_value": "u-7",
    }
    assert resets_at is not None and datetime.fromisoformat(resets_at) > datetime.now(UTC)
    second = decide(cast, end_user_id="u-7")
    assert second.tightest is not None and (second.tightest["name"], second.tightest["remaining"]) == (
        "Per user",
        1_000,
    )


def test_without_a_budget_that_can_refuse_tightest_is_none(cast: Cast) -> None:
    assert decide(cast).tightest is None
    make_budget(cast.acme, name="Soft", limit=10, on_exceed=Budget.OnExceed.ALERT_ONLY)
    decision = decide(cast)
    assert decision.admitted and decision.tightest is None


def test_tightest_costs_no_query_of_its_own(cast: Cast) -> None:
    make_budget(cast.acme, name="Per user", scope="end_user", limit=1_000_000)
    decide(cast, end_user_id="u-1")  # the counter exists now
    model = demo_model(cast.acme)
    with CaptureQueriesContext(connection) as without:
        services.budget_reserve(tenant=cast.acme, model=model, input_tokens=1, max_output_tokens=1, end_user_id="u-1")
    with CaptureQueriesContext(connection) as with_it:
        assert decide(cast, model=model, end_user_id="u-1").tightest is not None
    assert len(with_it) == len(without)
