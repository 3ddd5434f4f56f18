"""The one model-call pipeline: what every model call the console makes or relays goes through,
whoever makes it — the run engine (agents/runtime.py), the eval judge (evals/judge.py) and the
gateway (gateway/), which relays an unmodified agent's calls.

    model   = resolve_model(tenant, alias)           the exact pinned model; refused: no pin, a
                                                     floating name, unpriced, provider disabled
    verdict = hooks.check_input(call, text)           input guardrails (block, redact, flag)
    held    = reserve(call, model, request)           every budget's worst case, admitted or refused
    with hooks.span(call, "model", …):               the provider call, in the caller's transport
        response = client.chat(request)               (sync for the engine, async and streamed for
                                                     the gateway)
    cost    = settle(call, model, held, usage)        the real cost (usage None: the call failed,
                                                     every hold released)
    verdict = hooks.check_output(call, text)          output guardrails

The callers differ only in what they do with a refusal (the engine ends the run; the gateway
answers the client in the provider's error shape) and in their transport. A `CallContext`
(agents.hooks) carries who the call is for; the hooks read it, never a Run, so a budget, a
guardrail policy and a trace apply the same way to a run and to a gateway request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents import hooks
from agents.hooks import BudgetDecision, CallContext

if TYPE_CHECKING:
    from catalog.clients import ChatRequest, Usage
    from catalog.models import LanguageModel
    from tenants.models import Tenant


class CallRefusedError(Exception):
    """The pipeline refused the call before it reached a provider. `code` is machine-readable
    (pin_not_found, floating_model, model_unpriced, provider_disabled, budget_exceeded); `details`
    is what a client or reviewer needs (a budget's figures, the alias to use instead)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


@dataclass
class Admission:
    """Every hook's reservation for one call; `refusal` is the refusing decision, if one refused
    (the ones admitted before it are already released)."""

    reservations: list[BudgetDecision] = field(default_factory=list)

    @property
    def refusal(self) -> BudgetDecision | None:
        if self.reservations and not self.reservations[-1].admitted:
            return self.reservations[-1]
        return None


def resolve_model(*, tenant: Tenant, alias: str, allow_exact: bool = False) -> LanguageModel:
    """The exact model `alias` is pinned to, usable for a call, or CallRefusedError. With
    `allow_exact`, a model id some alias of the tenant is pinned to is accepted as itself (a client
    that names the exact version it was told); any other name is refused, saying which alias to use."""
    from catalog.selectors import PinNotFoundError, pinned_model, pins_of

    try:
        model = pinned_model(tenant=tenant, alias=alias)
    except PinNotFoundError as exc:
        pins = list(pins_of(tenant=tenant))
        exact = [pin for pin in pins if pin.model.model_id == alias]
        if exact and allow_exact:
            model = exact[0].model
        else:
            aliases = ", ".join(repr(pin.alias) for pin in pins) or "none yet"
            if exact:
                message = f"{alias!r} is an exact model id; call it by its alias {exact[0].alias!r}."
            else:
                message = f"{exc} Use one of the tenant's aliases ({aliases}), each pinned to an exact model."
            raise CallRefusedError("pin_not_found", message, aliases=[pin.alias for pin in pins]) from None
    check_usable(model, alias=alias)
    return model


def check_usable(model: LanguageModel, *, alias: str) -> None:
    """CallRefusedError unless `model` (what `alias` stands for) may be called: priced, on an
    enabled provider."""
    if not model.is_priced:
        raise CallRefusedError(
            "model_unpriced",
            f"The model {model} pinned as {alias!r} has no prices, and an unpriced model cannot be used.",
        )
    if not model.provider.enabled:
        raise CallRefusedError(
            "provider_disabled", f"The provider {model.provider.name} of the model pinned as {alias!r} is disabled."
        )


def reserve(*, call: CallContext, model: LanguageModel, request: ChatRequest) -> Admission:
    """Reserve the call's worst case (request.max_output_tokens bounds the output) with every
    budget hook. A refusal is returned, not raised: the caller decides what it means."""
    return Admission(hooks.reserve_before_model_call(call=call, model=model, request=request))


def settle(*, call: CallContext, model: LanguageModel, reservations: Admission, usage: Usage | None) -> int:
    """Settle every hold at the real cost of `usage` (None: the call failed, release them), and
    return that cost in micro-USD."""
    cost = 0
    if usage is not None:
        cost = model.cost_micros(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
        )
    hooks.settle_after_model_call(
        call=call, model=model, reservations=reservations.reservations, usage=usage, cost_micros=cost
    )
    return cost
