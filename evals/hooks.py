"""The run engine's eval hook points, for the agent runs of eval cases only.

A case's run carries `metadata.eval_result` (its EvalResult's id), and that result points back at
the run: a run that merely claims the key in its metadata (an API client could write any metadata)
is not an eval run, since no result of its tenant points at it.

For an eval run:
- the model is the eval run's (the pin when it started, or the candidate under evaluation);
- a call that needs a human's approval is decided at once as the case declares (`approval`,
  default approve), recorded on the run, and never reaches the approval queue;
- a tool named in the case's `tool_results` returns that result instead of running; a
  side-effecting webhook tool the case does not simulate is simulated anyway (never called: eval
  runs do not reach production webhooks); built-in demo tools act on the case's own fixture state
  (evals/sandbox.py), never on the tenant's demo tables;
- every model call (the agent's and the judge's) is reserved on the eval run's own budget, after
  the tenant's budgets (budgets/hooks.py, registered first) admitted it. Each result records what
  its calls hold; a case whose execution died mid-call has that hold charged at the worst case when
  the case is taken up again (charge_lost_holds), so a dead worker never shrinks the budget for good.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import transaction
from django.db.models import F

from agents.hooks import ADMITTED, BudgetDecision, CallContext, RunHooks
from agents.models import Tool
from agents.tools import ToolResult
from catalog.clients.base import estimate_request_tokens
from evals.models import EvalResult, EvalRun

if TYPE_CHECKING:
    from agents.models import Run
    from catalog.clients import ChatRequest, Usage
    from catalog.models import LanguageModel

logger = logging.getLogger(__name__)

RESERVATION_PREFIX = "eval-result:"  # then the result id and the worst case held


def eval_result_of(run: Run) -> EvalResult | None:
    """The eval result whose case `run` executes, or None for any other run (one query, or none)."""
    result_id = (run.metadata or {}).get("eval_result") if isinstance(run.metadata, dict) else None
    if not result_id:
        return None
    return (
        EvalResult.objects.for_tenant(run.tenant)
        .select_related("eval_run__model__provider")
        .filter(pk=str(result_id), run_id=run.pk)
        .first()
    )


class EvalHooks(RunHooks):
    """See the module docstring."""

    instance: ClassVar[EvalHooks]

    def is_rehearsal(self, *, run: Run) -> bool:
        return eval_result_of(run) is not None

    def model_for_run(self, *, run: Run) -> LanguageModel | None:
        result = eval_result_of(run)
        return result.eval_run.model if result is not None else None

    def decide_without_reviewer(
        self, *, run: Run, tool: Tool, call_id: str, arguments: dict[str, Any], reason: str
    ) -> dict[str, Any] | None:
        result = eval_result_of(run)
        if result is None:
            return None
        approved = result.case_snapshot.get("approval", "approve") != "reject"
        return {
            "approved": approved,
            "note": f"Decided by the eval case ({'approve' if approved else 'reject'}), not by a reviewer.",
            "eval": True,
            "tool": tool.name,
            "reason": reason,
        }

    def simulated_tool_result(self, *, run: Run, tool: Tool, arguments: dict[str, Any]) -> ToolResult | None:
        result = eval_result_of(run)
        if result is None:
            return None
        declared = result.case_snapshot.get("tool_results") or {}
        if tool.name in declared:
            value = declared[tool.name]
            if isinstance(value, dict) and isinstance(value.get("error"), str):
                return ToolResult.failure(value["error"])
            return ToolResult(content=value)
        if tool.has_side_effects and tool.executor == Tool.Executor.WEBHOOK:
            return ToolResult(content={"ok": True, "simulated": True, "note": "Not sent: this is an eval run."})
        return None

    def reserve_before_model_call(
        self, *, call: CallContext, model: LanguageModel, request: ChatRequest
    ) -> BudgetDecision:
        run = call.run
        if run is None:
            return ADMITTED  # not an eval case's call
        result_id = (run.metadata or {}).get("eval_result") if isinstance(run.metadata, dict) else None
        if not result_id:
            return ADMITTED
        if not model.is_priced:
            if not EvalResult.objects.for_tenant(run.tenant).filter(pk=str(result_id), run_id=run.pk).exists():
                return ADMITTED
            return BudgetDecision(admitted=False, message=f"{model} has no prices; an eval run cannot spend on it.")
        worst = model.cost_micros(
            input_tokens=estimate_request_tokens(request), output_tokens=request.max_output_tokens
        )
        with transaction.atomic():
            # Locks in one order everywhere: the result, then its eval run.
            result = (
                EvalResult.objects.for_tenant(run.tenant)
                .select_for_update()
                .filter(pk=str(result_id), run_id=run.pk)
                .only("pk", "eval_run_id")
                .first()
            )
            if result is None:
                return ADMITTED
            # One conditional UPDATE: admitted only while spent + reserved + this worst case fits.
            admitted = (
                EvalRun.objects.for_tenant(run.tenant)
                .filter(pk=result.eval_run_id)
                .filter(budget_micros__gte=F("spent_micros") + F("reserved_micros") + worst)
                .update(reserved_micros=F("reserved_micros") + worst)
            )
            if admitted:
                EvalResult.objects.for_tenant(run.tenant).filter(pk=result.pk).update(
                    reserved_micros=F("reserved_micros") + worst
                )
                return BudgetDecision(admitted=True, reservation_id=f"{RESERVATION_PREFIX}{result.pk}:{worst}")
            EvalRun.objects.for_tenant(run.tenant).filter(pk=result.eval_run_id).update(budget_exhausted=True)
        eval_run = (
            EvalRun.objects.for_tenant(run.tenant).only("budget_micros", "spent_micros").get(pk=result.eval_run_id)
        )
        return BudgetDecision(
            admitted=False,
            message=(
                f"The eval run's budget of {eval_run.budget_micros} micro-USD is spent "
                f"({eval_run.spent_micros} spent; this call could cost up to {worst})."
            ),
        )

    def settle_after_model_call(
        self,
        *,
        call: CallContext,
        model: LanguageModel,
        reservation: BudgetDecision,
        usage: Usage | None,
        cost_micros: int,
    ) -> None:
        run = call.run
        if run is None or not reservation.reservation_id.startswith(RESERVATION_PREFIX):
            return
        result_id, worst = reservation.reservation_id.removeprefix(RESERVATION_PREFIX).rsplit(":", 1)
        spent = cost_micros if usage is not None else 0
        with transaction.atomic():
            row = (
                EvalResult.objects.for_tenant(run.tenant)
                .select_for_update()
                .filter(pk=result_id)
                .values_list("eval_run_id", "reserved_micros")
                .first()
            )
            if row is None:
                return
            eval_run_id, held = row
            # What the result still holds of this call: all of it, unless a recovery already
            # charged it (charge_lost_holds), in which case the spend is not counted twice.
            released = min(int(worst), held)
            EvalResult.objects.for_tenant(run.tenant).filter(pk=result_id).update(
                reserved_micros=F("reserved_micros") - released
            )
            EvalRun.objects.for_tenant(run.tenant).filter(pk=eval_run_id).update(
                reserved_micros=F("reserved_micros") - released,
                spent_micros=F("spent_micros") + (spent if released else 0),
            )


def charge_lost_holds(result: EvalResult) -> int:
    """Count what `result` still holds as spent, at the worst case, and return it: called for a case
    whose execution died between a model call's reserve and settle (its worker gone, its lease
    expired), whose provider may have charged for the call. Never leaks a hold (the eval run's budget
    would shrink for good) and never under-counts. The caller holds the result's row lock."""
    held = result.reserved_micros
    if not held:
        return 0
    EvalResult.objects.for_tenant(result.tenant).filter(pk=result.pk).update(reserved_micros=0)
    EvalRun.objects.for_tenant(result.tenant).filter(pk=result.eval_run_id).update(
        reserved_micros=F("reserved_micros") - held, spent_micros=F("spent_micros") + held
    )
    result.reserved_micros = 0
    logger.warning("eval result %s: charged %s micro-USD a lost execution held (worst case)", result.pk, held)
    return held


EvalHooks.instance = EvalHooks()
