"""The named points where budgets, guardrails, approvals and tracing plug into model calls.

Two callers go through them: the run engine (agents/runtime.py) and the gateway (gateway/), both by
way of the one model-call pipeline (agents/pipeline.py). The points a model call passes take a
`CallContext` (who the call is for: tenant, key, agent, end user, session, trace, and the Run when
the engine makes it); the points only a run has (tool approval, eval rehearsal) take the Run.

The engine calls every point on every run, in this order:

    span_start("run")                            one root per run (run_span_id), every execution
      model_for_run()                            once: a model replacing the pinned one (evals), or None
      check_input(text)                          once, on the run's input, before the first model call
      per model call:
        span_start("model")                      the step: its reservation, call and settlement; a
                                                 hook's own spans hang under call.parent_span_id
          reserve_before_model_call(request)     may refuse: the run ends `budget_exceeded`
          settle_after_model_call(usage, cost)   always, also after a failed call (usage None)
        span_end("model")
      per tool call:
        check_tool_call(tool, arguments)         block ends the run `blocked`; redact replaces arguments;
                                                 require_approval pauses like needs_approval
        needs_approval(tool, arguments)          True pauses the run `awaiting_approval`:
        approval_requested(...)                    called in the transaction that pauses it
        decide_without_reviewer(...)             unless a hook decides at once (eval runs): no pause
        simulated_tool_result(tool, arguments)   a declared result instead of running the tool (evals)
        span_start("tool") … span_end
        check_tool_result(tool, result)          block ends the run `blocked`; redact replaces the result
      check_output(text)                         on the final answer: block ends the run `blocked`,
                                                 redact replaces the output
      step_committing()                          inside every transaction that writes a step (or
                                                 the run's final or waiting state), just before it
                                                 commits: what a hook buffered for the step is
                                                 written here, so it commits with the step or not
                                                 at all (the trace hook writes the step's spans)
    span_end("run")                              in the transaction that ends or pauses the run
                                                 (before its step_committing), else when the
                                                 execution stops (a lost lease, a database error)

A capability registers one `RunHooks` subclass from its AppConfig.ready():

    from agents import hooks
    hooks.register(BudgetHooks())

The defaults allow everything and do nothing. Hooks run inside the worker, outside any
transaction unless stated; they must be quick and must not raise for an ordinary refusal (return
the refusal instead): an exception fails the run as `internal_error`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from agents.models import Agent, AgentVersion, Run, Tool
    from agents.tools import ToolResult
    from catalog.clients import ChatRequest, Usage
    from catalog.models import LanguageModel
    from tenants.models import ApiKey, Tenant

logger = logging.getLogger(__name__)

Action = Literal["allow", "block", "redact", "require_approval"]
SpanKind = Literal["run", "model", "tool", "approval", "gateway", "budget"]


@dataclass
class CallContext:
    """Who a model call is for, and the trace it belongs to: a run of the engine (`run` set, built
    by `of_run`) or a gateway request (`run` None). Hooks read the tenant, key, agent, end user and
    session from here, never from a Run, so the same hook serves both."""

    tenant: Tenant
    trace_id: str
    api_key: ApiKey | None = None
    agent: Agent | None = None
    agent_version: AgentVersion | None = None
    end_user_id: str = ""
    session_id: str = ""
    run: Run | None = None
    source: Literal["run", "gateway"] = "run"
    # The span a hook's own spans (guardrail verdicts, budget decisions) hang under.
    parent_span_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # What hooks keep about this call between their points, each under its own key (the trace
    # hook's span batch for a run's execution; the budget hook's settled reservation, which the
    # trace hook puts on the model span). Lives as long as the context: one execution of a run.
    state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_run(cls, run: Run) -> CallContext:
        return cls(
            tenant=run.tenant,
            trace_id=run.trace_id,
            api_key=run.api_key,
            agent=run.agent,
            agent_version=run.agent_version,
            end_user_id=run.end_user_id,
            session_id=run.session_id,
            run=run,
            source="run",
        )

    @property
    def agent_id(self) -> Any:
        return self.agent.pk if self.agent is not None else None


@dataclass(frozen=True)
class Verdict:
    """A guardrail's answer. `redacted` is the replacement for `redact`: a str for input and output,
    a dict of arguments for a tool call, any JSON value for a tool result."""

    action: Action = "allow"
    reason: str = ""
    redacted: Any = None

    @property
    def allows(self) -> bool:
        return self.action == "allow"


ALLOW = Verdict()


@dataclass(frozen=True)
class BudgetDecision:
    """A budget's answer to a reservation. `reservation_id` is opaque to the engine and handed back
    to settle_after_model_call, so the budget can settle or release exactly that reservation."""

    admitted: bool = True
    message: str = ""
    reservation_id: str = ""
    # On a refusal a reviewer may overrule (a `require_approval` budget): what the reviewer sees
    # (the budget, its figures, the call's cost). The engine pauses the run for a decision.
    approval: dict[str, Any] | None = None
    # On a refusal, the refusing budget's figures (budgets.errors.BudgetExceededError.extra: its
    # id, name, scope, limit, used, reserved, requested, unit, reset), for a client's error body.
    details: dict[str, Any] = field(default_factory=dict)
    # On an admission, the tightest budget that applied (name, unit, remaining), or None.
    tightest: dict[str, Any] | None = None


ADMITTED = BudgetDecision()


@dataclass
class Span:
    """One span of the run's trace (W3C ids). The engine makes the ids; hooks record it."""

    trace_id: str
    kind: SpanKind
    name: str
    parent_id: str = ""
    span_id: str = field(default_factory=lambda: secrets.token_hex(8))
    attributes: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)  # Unix seconds
    ended_at: float | None = None
    # "unset": the operation is still going on (an approval waiting for a reviewer, a paused run).
    status: Literal["ok", "error", "unset", ""] = ""
    # What the span's operation read and produced (a model call's messages and completion, a
    # tool's arguments and result), stored redacted by the tenant's trace settings.
    input: Any = None
    output: Any = None
    # True when a span with this id may be recorded already and this one is its newer state (a
    # resumed run's root span, an approval decided after it was recorded pending): the recorder
    # updates the stored span instead of adding one.
    replaces: bool = False


