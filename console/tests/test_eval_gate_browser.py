"""The pin change's eval gate in real Chromium: alice has a change open whose own eval run passed;
a newer run on the same candidate regresses on a critical case. Her open page withdraws its
"Approve and apply" live, the stale form submitted anyway is refused, the page then judges the
newest run, and only a written override (audited, naming her and her reason) lets it through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog import services as catalog_services
from catalog.models import PinChange
from console.tests.test_browser import sign_in
from evals import selectors, services
from evals.models import EvalRun, Suite
from evals.tests.conftest import candidate_model, run_cases
from evals.tests.test_gate import CANDIDATE, WorseOnCandidate
from tenants.audit import Actor
from tenants.models import AuditEvent
from tenants.testing import Cast

pytestmark = pytest.mark.browser


def test_a_stale_gate_cannot_approve_a_change_a_newer_run_refutes(page_for: Callable[[], Any], cast: Cast) -> None:
    suite = Suite.objects.for_tenant(cast.acme).select_related("tenant", "agent").get()
    run_cases(services.eval_run_start(actor=Actor.system_actor("tests"), suite=suite, dispatch=False))
    model = candidate_model(cast, CANDIDATE)
    change = catalog_services.pin_change_request(
        actor=Actor(user=cast.alice), tenant=cast.acme, alias="default", to_model=model, reason="Newer model"
    )
    own = run_cases(EvalRun.objects.get(pin_change=change), client=WorseOnCandidate())

    alice = page_for()
    sign_in(alice, "alice@acme.test")
    alice.goto(f"/t/acme/pins/changes/{change.pk}/")
    verdict = alice.get_by_test_id("gate-verdict")
    assert verdict.get_attribute("data-passes") == "true" and "Passes" in verdict.inner_text()
    assert alice.get_by_test_id("gate-run").get_attribute("href").endswith(f"/evals/runs/{own.pk}/")

    alice.wait_for_selector('#live-status[data-state="open"]')

    # Meanwhile a newer run on the same candidate regresses on a critical case.
    newer = services.eval_run_start(
        actor=Actor(user=cast.bob), suite=suite, model=model, trigger=EvalRun.Trigger.CONSOLE, dispatch=False
    )
    run_cases(newer, client=WorseOnCandidate("Please refund order A-1002"))

    # The open page hears of it: the approval it offered gives way to "reload".
    # (waited for by its verdict: a redraw from the page's own first connection may come first)
    alice.wait_for_selector('[data-testid="gate-verdict"][data-passes="false"]')
    alice.get_by_test_id("gate-changed").wait_for()
    assert alice.get_by_role("button", name="Approve and apply").count() == 0

    # The form it had, submitted all the same (a page that missed the update), is refused.
    csrf = next(c["value"] for c in alice.context.cookies() if c["name"] == "csrftoken")
    stale = alice.request.post(
        f"/t/acme/pins/changes/{change.pk}/decide/", form={"approve": "1", "note": ""}, headers={"X-CSRFToken": csrf}
    )
    assert stale.status == 200 and "This change cannot be applied yet" in stale.text()
    assert "critical case &#x27;Asks approval before a refund&#x27;" in stale.text()

    alice.reload()
    verdict = alice.get_by_test_id("gate-verdict")
    assert verdict.get_attribute("data-passes") == "false" and "Refuses approval" in verdict.inner_text()
    assert alice.get_by_test_id("gate-run").get_attribute("href").endswith(f"/evals/runs/{newer.pk}/")
    assert "newest complete run on the candidate" in alice.get_by_test_id("gate-run").inner_text()
    assert alice.locator('tr.regression[data-case="Asks approval before a refund"]').count() == 1
    assert alice.get_by_role("button", name="Approve and apply").count() == 0
    assert alice.get_by_test_id("approve-blocked").is_visible()
    change.refresh_from_db()
    assert change.status == PinChange.Status.PENDING

    # An explicit override with a reason, audited, then the approval goes through.
    alice.locator("#gate-override-form textarea[name=reason]").fill("Refund approvals are double-checked by ops.")
    alice.get_by_role("button", name="Override the gate").click()
    alice.get_by_text("The eval gate is overridden for this change").wait_for()
    assert "Overridden" in alice.get_by_test_id("gate-verdict").inner_text()
    alice.get_by_role("button", name="Approve and apply").click()
    alice.get_by_text(f"Approved: default now points at {CANDIDATE}").wait_for()
    change.refresh_from_db()
    assert change.status == PinChange.Status.APPLIED
    override = AuditEvent.objects.get(tenant=cast.acme, action="eval_gate.override")
    assert override.actor_user == cast.alice and override.after is not None
    assert override.after["reason"] == "Refund approvals are double-checked by ops."
    assert selectors.baseline_for(suite) == newer
