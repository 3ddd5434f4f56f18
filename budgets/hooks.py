"""The budget hook points of the model-call pipeline: reserve before every model call (of a run or
through the gateway), settle after.

Registered from BudgetsConfig.ready(). A refusal (a budget without room, a token cap, an unpriced
model) is returned, not raised: the engine ends the run `budget_exceeded` with its message.

What a BudgetDecision carries (the gateway's 402 body and `x-aoc-budget-remaining` read it):

- refused by a budget: `message` is a sentence naming the budget, whom it counts, its figures and
  its reset; `details` is BudgetExceededError.extra: budget (id), budget_name, scope, scope_value
  ("" for the tenant or the anonymous bucket), period, limit, used (settled), reserved, requested,
  remaining, unit (usd_micros | tokens), on_exceed, resets_at (ISO 8601, None for a total budget);
  a require_approval budget on a run also fills `approval`.
- refused otherwise: `details` = {"type": token_cap_exceeded | validation_error | …, and the
  error's own figures (a token cap's `cap` and `requested`)}.
- admitted: `tightest` = budgets.services.tightest: {id, name, unit, limit, remaining, resets_at,
  held, scope, scope_value}, amounts in the budget's unit, or None when no budget that can refuse
  applied.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from django.http import Http404

from agents import hooks
from agents.hooks import ADMITTED, BudgetDecision, CallContext, RunHooks
from budgets import services
from budgets.errors import BudgetExceededError
from budgets.models import Budget
from catalog.clients.base import estimate_request_tokens
from tenants.errors import ConflictError, ServiceError

if TYPE_CHECKING:
    from agents.models import Run
    from catalog.clients import ChatRequest, Usage
    from catalog.models import LanguageModel

logger = logging.getLogger(__name__)


ALL_BUDGETS = frozenset({"*"})


def _span(
    call: CallContext, name: str, started: float, attributes: dict[str, Any], *, error: str = "", kind: str = ""
) -> None:
    """A run's reservation or settlement as a `budget` span under the model call it is for
    (call.parent_span_id: the engine's model span), from `started` to now. A gateway call records
    its reservation on its own span (gateway/): nothing here."""
    if call.run is None:
        return
    span = hooks.Span(
        trace_id=call.trace_id,
        kind="budget",
        name=name,
        parent_id=call.parent_span_id,
        attributes=attributes,
        started_at=started,
        ended_at=time.time(),
        status="error" if error else "ok",
    )
    if error:
        span.attributes.update({"error.type": kind or "budget_exceeded", "error.message": error})
    hooks.record_span(call=call, span=span)


def _approved(run: Run | None) -> bool:
    """Whether a reviewer let the run's next model call through its full `require_approval` budgets."""
    from agents.runtime import budget_approval_key

    if run is None:
        return False
    decision = run.approval_decisions.get(budget_approval_key(run.step_count))
    return bool(decision and decision.get("approved"))


class BudgetHooks(RunHooks):
    """Reserves the worst case of each model call for the run's agent, API key, end user and
    session, and settles it with the provider's usage (or releases it when the call failed)."""

    instance: ClassVar[BudgetHooks]

    def reserve_before_model_call(
        self, *, call: CallContext, model: LanguageModel, request: ChatRequest
    ) -> BudgetDecision:
        started = time.time()
        try:
            reservation = services.budget_reserve(
                tenant=call.tenant,
                model=model,
                input_tokens=estimate_request_tokens(request),
                max_output_tokens=request.max_output_tokens,
                end_user_id=call.end_user_id,
                session_id=call.session_id,
                agent=call.agent,
                api_key=call.api_key,
                run=call.run,
                # The engine and the gateway bound each call's output so that input + output fits
                # the agent's cap, estimating the input as this does: checked again here.
                check_agent_cap=call.agent is not None,
                # A reviewer let this call through the full `require_approval` budgets.
                allow_over=ALL_BUDGETS if _approved(call.run) else (),
            )
        except BudgetExceededError as exc:
            _span(call, "budget reserve", started, {f"budget.{k}": v for k, v in exc.extra.items()}, error=exc.message)
            if exc.extra.get("on_exceed") != Budget.OnExceed.REQUIRE_APPROVAL or call.run is None:
                # Only a run can pause for a reviewer; a gateway call is refused like a `block`.
                return BudgetDecision(admitted=False, message=exc.message, details=dict(exc.extra))
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
            return BudgetDecision(admitted=False, message=exc.message, approval=details, details=dict(exc.extra))
        except ServiceError as exc:
            # A token cap (its cap and what was requested), an unpriced model, a bad field.
            extra = {f"budget.{k}": v for k, v in exc.extra.items()}
            _span(call, "budget reserve", started, extra, error=exc.message, kind=exc.type)
            return BudgetDecision(admitted=False, message=exc.message, details={"type": exc.type, **exc.extra})
        tightest = reservation.tightest
        _span(
            call,
            "budget reserve",
            started,
            {
                "budget.reservation_id": str(reservation.pk),
                "budget.reserved_micros": reservation.worst_case_micros,
                "budget.reserved_tokens": reservation.worst_case_tokens,
                "budget.input_tokens": reservation.input_tokens,
                "budget.max_output_tokens": reservation.max_output_tokens,
                **(
                    {
                        "budget.tightest": tightest["name"],
                        "budget.tightest_unit": tightest["unit"],
                        "budget.tightest_remaining": tightest["remaining"],
                        "budget.tightest_limit": tightest["limit"],
                    }
                    if tightest
                    else {}
                ),
            },
        )
        return BudgetDecision(admitted=True, reservation_id=str(reservation.pk), tightest=tightest)

    def settle_after_model_call(
        self,
        *,
        call: CallContext,
        model: LanguageModel,
        reservation: BudgetDecision,
        usage: Usage | None,
        cost_micros: int,
    ) -> None:
        if reservation is ADMITTED or not reservation.reservation_id:
            return
        held = reservation.reservation_id
        started = time.time()
        try:
            # By id: one statement, no read of the reservation first.
            if usage is None:
                finished = services.budget_release(reservation=held, tenant=call.tenant)
            else:
                finished = services.budget_settle(
                    reservation=held,
                    tenant=call.tenant,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cached_input_tokens=min(usage.cached_input_tokens, usage.input_tokens),
                    estimated=usage.estimated,
                )
            actual = finished.actual_micros or 0
            # The reservation as written (no read back): what was held, what it cost, what returned.
            _span(
                call,
                "budget release" if usage is None else "budget settle",
                started,
                {
                    "budget.reservation_id": str(finished.pk),
                    "budget.reservation_status": finished.status,
                    "budget.reserved_micros": finished.worst_case_micros,
                    "budget.settled_micros": actual,
                    "budget.released_micros": max(finished.worst_case_micros - actual, 0),
                },
            )
        except Http404:
            logger.warning("reservation %s is gone (trace %s)", held, call.trace_id)
        except ConflictError as exc:
            # Settled or released already: a resumed run repeating its last settle.
            logger.info("reservation %s was already %s (trace %s)", held, exc.extra.get("status"), call.trace_id)


BudgetHooks.instance = BudgetHooks()