def run_span_id(run: Run) -> str:
    """The id of `run`'s root span: the same for every execution of the run, so a run paused and
    resumed (or picked up again after its worker died) stays one tree under one root."""
    return hashlib.sha256(f"run:{run.pk}".encode()).hexdigest()[:16]


def approval_span_id(approval_id: Any) -> str:
    """The id of an approval request's span: recorded pending when the run pauses, updated when
    the request is decided (approved, rejected, expired)."""
    return hashlib.sha256(f"approval:{approval_id}".encode()).hexdigest()[:16]


class RunHooks:
    """Every hook point with its default: allow everything, record nothing. Override what you need."""

    # --- budgets ---------------------------------------------------------------------------------

    def reserve_before_model_call(
        self, *, call: CallContext, model: LanguageModel, request: ChatRequest
    ) -> BudgetDecision:
        """Reserve the call's worst-case cost (request.max_output_tokens bounds the output), or
        refuse with a message the run records."""
        return ADMITTED

    def settle_after_model_call(
        self,
        *,
        call: CallContext,
        model: LanguageModel,
        reservation: BudgetDecision,
        usage: Usage | None,
        cost_micros: int,
    ) -> None:
        """Settle the reservation at the real cost; `usage` None means the call failed (release)."""

    # --- guardrails ------------------------------------------------------------------------------

    def check_input(self, *, call: CallContext, text: str) -> Verdict:
        return ALLOW

    def check_output(self, *, call: CallContext, text: str) -> Verdict:
        return ALLOW

    def check_tool_call(self, *, call: CallContext, tool: Tool, arguments: dict[str, Any]) -> Verdict:
        return ALLOW

    def check_tool_result(self, *, call: CallContext, tool: Tool | None, result: Any) -> Verdict:
        return ALLOW

    # --- approvals -------------------------------------------------------------------------------

    def needs_approval(self, *, run: Run, tool: Tool, arguments: dict[str, Any]) -> bool:
        return False

    def approval_requested(
        self, *, run: Run, tool: Tool, call_id: str, step_index: int, arguments: dict[str, Any], reason: str
    ) -> None:
        """The run is pausing for a reviewer; called inside the transaction that pauses it, so an
        approval request created here commits with the pause or not at all. A decision resumes the
        run through agents.runtime.resume_after_approval."""

    def tool_incident(self, *, run: Run, tool: Tool, stage: str, reason: str) -> None:
        """A guardrail stopped the run's agent at a call of `tool` (`stage` `tool_call`: the call it
        proposed; `tool_result`: what the tool returned). Never called for a rehearsal run."""

    # --- evals -----------------------------------------------------------------------------------

    def is_rehearsal(self, *, run: Run) -> bool:
        """Whether the run's actions are not real ones (an eval case): what it does is no evidence
        about the agent in production (no incident, no autonomy used)."""
        return False

    def model_for_run(self, *, run: Run) -> LanguageModel | None:
        """A model to use instead of the one pinned to the agent's alias (an eval run on a
        candidate model), or None for the pin."""
        return None

    def decide_without_reviewer(
        self, *, run: Run, tool: Tool, call_id: str, arguments: dict[str, Any], reason: str
    ) -> dict[str, Any] | None:
        """A decision on a call that needs approval, made without pausing the run for a reviewer
        (an eval case decides as it declares): {"approved": bool, "note": str}, or None to pause."""
        return None

    def simulated_tool_result(self, *, run: Run, tool: Tool, arguments: dict[str, Any]) -> ToolResult | None:
        """A result to use instead of running the tool (an eval case's declared result), or None to
        run it. Called after the tool-call guardrails and approval, before the tool would run."""
        return None

    def budget_approval_requested(
        self, *, run: Run, key: str, step_index: int, details: dict[str, Any], reason: str
    ) -> None:
        """The run is pausing because a `require_approval` budget is full before model call
        `step_index`; like approval_requested, called in the pausing transaction. The decision
        resumes the run through agents.runtime.resume_after_approval with `key` as the call id."""

    # --- tracing ---------------------------------------------------------------------------------

    def span_start(self, *, call: CallContext, span: Span) -> None: ...

    def span_end(self, *, call: CallContext, span: Span) -> None: ...

    # --- persistence -----------------------------------------------------------------------------

    def step_committing(self, *, call: CallContext) -> None:
        """The engine's transaction writing a step of `call.run` (or its final or waiting state)
        is about to commit: write what was buffered for it, in that transaction. Must not raise
        (an error would roll the step back); a write that may fail goes in a savepoint."""


