"""Writes of evals: suites and cases (audited), eval runs (start, execute case by case, cancel,
finish, accept as baseline), the pin-change gate's override, reviews and cases made from runs.

Execution. `eval_run_start` stores the run and one pending EvalResult per case (with a snapshot
of the case), then, after commit, asks `eval_dispatch` for the tenant. Dispatch holds a per-tenant
advisory lock, counts the tenant's results already running and marks pending ones running up to
EVAL_CONCURRENCY_PER_TENANT, sending one Celery task per result; each finished case dispatches
again. A case is a real agent run of the eval run's agent version on its model (evals/hooks.py
says what differs from production), executed in-process by the case's task, then scored by its
assertions and judge. The last case to finish computes the totals.

Budget. Every model call of the cases and of the judge is reserved on the eval run's own budget
(`budget_micros`, from the suite) besides the tenant's budgets. When a call is refused the case is
an error, no further case starts (pending ones are skipped), and the eval run ends
`budget_exceeded` with the results it has.

The package, by concern (each name is re-exported here, so `evals.services.<name>` is the one
way in): `suites` (suites and cases), `case_import` (cases from JSON Lines, runs and traces),
`runs` (start, cancel, accept), `execution` (dispatch, each case, scoring, totals, the sweep),
`gate` (the gate's override, reviews, pin changes).
"""

from evals.services.case_import import case_as_json_line, case_from_run, case_from_trace, cases_import
from evals.services.execution import (
    ERROR_TYPES_OF_RUNS,
    STUCK_AFTER_SECONDS,
    concurrency_per_tenant,
    eval_dispatch,
    eval_result_claim,
    eval_result_execute,
    eval_sweep,
    percentile,
)
from evals.services.gate import gate_override, pin_change_requested, review_create
from evals.services.runs import eval_run_accept, eval_run_cancel, eval_run_start
from evals.services.suites import (
    CASE_FIELDS,
    MAX_CASES,
    MAX_IMPORT_LINES,
    MAX_INPUT_CHARS,
    MAX_RUN_BUDGET_MICROS,
    MAX_TAGS,
    case_create,
    case_delete,
    case_update,
    suite_create,
    suite_delete,
    suite_update,
)

__all__ = [
    "CASE_FIELDS",
    "ERROR_TYPES_OF_RUNS",
    "MAX_CASES",
    "MAX_IMPORT_LINES",
    "MAX_INPUT_CHARS",
    "MAX_RUN_BUDGET_MICROS",
    "MAX_TAGS",
    "STUCK_AFTER_SECONDS",
    "case_as_json_line",
    "case_create",
    "case_delete",
    "case_from_run",
    "case_from_trace",
    "case_update",
    "cases_import",
    "concurrency_per_tenant",
    "eval_dispatch",
    "eval_result_claim",
    "eval_result_execute",
    "eval_run_accept",
    "eval_run_cancel",
    "eval_run_start",
    "eval_sweep",
    "gate_override",
    "percentile",
    "pin_change_requested",
    "review_create",
    "suite_create",
    "suite_delete",
    "suite_update",
]
