"""The pin-change gate (registered in catalog.services.PIN_CHANGE_GATES from EvalsConfig.ready()).

Approving a pin change is refused while a suite of an agent on the changed alias has not finished
on the candidate model, while a critical case regresses (passed on the baseline, fails on the
candidate), or while the pass rate falls more than the suite's tolerance below the baseline. An
admin's written override (evals.services.gate_override, audited) lets it through.
"""

from __future__ import annotations

from catalog.models import PinChange
from evals.models import EvalRun, Suite
from evals.selectors import gate_report


def candidate_passed_suites(change: PinChange) -> str | None:
    """None to let the approval through, else why not (one sentence per refusing suite).

    Letting it through also makes each suite's complete run on the candidate its baseline: once
    the pin moves, that run is the last accepted run on the current pin. The gate runs inside the
    decision's transaction, so if the change is not applied after all, neither is this."""
    report = gate_report(change)
    if not report.passes:
        return "; ".join(report.problems) + ". Run the suites again or have an admin override the gate with a reason."
    for gate in report.suites:
        if gate.run is not None and gate.run.status == EvalRun.Status.SUCCEEDED:
            EvalRun.objects.for_tenant(change.tenant).filter(pk=gate.run.pk).update(accepted=True)
            Suite.objects.for_tenant(change.tenant).filter(pk=gate.suite.pk).update(baseline=gate.run)
    return None