_registered: list[RunHooks] = []


def register(hooks: RunHooks) -> None:
    """Add `hooks` to every run's hook points (idempotent)."""
    if hooks not in _registered:
        _registered.append(hooks)


def unregister(hooks: RunHooks) -> None:
    if hooks in _registered:
        _registered.remove(hooks)


@contextmanager
def registered(hooks: RunHooks) -> Iterator[RunHooks]:
    """`hooks` registered for the duration of the block (tests)."""
    register(hooks)
    try:
        yield hooks
    finally:
        unregister(hooks)


# --- What the engine calls: every registered hook, combined ------------------------------------


def reserve_before_model_call(*, call: CallContext, model: LanguageModel, request: ChatRequest) -> list[BudgetDecision]:
    """Every hook's reservation, in order. On a refusal the reservations already admitted are
    released at once, and the refusal is the last element of the list."""
    decisions: list[BudgetDecision] = []
    everyone = list(_registered)
    for hooks in everyone:
        decision = hooks.reserve_before_model_call(call=call, model=model, request=request)
        decisions.append(decision)
        if not decision.admitted:
            for earlier, admitted in zip(everyone, decisions[:-1], strict=False):
                earlier.settle_after_model_call(call=call, model=model, reservation=admitted, usage=None, cost_micros=0)
            break
    return decisions


def settle_after_model_call(
    *,
    call: CallContext,
    model: LanguageModel,
    reservations: list[BudgetDecision],
    usage: Usage | None,
    cost_micros: int,
) -> None:
    for hooks, reservation in zip(list(_registered), reservations, strict=False):
        hooks.settle_after_model_call(
            call=call, model=model, reservation=reservation, usage=usage, cost_micros=cost_micros
        )


def _checked(stage: str, value: Any, check: Any) -> Verdict:
    """The strictest verdict of every hook: block wins at once; require_approval beats redact;
    each redaction is what the next hook checks, and the last one is the verdict's `redacted`."""
    current, redacted, approval, reasons = value, False, None, []
    for hooks in list(_registered):
        verdict: Verdict = check(hooks, current)
        if verdict.action == "block":
            logger.info("guardrail %s: block (%s)", stage, verdict.reason)
            return verdict
        if verdict.action == "redact":
            current, redacted = verdict.redacted, True
            reasons.append(verdict.reason)
        elif verdict.action == "require_approval" and approval is None:
            approval = verdict
    if approval is not None:
        return replace(approval, redacted=current if redacted else None)
    if redacted:
        return Verdict(action="redact", reason="; ".join(r for r in reasons if r), redacted=current)
    return ALLOW


def check_input(*, call: CallContext, text: str) -> Verdict:
    return _checked("input", text, lambda h, v: h.check_input(call=call, text=v))


def check_output(*, call: CallContext, text: str) -> Verdict:
    return _checked("output", text, lambda h, v: h.check_output(call=call, text=v))


def check_tool_call(*, call: CallContext, tool: Tool, arguments: dict[str, Any]) -> Verdict:
    return _checked("tool_call", arguments, lambda h, v: h.check_tool_call(call=call, tool=tool, arguments=v))


