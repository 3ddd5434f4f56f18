"""The run engine's trace: every span the engine opens (the run, each model call, each tool call,
and what other capabilities record through agents.hooks) is written as a Span of the run's trace.

Registered from TracesConfig.ready(). A model call's span is written just after its settlement
(the engine settles right after the span ends) so it carries the usage, the computed cost and the
budget reservation (the budget hook, registered before this one, leaves the settled reservation in
`call.state`: no query). Recording never fails a run: an error is logged and the run goes on.

One write per step. While the engine executes a run (from its run span's start to its end), every
span of the run's tenant recorded in that thread, the engine's own and what other apps record
through traces.services.span_record (guardrail verdicts, an approval request), is collected in one
SpanBatch (traces.services.collecting) and written by `step_committing`, inside the transaction
that writes the step (or the run's final or waiting state), as one ingest in a savepoint: a step's
spans commit with the step or not at all, and a span that cannot be written is logged without
rolling the step back. A step's spans are queryable as soon as the step is. The run span itself
ends in the transaction that ends or pauses the run; when the execution stops otherwise (its lease
lost, a database error) the run span and whatever is still collected are written at once, in a
transaction of their own.

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
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import connection

from agents.hooks import BudgetDecision, CallContext, RunHooks, Span
from traces import services
from traces.context import current_span
from traces.models import KINDS

if TYPE_CHECKING:
    from catalog.clients import Usage
    from catalog.models import LanguageModel

logger = logging.getLogger(__name__)

ENGINE_KINDS = {"run": "agent", "gateway": "agent", "model": "llm", "tool": "tool"}
FAILED_RUN_STATUSES = ("failed", "budget_exceeded", "blocked")
# Keys of CallContext.state: this hook's batch of a run's spans (and the block collecting into it),
# and the settled reservation the budget hook leaves for the model span (budgets/hooks.py).
BATCH = "traces.batch"
COLLECTING = "traces.collecting"
SETTLED = "budgets.settled"


def _when(seconds: float | None) -> datetime:
    return datetime.fromtimestamp(seconds if seconds is not None else datetime.now(UTC).timestamp(), tz=UTC)


class TraceHooks(RunHooks):
    """Writes the engine's spans into the run's trace (see the module docstring)."""

    instance: ClassVar[TraceHooks]

    def __init__(self) -> None:
        # Model spans waiting for their settlement, per thread (one engine per thread) and run.
        self._local = threading.local()

    def _pending(self) -> dict[str, Span]:
        if not hasattr(self._local, "spans"):
            self._local.spans = {}
        return self._local.spans

    def span_start(self, *, call: CallContext, span: Span) -> None:
        incoming = current_span.get()
        if span.kind == "run" and not span.parent_id and incoming and incoming[0] == span.trace_id:
            # Sent from inside a span of this trace (W3C context in the Celery headers): its child.
            span.parent_id = incoming[1]
        current_span.set((span.trace_id, span.span_id))
        if span.kind == "run" and call.run is not None and COLLECTING not in call.state:
            # The run's execution starts: collect its spans for step_committing (module docstring).
            batch = call.state[BATCH] = services.SpanBatch(call.tenant)
            collecting = services.collecting(batch)
            collecting.__enter__()
            call.state[COLLECTING] = collecting

    def span_end(self, *, call: CallContext, span: Span) -> None:
        current_span.set((span.trace_id, span.parent_id) if span.parent_id else None)
        if span.kind == "model":
            self._pending()[_key(call)] = span
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

    def settle_after_model_call(
        self,
        *,
        call: CallContext,
        model: LanguageModel,
        reservation: BudgetDecision,
        usage: Usage | None,
        cost_micros: int,
    ) -> None:
        span = self._pending().pop(_key(call), None)
        if span is None:
            return
        extra: dict[str, Any] = {"model": model.model_id}
        if usage is not None:
            extra["usage"] = {
                "input_tokens": usage.input_tokens,
                "cached_input_tokens": min(usage.cached_input_tokens, usage.input_tokens),
                "output_tokens": usage.output_tokens,
            }
            span.attributes["cost_micros"] = cost_micros
            span.attributes["usage.estimated"] = usage.estimated
        span.attributes.update(_reservation_attributes(call))
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
            if span.kind == "run" and run is not None:
                fields["input"] = run.input or None
                fields["output"] = run.output or None
                if run.status in FAILED_RUN_STATUSES:
                    span.status = "error"
                    fields["error"] = {"type": run.error_type, "message": run.error_message}
            elif run is None and span.kind == "gateway":
                if span.status == "error" and span.attributes.get("error.message"):
                    fields["error"] = {
                        "type": str(span.attributes.get("error.type", "")),
                        "message": str(span.attributes["error.message"]),
                    }
            elif span.status == "error" and span.attributes.get("error.message"):
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
                status=span.status or "ok",
                attributes={"engine.kind": span.kind, **span.attributes},
                run=run,
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


def _reservation_attributes(call: CallContext) -> dict[str, Any]:
    """The budget reservation of the run's model call just settled, as the budget hook left it in
    `call.state` (nothing when no budget hook settled one). A gateway call records its reservation
    on its span itself (gateway/)."""
    settled = call.state.pop(SETTLED, None) if call.run is not None else None
    if not settled:
        return {}
    return {
        "budget.reservation_id": settled["id"],
        "budget.reservation_status": settled["status"],
        "budget.reserved_micros": settled["worst_case_micros"],
        "budget.settled_micros": settled["actual_micros"],
    }


TraceHooks.instance = TraceHooks()
