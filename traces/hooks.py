"""The run engine's trace: every span the engine opens (the run, each model call, each tool call,
and what other capabilities record through agents.hooks) is written as a Span of the run's trace.

Registered from TracesConfig.ready(). A run is one tree: its root span has one id for the whole
run (agents.hooks.run_span_id) and is named after the agent, so an execution that resumes the run
(after an approval, or after its worker died) updates that root instead of adding a second one;
approval spans (recorded pending when the run pauses, updated when decided) hang under it. The
engine's model span is the step: the budget hook's reservation and settlement spans are its
children, and the span is written when it ends, with the usage and computed cost the settlement
brought. A caller that settles after the span has ended (the gateway, the eval judge) has its model
span written at the settlement instead. Recording never fails a run: an error is logged and the
run goes on.

One write per step. While the engine executes a run (from its run span's start to its end), every
span of the run's tenant recorded in that thread, the engine's own and what other apps record
through traces.services.span_record (guardrail verdicts, budget reservations, an approval request),
is collected in one SpanBatch (traces.services.collecting) and written by `step_committing`, inside
the transaction that writes the step (or the run's final or waiting state), as one ingest in a
savepoint: a step's spans commit with the step or not at all, and a span that cannot be written is
logged without rolling the step back. A step's spans are queryable as soon as the step is. The run
span itself ends in the transaction that ends or pauses the run; when the execution stops
otherwise (its lease lost, a database error) the run span and whatever is still collected are
written at once, in a transaction of their own. A span that `replaces` a stored one (a resumed
run's root, a decided approval) is updated at once, in the caller's transaction.

What a process that dies mid-step loses: the spans collected since its last committed step (the
guardrail verdicts, model call and tool call of the step in flight), exactly as it loses that step
itself. The run is resumed from its last committed step and records the redone step's spans then.
What was already made durable elsewhere stays: a model call's settlement (its ledger entries
commit on their own, before the step's transaction), a side-effecting tool's ToolExecution. So the
trace may lack the span of a model call whose cost the ledger holds, when the worker died between
the settlement and the step's commit (a window of a few milliseconds per model call).
"""

from __future__ import annotations

import logging
import threading
from contextvars import Token
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import connection

from agents.hooks import ADMITTED, BudgetDecision, CallContext, RunHooks, Span
from traces import services
from traces.context import current_span
from traces.models import KINDS

if TYPE_CHECKING:
    from catalog.clients import ChatRequest, Usage
    from catalog.models import LanguageModel

logger = logging.getLogger(__name__)

ENGINE_KINDS = {"run": "agent", "gateway": "agent", "model": "llm", "tool": "tool"}
FAILED_RUN_STATUSES = ("failed", "budget_exceeded", "blocked")
WAITING_RUN_STATUS = "awaiting_approval"
# Keys of CallContext.state: this hook's batch of a run's spans (and the block collecting into it);
# the model span open now, whether its call was reserved (so a settlement will come), and the
# settlement that came while it was open.
BATCH = "traces.batch"
COLLECTING = "traces.collecting"
OPEN_MODEL = "traces.open_model"
RESERVED = "traces.reserved"
SETTLEMENT = "traces.settlement"


def _when(seconds: float | None) -> datetime:
    return datetime.fromtimestamp(seconds if seconds is not None else datetime.now(UTC).timestamp(), tz=UTC)