def check_tool_result(*, call: CallContext, tool: Tool | None, result: Any) -> Verdict:
    """`tool` None: a result the gateway's client sends back for a tool the console does not know."""
    return _checked("tool_result", result, lambda h, v: h.check_tool_result(call=call, tool=tool, result=v))


def needs_approval(*, run: Run, tool: Tool, arguments: dict[str, Any]) -> bool:
    # Ask every hook (no short-circuit): each may want to see every risky call.
    answers = [hooks.needs_approval(run=run, tool=tool, arguments=arguments) for hooks in list(_registered)]
    return any(answers)


def approval_requested(
    *, run: Run, tool: Tool, call_id: str, step_index: int, arguments: dict[str, Any], reason: str
) -> None:
    for hooks in list(_registered):
        hooks.approval_requested(
            run=run, tool=tool, call_id=call_id, step_index=step_index, arguments=arguments, reason=reason
        )


def is_rehearsal(*, run: Run) -> bool:
    return any(hooks.is_rehearsal(run=run) for hooks in list(_registered))


def tool_incident(*, run: Run, tool: Tool, stage: str, reason: str) -> None:
    """Tell every hook that a guardrail stopped the agent at a call of `tool`, unless the run is a
    rehearsal (an eval case's injected tool result says nothing about the agent in production)."""
    if is_rehearsal(run=run):
        return
    for hooks in list(_registered):
        hooks.tool_incident(run=run, tool=tool, stage=stage, reason=reason)


def model_for_run(*, run: Run) -> LanguageModel | None:
    """The first hook's replacement for the pinned model, or None."""
    for hooks in list(_registered):
        if (model := hooks.model_for_run(run=run)) is not None:
            return model
    return None


def decide_without_reviewer(
    *, run: Run, tool: Tool, call_id: str, arguments: dict[str, Any], reason: str
) -> dict[str, Any] | None:
    """The first hook's decision made without a reviewer, or None (the run pauses)."""
    for hooks in list(_registered):
        decision = hooks.decide_without_reviewer(
            run=run, tool=tool, call_id=call_id, arguments=arguments, reason=reason
        )
        if decision is not None:
            return decision
    return None


def simulated_tool_result(*, run: Run, tool: Tool, arguments: dict[str, Any]) -> ToolResult | None:
    """The first hook's simulated result for a tool call, or None (the tool runs)."""
    for hooks in list(_registered):
        if (result := hooks.simulated_tool_result(run=run, tool=tool, arguments=arguments)) is not None:
            return result
    return None


def record_span(*, call: CallContext, span: Span) -> None:
    """Record a span that is already over (an approval's wait, measured elsewhere) with every hook."""
    for hooks in list(_registered):
        hooks.span_start(call=call, span=span)
    for hooks in list(_registered):
        hooks.span_end(call=call, span=span)


def budget_approval_requested(*, run: Run, key: str, step_index: int, details: dict[str, Any], reason: str) -> None:
    for hooks in list(_registered):
        hooks.budget_approval_requested(run=run, key=key, step_index=step_index, details=details, reason=reason)


def step_committing(*, call: CallContext) -> None:
    for hooks in list(_registered):
        hooks.step_committing(call=call)


def open_span(
    call: CallContext,
    kind: SpanKind,
    name: str,
    *,
    parent: Span | None = None,
    span_id: str = "",
    started_at: float | None = None,
    **attributes: Any,
) -> Span:
    """Start a span (every hook's span_start); `close_span` ends it. `span()` does both around a
    block. `span_id` and `started_at` default to a new id and now."""
    current = Span(
        trace_id=call.trace_id, kind=kind, name=name, parent_id=parent.span_id if parent else "", attributes=attributes
    )
    if span_id:
        current.span_id = span_id
    if started_at is not None:
        current.started_at = started_at
    for hooks in list(_registered):
        hooks.span_start(call=call, span=current)
    return current


def close_span(call: CallContext, current: Span) -> None:
    """End `current` now (every hook's span_end), with status "ok" unless one was set; once only."""
    if current.ended_at is not None:
        return
    current.ended_at = time.time()
    current.status = current.status or "ok"
    for hooks in list(_registered):
        hooks.span_end(call=call, span=current)


@contextmanager
def span(
    call: CallContext, kind: SpanKind, name: str, *, parent: Span | None = None, **attributes: Any
) -> Iterator[Span]:
    """A span around a block: started before it, ended after it (status "error" if it raised).
    The block may add attributes or set `status` itself."""
    current = open_span(call, kind, name, parent=parent, **attributes)
    try:
        yield current
    except BaseException:
        current.status = "error"
        raise
    finally:
        close_span(call, current)
