"""The pin-change gate: a change request starts the agent's suites on the candidate; approval is
refused while they run, while a critical case regresses or while the pass rate falls more than the
tolerance below the baseline; an admin's written override lets it through, audited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog import selectors as catalog_selectors
from catalog import services as catalog_services
from catalog.clients import ChatRequest, ChatResponse, DemoClient, Usage
from catalog.models import LanguageModel, PinChange
from catalog.services import NotAllowedError, PinChangeGateError
from evals import selectors, services
from evals.models import EvalRun, Suite
from evals.tests.conftest import candidate_model
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError
from tenants.models import AuditEvent
from tenants.testing import ApiClient, Cast, assert_error

pytestmark = pytest.mark.django_db
CANDIDATE = "demo-support-2025-09-01"


class WorseOnCandidate(DemoClient):
    """The demo model, but the candidate answers the inputs in `breaks` at once, without tools."""

    def __init__(self, *breaks: str) -> None:
        self.breaks = breaks

    def chat(self, request: ChatRequest) -> ChatResponse:
        user = next((m["content"] for m in request.messages if m["role"] == "user"), "")
        judging = "strict evaluator" in request.messages[0]["content"]
        if request.model_id == CANDIDATE and not judging and any(b in user for b in self.breaks):
            return ChatResponse(
                content="Thanks for your message!",
                tool_calls=[],
                usage=Usage(input_tokens=30, output_tokens=5),
                model_id=request.model_id,
            )
        return super().chat(request)


@pytest.fixture
def baseline(suite: Suite, execute: Callable[..., EvalRun]) -> EvalRun:
    run = execute(services.eval_run_start(actor=Actor.system_actor("tests"), suite=suite, dispatch=False))
    assert selectors.baseline_for(suite) == run
    return run


def request_change(cast: Cast) -> tuple[PinChange, LanguageModel]:
    model = candidate_model(cast, CANDIDATE)
    change = catalog_services.pin_change_request(
        actor=Actor(user=cast.alice), tenant=cast.acme, alias="default", to_model=model, reason="Newer model"
    )
    return change, model


def candidate_run(change: PinChange) -> EvalRun:
    return EvalRun.objects.for_tenant(change.tenant).select_related("tenant").get(pin_change=change)


def approve(cast: Cast, change: PinChange) -> PinChange:
    return catalog_services.pin_change_decide(actor=Actor(user=cast.alice), change=change, approve=True)


def test_a_request_starts_the_suites_on_the_candidate_and_approval_waits_for_them(
    cast: Cast, baseline: EvalRun, execute: Callable[..., EvalRun]
) -> None:
    change, model = request_change(cast)
    run = candidate_run(change)
    assert run.model == model and run.candidate and run.trigger == "pin_change"
    with pytest.raises(PinChangeGateError, match="still running on the candidate"):
        approve(cast, change)
    execute(run, client=WorseOnCandidate())
    change = approve(cast, change)
    assert change.status == "applied"
    assert catalog_selectors.pinned_model(tenant=cast.acme, alias="default") == model
    # The candidate's run is now the baseline on the new pin.
    suite = Suite.objects.get(pk=run.suite_id)
    assert selectors.baseline_for(suite) == run


def test_approval_is_refused_while_a_critical_case_regresses_and_an_admin_can_override_it(
    cast: Cast, baseline: EvalRun, execute: Callable[..., EvalRun]
) -> None:
    change, _ = request_change(cast)
    execute(candidate_run(change), client=WorseOnCandidate("Where is my order A-1001?"))
    with pytest.raises(PinChangeGateError) as refused:
        approve(cast, change)
    assert "critical case 'Looks an order up before answering'" in refused.value.message
    assert "regresses" in refused.value.message
    change.refresh_from_db()
    assert change.is_open
    report = selectors.gate_report(change)
    [gate] = report.suites
    assert gate.comparison is not None and [c.label for c in gate.comparison.critical_regressions] == [
        "Looks an order up before answering"
    ]

    # Only an admin overrides, and only with a written reason.
    with pytest.raises(NotAllowedError):
        services.gate_override(actor=Actor(user=cast.bob), change=change, reason="We accept the risk here.")
    with pytest.raises(FieldError, match="write why"):
        services.gate_override(actor=Actor(user=cast.alice), change=change, reason="ok")
    services.gate_override(actor=Actor(user=cast.alice), change=change, reason="Vendor fix confirmed; rolling forward.")
    with pytest.raises(ConflictError, match="already overridden"):
        services.gate_override(actor=Actor(user=cast.alice), change=change, reason="Vendor fix confirmed again.")
    audited = AuditEvent.objects.get(tenant=cast.acme, action="eval_gate.override")
    assert audited.actor_label == "alice@acme.test"
    assert audited.after is not None and audited.after["reason"] == "Vendor fix confirmed; rolling forward."
    assert approve(cast, change).status == "applied"


def test_approval_is_refused_when_the_pass_rate_falls_beyond_the_tolerance(
    cast: Cast, suite: Suite, baseline: EvalRun, execute: Callable[..., EvalRun]
) -> None:
    change, _ = request_change(cast)
    # Two non-critical cases fail on the candidate: 80 % against a 100 % baseline.
    execute(candidate_run(change), client=WorseOnCandidate("What did I buy", "Please refund order A-1005"))
    with pytest.raises(PinChangeGateError, match=r"falls from 100% to 80%, more than its tolerance of 10%"):
        approve(cast, change)
    services.suite_update(actor=Actor.system_actor("tests"), suite=suite, tolerance=0.2)
    assert approve(cast, change).status == "applied"


def test_a_suite_without_a_baseline_does_not_gate(cast: Cast, suite: Suite) -> None:
    change, _ = request_change(cast)
    report = selectors.gate_report(change)
    assert report.passes and report.suites[0].baseline is None
    assert approve(cast, change).status == "applied"


def test_the_gate_answers_over_the_api_and_refuses_the_decision_with_409(
    cast: Cast, baseline: EvalRun, execute: Callable[..., EvalRun], api: Callable[..., ApiClient]
) -> None:
    change, _ = request_change(cast)
    execute(candidate_run(change), client=WorseOnCandidate("Please refund order A-1002"))
    admin = api("admin")
    report = admin.get(f"/api/v1/evals/pin-changes/{change.pk}").json()
    assert report["passes"] is False
    assert report["suites"][0]["comparison"]["critical_regressions"] == 1
    refused = assert_error(
        admin.post(f"/api/v1/pin-changes/{change.pk}/decision", {"approve": True}), 409, "pin_change_gate_refused"
    )
    assert "Asks approval before a refund" in refused["message"]
    assert_error(admin.post(f"/api/v1/evals/pin-changes/{change.pk}/override", {"reason": "short"}), 400)
    created = admin.post(f"/api/v1/evals/pin-changes/{change.pk}/override", {"reason": "Accepted by the CTO today."})
    assert created.status_code == 201, created.content
    assert admin.post(f"/api/v1/pin-changes/{change.pk}/decision", {"approve": True}).status_code == 200


def console_run(cast: Cast, suite: Suite, model: LanguageModel) -> EvalRun:
    """A run of `suite` on the candidate started from the console, not by the change."""
    return services.eval_run_start(
        actor=Actor(user=cast.alice), suite=suite, model=model, trigger=EvalRun.Trigger.CONSOLE, dispatch=False
    )


def test_a_newer_run_on_the_candidate_that_regresses_refuses_a_change_its_own_run_passed(
    cast: Cast, suite: Suite, baseline: EvalRun, execute: Callable[..., EvalRun]
) -> None:
    change, model = request_change(cast)
    first = execute(candidate_run(change), client=WorseOnCandidate())
    assert selectors.gate_report(change).passes

    newer = console_run(cast, suite, model)
    report = selectors.gate_report(change)
    # While the newer run goes, the gate waits for it, and says so.
    assert not report.passes and report.suites[0].run == first and report.suites[0].newer == [newer]
    assert "a newer run of 'Support agent: the ten must-dos' on the candidate is still going" in report.problems[0]
    with pytest.raises(PinChangeGateError, match="still going"):
        approve(cast, change)

    execute(newer, client=WorseOnCandidate("Please refund order A-1002"))
    report = selectors.gate_report(change)
    [gate] = report.suites
    assert gate.run == newer and gate.latest == newer and gate.newer == []
    assert not report.passes
    assert "critical case 'Asks approval before a refund'" in report.problems[0]
    assert "newest complete run on the candidate" in report.problems[0]
    with pytest.raises(PinChangeGateError, match="Asks approval before a refund"):
        approve(cast, change)


def test_a_newer_run_that_did_not_complete_is_said_and_its_critical_regression_counts(
    cast: Cast, suite: Suite, baseline: EvalRun, execute: Callable[..., EvalRun], api: Callable[..., ApiClient]
) -> None:
    change, model = request_change(cast)
    complete = execute(candidate_run(change), client=WorseOnCandidate())
    cancelled = console_run(cast, suite, model)
    execute(cancelled, client=WorseOnCandidate(), limit=2)
    services.eval_run_cancel(actor=Actor(user=cast.alice), eval_run=cancelled)
    report = selectors.gate_report(change)
    [gate] = report.suites
    assert gate.run == complete and gate.latest == EvalRun.objects.get(pk=cancelled.pk)
    assert report.passes and len(gate.notes) == 1
    assert "A newer run on the candidate" in gate.notes[0] and "ended cancelled" in gate.notes[0]
    body = api("read").get(f"/api/v1/evals/pin-changes/{change.pk}").json()
    [answered] = body["suites"]
    assert body["passes"] is True and answered["run"] == str(complete.pk) and answered["notes"] == gate.notes
    assert [r["id"] for r in answered["newer_runs"]] == [str(cancelled.pk)]
    assert answered["newer_runs"][0]["status"] == "cancelled"

    broken = console_run(cast, suite, model)
    execute(broken, client=WorseOnCandidate("Where is my order A-1001?"), limit=1)
    services.eval_run_cancel(actor=Actor(user=cast.alice), eval_run=broken)
    report = selectors.gate_report(change)
    assert not report.passes and report.suites[0].run == complete
    assert "critical case 'Looks an order up before answering'" in report.problems[0]
    assert "regresses in the newest run on the candidate" in report.problems[0]


def test_an_override_holds_only_for_the_evidence_it_was_made_on(
    cast: Cast, suite: Suite, baseline: EvalRun, execute: Callable[..., EvalRun]
) -> None:
    change, model = request_change(cast)
    execute(candidate_run(change), client=WorseOnCandidate("Where is my order A-1001?"))
    services.gate_override(actor=Actor(user=cast.alice), change=change, reason="Lookups are fixed by the vendor.")
    report = selectors.gate_report(change)
    assert report.passes and report.override_holds

    # A newer run finishes (and regresses on another critical case): the override no longer counts.
    execute(console_run(cast, suite, model), client=WorseOnCandidate("Please refund order A-1002"))
    report = selectors.gate_report(change)
    assert not report.passes and report.stale_override is not None
    with pytest.raises(PinChangeGateError, match="Asks approval before a refund"):
        approve(cast, change)

    services.gate_override(actor=Actor(user=cast.alice), change=change, reason="Refund approvals are checked by ops.")
    assert approve(cast, change).status == "applied"
    audited = list(AuditEvent.objects.filter(tenant=cast.acme, action="eval_gate.override").order_by("created_at"))
    assert [a.actor_label for a in audited] == ["alice@acme.test", "alice@acme.test"]
    assert audited[1].after is not None
    assert audited[1].after["reason"] == "Refund approvals are checked by ops."
    assert audited[1].after["by"] == "alice@acme.test"
    assert "Asks approval before a refund" in audited[1].after["problems"][0]


def test_the_pins_list_offers_approve_only_when_the_gate_passes(
    cast: Cast, baseline: EvalRun, execute: Callable[..., EvalRun], client: Any
) -> None:
    from django.urls import reverse

    change, _ = request_change(cast)
    client.force_login(cast.alice)
    url = reverse("console:pins", args=[cast.acme.slug])
    waiting = client.get(url).content.decode()
    assert 'data-testid="gate-refuses"' in waiting and "still running on the candidate" in waiting
    assert 'name="approve" value="1"' not in waiting and 'name="approve" value="0"' in waiting
    execute(candidate_run(change), client=WorseOnCandidate())
    passing = client.get(url).content.decode()
    assert 'name="approve" value="1"' in passing and 'data-testid="gate-refuses"' not in passing
