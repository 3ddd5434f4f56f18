"""The eval sandbox: an eval case's built-in tools act on its own fixture state, never on the
tenant's demo orders or outbox; production refunds do not change what the suite sees; and a tool
result that differs from the baseline's is reported as such, never as the model's regression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agents import services as agent_services
from agents import tools
from agents.models import DemoEmail, DemoOrder, Run, Tool, ToolExecution
from catalog import services as catalog_services
from evals import sandbox, selectors, services
from evals.models import EvalResult, EvalRun, Suite
from evals.tests.conftest import candidate_model
from tenants.audit import Actor
from tenants.errors import FieldError
from tenants.testing import ApiClient, Cast, assert_error

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system_actor("tests")


def start(suite: Suite, **options: Any) -> EvalRun:
    return services.eval_run_start(actor=SYSTEM, suite=suite, dispatch=False, **options)


def refund_in_production(cast: Cast, *numbers: str) -> Run:
    """Refund orders the way a production run of the Support agent does (its refund tool)."""
    run = agent_services.run_create(
        actor=Actor(user=cast.alice), tenant=cast.acme, agent=Suite.objects.get(tenant=cast.acme).agent, input="x"
    )
    refund = Tool.objects.for_tenant(cast.acme).get(name="refund_order")
    for i, number in enumerate(numbers, start=1):
        result = tools.execute_tool(
            run=run, tool=refund, step_index=i, call_id=f"c{i}", arguments={"order_number": number}
        )
        assert result.ok, result.error
    return run


def result_of(eval_run: EvalRun, label: str) -> EvalResult:
    return next(r for r in selectors.results_of(eval_run=eval_run) if r.label == label)


def test_a_rerun_of_the_demo_suite_after_production_refunds_reports_no_regression(
    cast: Cast, suite: Suite, execute: Callable[..., EvalRun]
) -> None:
    baseline = execute(start(suite))
    assert baseline.passed_cases == 10 and selectors.baseline_for(suite) == baseline

    # Three refunds in production, A-1002 among them (the walk-through).
    production = refund_in_production(cast, "A-1002", "A-1001", "A-1003")
    live = tools.lookup_order(production, {"order_number": "A-1002"})
    assert live.content["status"] == "refunded"

    again = execute(start(suite))
    assert again.status == "succeeded" and again.passed_cases == 10
    comparison = selectors.compare(again, baseline)
    assert comparison.regressions == [] and comparison.critical_regressions == [] and comparison.data_changes == []
    refund_case = result_of(again, "Asks approval before a refund")
    assert refund_case.passed
    # The case looked A-1002 up in its sandbox (paid) and refunded it there, at the sandbox's clock.
    lookup, refund = (c for c in refund_case.tool_calls if c["name"] in ("lookup_order", "refund_order"))
    assert lookup["result"]["status"] == "paid"
    assert refund["result"]["refunded"] is True and refund["result"]["refunded_at"] == sandbox.DEFAULT_CLOCK
    [sandboxed] = [o for o in refund_case.sandbox["orders"] if o["order_number"] == "A-1002"]
    assert sandboxed["status"] == "refunded" and sandboxed["refund_count"] == 1

    # And the evals changed nothing in production: refunded once each, no eval email in the outbox.
    orders = {o.number: o for o in DemoOrder.objects.for_tenant(cast.acme)}
    assert {n: (o.status, o.refund_count) for n, o in orders.items()} == {
        "A-1001": ("refunded", 1),
        "A-1002": ("refunded", 1),
        "A-1003": ("refunded", 1),
        "A-1004": ("paid", 0),
        "A-1005": ("paid", 0),
    }
    assert not DemoEmail.objects.for_tenant(cast.acme).exists()
    email_case = result_of(again, "Emails the customer when asked")
    assert email_case.passed and [e["to"] for e in email_case.sandbox["emails"]] == ["amara.okafor@example.com"]


def test_a_pin_change_after_production_refunds_passes_its_gate(
    cast: Cast, suite: Suite, execute: Callable[..., EvalRun]
) -> None:
    execute(start(suite))
    refund_in_production(cast, "A-1002", "A-1004", "A-1005")
    change = catalog_services.pin_change_request(
        actor=Actor(user=cast.alice),
        tenant=cast.acme,
        alias="default",
        to_model=candidate_model(cast),
        reason="Newer model",
    )
    execute(EvalRun.objects.get(pin_change=change))
    report = selectors.gate_report(change)
    assert report.passes and report.problems == []
    approved = catalog_services.pin_change_decide(actor=Actor(user=cast.alice), change=change, approve=True)
    assert approved.status == "applied"


def test_each_case_has_its_own_state_and_a_sandboxed_refund_is_recorded_once(
    cast: Cast, suite: Suite, execute: Callable[..., EvalRun]
) -> None:
    eval_run = execute(start(suite))
    assert eval_run.fixtures == sandbox.demo_fixtures()
    refund_case = result_of(eval_run, "Asks approval before a refund")
    rejected_case = result_of(eval_run, "Does not refund when the reviewer rejects")
    # Refunded in the refund case's own state only; the other cases never saw it.
    statuses = {o["order_number"]: o["status"] for o in refund_case.sandbox["orders"]}
    assert statuses["A-1002"] == "refunded" and statuses["A-1004"] == "paid"
    assert all(o["status"] == "paid" for o in rejected_case.sandbox.get("orders", []))
    execution = ToolExecution.objects.for_tenant(cast.acme).get(run=refund_case.run, tool__name="refund_order")
    assert execution.status == "succeeded" and (execution.result or {})["order_number"] == "A-1002"
    # Calling the same refund again (a redelivered task) returns the stored result: once only.
    refund = Tool.objects.for_tenant(cast.acme).get(name="refund_order")
    assert refund_case.run is not None
    again = tools.execute_tool(
        run=refund_case.run,
        tool=refund,
        step_index=execution.step_index,
        call_id=execution.call_id,
        arguments=execution.arguments,
    )
    assert again.ok and again.content == execution.result
    refund_case.refresh_from_db()
    [order] = [o for o in refund_case.sandbox["orders"] if o["order_number"] == "A-1002"]
    assert order["refund_count"] == 1
    assert DemoOrder.objects.for_tenant(cast.acme).get(number="A-1002").status == "paid"


def test_a_tool_result_that_differs_from_the_baseline_is_not_called_a_regression(
    cast: Cast, suite: Suite, execute: Callable[..., EvalRun]
) -> None:
    baseline = execute(start(suite))
    fixtures = sandbox.demo_fixtures()
    for order in fixtures["orders"]:
        if order["order_number"] == "A-1002":
            order["status"] = "refunded"
    services.suite_update(actor=SYSTEM, suite=suite, fixtures={"orders": fixtures["orders"]})

    changed = execute(start(suite))
    comparison = selectors.compare(changed, baseline)
    [case] = [c for c in comparison.cases if c.label == "Asks approval before a refund"]
    assert case.now is not None and not case.now.passed  # the agent saw a refunded order
    assert case.data_changed and not case.regression
    assert comparison.critical_regressions == [] and comparison.regressions == []
    [difference] = case.tool_changes
    assert difference["tool"] == "lookup_order" and difference["arguments"] == {"order_number": "A-1002"}
    assert (difference["before"]["status"], difference["now"]["status"]) == ("paid", "refunded")
    assert comparison.as_dict()["data_changes"] == 1

    # On a pin change, the gate cannot conclude from such a case and says why, without "regresses".
    change = catalog_services.pin_change_request(
        actor=Actor(user=cast.alice),
        tenant=cast.acme,
        alias="default",
        to_model=candidate_model(cast),
        reason="Newer model",
    )
    execute(EvalRun.objects.get(pin_change=change))
    [problem] = selectors.gate_report(change).problems
    assert "cannot be compared" in problem and "answered otherwise than for the baseline" in problem
    assert "regresses" not in problem


def test_cases_whose_tools_answered_otherwise_are_left_out_of_the_pass_rate_the_gate_compares(
    cast: Cast, suite: Suite, execute: Callable[..., EvalRun]
) -> None:
    execute(start(suite))
    fixtures = sandbox.demo_fixtures()
    for order in fixtures["orders"]:
        if order["order_number"] == "A-1003":  # another item and customer: two non-critical cases fail
            order.update(item="Road bike", customer_email="someone.else@example.com")
    services.suite_update(actor=SYSTEM, suite=suite, fixtures={"orders": fixtures["orders"]})
    change = catalog_services.pin_change_request(
        actor=Actor(user=cast.alice),
        tenant=cast.acme,
        alias="default",
        to_model=candidate_model(cast),
        reason="Newer model",
    )
    candidate = execute(EvalRun.objects.get(pin_change=change))
    assert candidate.passed_cases == 8  # 80 % against 100 %: beyond the suite's 10 % tolerance
    report = selectors.gate_report(change)
    [gate] = report.suites
    assert gate.comparison is not None
    assert sorted(c.label for c in gate.comparison.data_changes) == [
        "Emails the customer when asked",
        "Names the item that was bought",
    ]
    assert gate.comparison.regressions == []
    assert gate.comparison.comparable_pass_rates == (1.0, 1.0)
    assert report.passes and report.problems == []


def test_fixtures_are_checked(cast: Cast, suite: Suite) -> None:
    for bad, message in [
        ([], "a JSON object"),
        ({"customers": []}, "unknown key 'customers'"),
        ({"orders": [{"order_number": "1002"}]}, r"orders\[0\].order_number"),
        (
            {"orders": [{"order_number": "A-1", "customer_email": "x@example.com", "item": "x", "amount_cents": 1}]},
            "look like A-1001",
        ),
        (
            {
                "orders": [
                    {"order_number": "A-1001", "customer_email": "x@example.com", "item": "x", "amount_cents": -1}
                ]
            },
            "amount_cents",
        ),
        ({"clock": "yesterday"}, "ISO 8601"),
    ]:
        with pytest.raises(FieldError, match=message):
            services.suite_update(actor=SYSTEM, suite=suite, fixtures=bad)
    services.suite_update(
        actor=SYSTEM,
        suite=suite,
        fixtures={
            "orders": [
                {"order_number": "b-2001", "customer_email": "x@example.com", "item": " Kettle ", "amount_cents": 999}
            ]
        },
    )
    suite.refresh_from_db()
    assert suite.fixtures["orders"][0] == {
        "order_number": "B-2001",
        "customer_email": "x@example.com",
        "item": "Kettle",
        "amount_cents": 999,
        "status": "paid",
    }


def test_the_api_takes_a_suites_fixtures_and_refuses_bad_ones(
    cast: Cast, suite: Suite, api: Callable[..., ApiClient]
) -> None:
    admin = api("admin")
    error = assert_error(admin.patch(f"/api/v1/evals/suites/{suite.pk}", {"fixtures": {"orders": "all"}}), 400)
    assert "orders must be a list" in str(error)
    orders = [{"order_number": "A-1001", "customer_email": "x@example.com", "item": "Lamp", "amount_cents": 5}]
    response = admin.patch(f"/api/v1/evals/suites/{suite.pk}", {"fixtures": {"orders": orders}})
    assert response.status_code == 200, response.content
    assert response.json()["fixtures"]["orders"][0]["item"] == "Lamp"