class TraceHooks(RunHooks):
    """Writes the engine's spans into the run's trace (see the module docstring)."""

    instance: ClassVar[TraceHooks]

    def __init__(self) -> None:
        # Per thread (one engine per thread): model spans ended before their settlement, per run
        # (or gateway trace); the current-span context each open span replaced, per span id.
        self._local = threading.local()

    def _pending(self) -> dict[str, Span]:
        if not hasattr(self._local, "spans"):
            self._local.spans = {}
        return self._local.spans

    def _tokens(self) -> dict[str, Token[tuple[str, str] | None]]:
        if not hasattr(self._local, "tokens"):
            self._local.tokens = {}
        return self._local.tokens

    def span_start(self, *, call: CallContext, span: Span) -> None:
        incoming = current_span.get()
        if span.kind == "run" and not span.parent_id and incoming and incoming[0] == span.trace_id:
            # Sent from inside a span of this trace (W3C context in the Celery headers): its child.
            span.parent_id = incoming[1]
        self._tokens()[span.span_id] = current_span.set((span.trace_id, span.span_id))
        if span.kind == "model":
            call.state[OPEN_MODEL] = span
        if span.kind == "run" and call.run is not None and COLLECTING not in call.state:
            # The run's execution starts: collect its spans for step_committing (module docstring).
            batch = call.state[BATCH] = services.SpanBatch(call.tenant)
            collecting = services.collecting(batch)
            collecting.__enter__()
            call.state[COLLECTING] = collecting

    def span_end(self, *, call: CallContext, span: Span) -> None:
        # Back to the context before the span (its parent's, or none for a span recorded alone).
        token = self._tokens().pop(span.span_id, None)
        try:
            if token is None:
                raise ValueError
            current_span.reset(token)
        except ValueError:  # ended in another context than it started in
            current_span.set((span.trace_id, span.parent_id) if span.parent_id else None)
        if span.kind == "model":
            if call.state.get(OPEN_MODEL) is span:
                del call.state[OPEN_MODEL]
            settled = call.state.pop(SETTLEMENT, None)
            if settled is not None:
                self._write_model(call, span, *settled)
            elif call.state.pop(RESERVED, False):
                self._pending()[_key(call)] = span  # the caller settles after the span
            else:
                self._write(call, span, model=str(span.name))  # refused before the call
            return
        if span.kind in ("run", "gateway"):
            # A model call that raised past its caller was never settled: write its span anyway.
            unsettled = self._pending().pop(_key(call), None)
            if unsettled is not None:
                self._write(call, unsettled, model=str(unsettled.name))
        self._write(call, span)
        if span.kind == "run" and (collecting := call.state.pop(COLLECTING, None)) is not None:
            collecting.__exit__(None, None, None)
            if not connection.in_atomic_block:
                # Not in a step's transaction (the execution stopped otherwise): write them now.
                self.step_committing(call=call)

    def step_committing(self, *, call: CallContext) -> None:
        batch = call.state.get(BATCH)
        if batch is not None and batch.items:
            batch.write()  # one ingest, in a savepoint of the step's transaction; never raises

    def reserve_before_model_call(
        self, *, call: CallContext, model: LanguageModel, request: ChatRequest
    ) -> BudgetDecision:
        # Asked only once every budget admitted the call: a settlement will follow.
        call.state[RESERVED] = True
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
        call.state.pop(RESERVED, None)
        if OPEN_MODEL in call.state:
            # Settled inside the model span (the engine): written when the span ends.
            call.state[SETTLEMENT] = (model, usage, cost_micros)
            return
        span = self._pending().pop(_key(call), None)
        if span is not None:
            self._write_model(call, span, model, usage, cost_micros)

    def _write_model(self, call: CallContext, span: Span, model: LanguageModel, usage: Usage | None, cost: int) -> None:
        extra: dict[str, Any] = {"model": model.model_id}
        if usage is not None:
            extra["usage"] = {
                "input_tokens": usage.input_tokens,
                "cached_input_tokens": min(usage.cached_input_tokens, usage.input_tokens),
                "output_tokens": usage.output_tokens,
            }
            span.attributes["cost_micros"] = cost
            span.attributes["usage.estimated"] = usage.estimated
        self._write(call, span, **extra)

    def _write(self, call: CallContext, span: Span, **extra: Any) -> None:
        run = call.run
        try:
            kind = ENGINE_KINDS.get(span.kind, span.kind if span.kind in KINDS else "custom")
            fields: dict[str, Any] = {}
            if span.input is not None:
                fields["input"] = span.input
            if span.output is not None:
                fields["output"] = span.output
            status = span.status or "ok"
            if span.kind == "run" and run is not None:
                fields["input"] = run.input or None
                fields["output"] = run.output or None
                fields["agent_name"] = run.agent.name
                if run.status in FAILED_RUN_STATUSES:
                    status = "error"
                    fields["error"] = {"type": run.error_type, "message": run.error_message}
                elif run.status == WAITING_RUN_STATUS:
                    status = "unset"  # not over: it goes on when a reviewer decides
            elif status == "error" and span.attributes.get("error.message"):
                fields["error"] = {
                    "type": str(span.attributes.get("error.type", "")),
                    "message": str(span.attributes["error.message"]),
                }
            services.span_record(
                tenant=call.tenant,
                trace_id=span.trace_id,
                span_id=span.span_id,
                parent_span_id=span.parent_id,
                kind=kind,
                name=span.name,
                started_at=_when(span.started_at),
                ended_at=_when(span.ended_at),
                status=status,
                attributes={"engine.kind": span.kind, **span.attributes},
                run=run,
                replace=span.replaces,
                **_who(call),
                **fields,
                **extra,
            )
        except Exception:
            logger.exception("trace %s: could not record span %s", call.trace_id, span.span_id)


def _who(call: CallContext) -> dict[str, Any]:
    """A gateway call's end user, session, agent and tags (a run's are copied from the run)."""
    if call.run is not None:
        return {}
    return {
        "end_user_id": call.end_user_id,
        "session_id": call.session_id,
        "agent_id": str(call.agent_id or ""),
        "tags": list(call.metadata.get("tags") or []),
    }


def _key(call: CallContext) -> str:
    """Which caller a pending model span belongs to: the run, or the gateway request's trace."""
    return str(call.run.pk) if call.run is not None else call.trace_id


TraceHooks.instance = TraceHooks()
