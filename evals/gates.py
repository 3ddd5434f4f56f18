"""The pin-change gate (registered in catalog.services.PIN_CHANGE_GATES from EvalsConfig.ready()).

Approving a pin change is refused while a suite of an agent on the changed alias has not finished
on the candidate model, while a critical case regresses (passed on the baseline, fails on the
candidate), or while the pass rate falls more than the suite's tolerance below the baseline. An
admin's written override (evals.services.gate_override, audited) lets it through.
"""

from __future__ import annotations

from catalog.models import PinChange
from evals.selectors import gate_report


def candidate_passed_suites(change: PinChange) -> str | None:
    """None to let the approval through, else why not (one sentence per refusing suite)."""
    report = gate_report(change)
    if report.passes:
        return None
    return "; ".join(report.problems) + ". Run the suites again or have an admin override the gate with a reason."
