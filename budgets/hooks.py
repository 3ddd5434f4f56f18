"""The run engine's budget hook points: reserve before every model call, settle after.

Registered from BudgetsConfig.ready(). A refusal (a budget without room, a token cap, an unpriced
model) is returned, not raised: the engine ends the run `budget_exceeded` with its message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from agents.hooks import ADMITTED, BudgetDecision, RunHooks
from budgets import services
from budgets.errors import BudgetExceededError
from budgets.models import Budget, Reservation
from catalog.clients.base import estimate_request_tokens
from tenants.errors import ConflictError, ServiceError

if TYPE_CHECKING:
    from agents.models import Run
    from catalog.clients import ChatRequest, Usage
    from catalog.models import LanguageModel

logger = logging.getLogger(__name__)


ALL_BUDGETS = frozenset({"*"})


def _approved(run: Run) -> bool:
    from agents.runtime import budget_approval_key

    decision = run.approval_decisions.get(budget_approval_key(run.step_count))
    return bool(decision and decision.get("approved"))


class BudgetHooks(RunHooks):
    """Reserves the worst case of each model call for the run's agent, API key, end user and
    session, and settles it with the provider's usage (or releases it when the call failed)."""

    instance: ClassVar[BudgetHooks]

    def reserve_before_model_call(self, *, run: Run, model: LanguageModel, request: ChatRequest) -> BudgetDecision:
        try:
            reservation = services.budget_reserve(
                tenant=run.tenant,
                model=model,
                input_tokens=estimate_request_tokens(request),
                max_output_tokens=request.max_output_tokens,
                end_user_id=run.end_user_id,
                session_id=run.session_id,
                agent=run.agent,
                api_key=run.api_key,
                run=run,
                # The engine bounds each call's output so that input + output fits the agent's
                # cap (agents/runtime.py), estimating the input as this does: checked again here.
                check_agent_cap=True,
                # A reviewer let this call through the full `require_approval` budgets.
                allow_over=ALL_BUDGETS if _approved(run) else (),
            )
        except BudgetExceededError as exc:
            if exc.extra.get("on_exceed") != Budget.OnExceed.REQUIRE_APPROVAL:
                return BudgetDecision(admitted=False, message=exc.message)
            details = {
                "budget": exc.extra["budget"],
                "budget_name": exc.extra["budget_name"],
                "scope": exc.extra["scope"],
                "scope_value": exc.extra["scope_value"],
                "limit": exc.extra["limit"],
                "used": exc.extra["used"],
                "reserved": exc.extra["reserved"],
                "requested": exc.extra["requested"],
                "unit": exc.extra["unit"],
                "model": model.model_id,
            }
            return BudgetDecision(admitted=False, message=exc.message, approval=details)
        except ServiceError as exc:
            return BudgetDecision(admitted=False, message=exc.message)
        return BudgetDecision(admitted=True, reservation_id=str(reservation.pk))

    def settle_after_model_call(
        self,
        *,
        run: Run,
        model: LanguageModel,
        reservation: BudgetDecision,
        usage: Usage | None,
        cost_micros: int,
    ) -> None:
        if reservation is ADMITTED or not reservation.reservation_id:
            return
        held = (
            Reservation.objects.for_tenant(run.tenant)
            .select_related("tenant")
            .filter(pk=reservation.reservation_id)
            .first()
        )
        if held is None:
            logger.warning("run %s: reservation %s is gone", run.pk, reservation.reservation_id)
            return
        try:
            if usage is None:
                services.budget_release(reservation=held)
            else:
                services.budget_settle(
                    reservation=held,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cached_input_tokens=min(usage.cached_input_tokens, usage.input_tokens),
                    estimated=usage.estimated,
                )
        except ConflictError:
            # Settled or released already: a resumed run repeating its last settle.
            logger.info("run %s: reservation %s was already %s", run.pk, held.pk, held.status)


BudgetHooks.instance = BudgetHooks()
