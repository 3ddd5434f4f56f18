"""The run engine: executes one run step by step, persisting each step before the next begins.

    execute(run)    claim the run, then loop: model call → tool calls → tool results → … until a
                    final answer (succeeded), the agent's max_steps model calls (failed
                    `max_steps`), the same tool with the same arguments asked for again after it
                    ran (failed `loop_detected`), a cancel request (cancelled), a provider error
                    (failed `provider_<type>`), a budget refusal (budget_exceeded), a guardrail
                    block (blocked) or a tool needing approval (awaiting_approval: the worker is
                    freed; `resume_after_approval` re-queues the run with the reviewer's decision).

Persistence. After each model call, one transaction writes the model Step (the exact model id,
never the alias; usage, cost, latency) and appends the assistant message to Run.messages, before
any tool runs; after each tool call, one transaction writes the tool Step and appends the tool
message. The conversation in Run.messages IS the engine's state: `execute` on a run that already
has steps continues from it (the pending tool calls of the last assistant message, else the next
model call), at the next step index (Run.step_count). A side-effecting tool interrupted by a
crash is not repeated (agents/tools.py: ToolExecution keyed on run, step index, call id).

Leases: one worker at a time. Claiming a run (queued → running) happens under SELECT … FOR UPDATE
and writes a lease: an owner token unique to this execution and an expiry RUN_LEASE_SECONDS ahead.
While the run executes, a heartbeat thread pushes the expiry forward every third of the lease, and
every step's transaction locks the run and checks the owner first, so a worker that lost its
lease (presumed dead, yet alive) stops without writing. The same transaction checks for a cancel
request, so cancellation takes effect between any two steps. A second delivery of the task meanwhile
finds the lease live and raises RunLeaseHeldError (the task retries when the lease would expire).
When a worker dies (SIGKILL, OOM, machine lost) its heartbeat stops and the lease expires; the
run is claimed again by the redelivered task (acks_late + reject_on_worker_lost) or, if the
broker does not redeliver (the whole worker died, so nobody rejected the message), by the task
that beat's `requeue_stuck_runs` sends for running runs with an expired lease.

Cost of a step (bench/engine_steps.py; issue 14). A step is one transaction: one UPDATE of the run
that locks it and checks the lease and any cancel request at once (`_write_step`; `_locked`'s
SELECT … FOR UPDATE only when that UPDATE matches nothing, and for the rare writes: pausing,
ending), the Step's INSERT, and the step's spans (traces/hooks.py collects every span recorded
during the step, guardrail verdicts included, and writes them through `step_committing` as one
ingest in that transaction: one round trip, traces.services._write_in_one_trip). The conversation's
start (the input, checked) commits with the first step, and a final answer, checked by the output
guardrails first, commits with the run's end, so a run of n steps commits n + 1 times (its claim,
then each step). A model call adds its budget reservation and its settlement, one statement each,
each its own transaction (budgets/services.py): the ledger does not wait for the step, so a lease
lost or a crash after the settlement never undoes it.

What is cached, and how a change reaches a running run: the configuration a step reads (guardrail
policies and settings, a tool and its grants for the tool-scope check, approval rules, span
prices) comes through the configuration cache (tenants/cache.py), which keeps each value in the
process under a version kept in Redis and bumped on commit by any save, update or delete of a
watched model. Each step takes the version once (`config_cache.snapshot()`: one Redis GET) and
reads every value under it, so an admin's change applies from the next step of every running run,
in every process. Budgets are never cached: budgets_reserve reads them under its locks. What one
execution keeps for itself from its claim to its end (as it did before the cache): the run row,
its agent version, the tools granted to that version (a version's grants never change) and the
model its alias resolved to when the execution started. What a process that dies mid-step loses:
that step, its spans with it (traces/hooks.py); the run resumes from its last committed step.
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, replace
from datetime import timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from agents import hooks, pipeline, tools
from agents.events import run_changed
from agents.models import AgentVersionTool, Run, Step, Tool
from catalog.clients import ChatClient, ChatRequest, ChatResponse, Message, ProviderError, ToolSpec, client_for
from catalog.clients.base import estimate_request_tokens
from catalog.models import LanguageModel
from catalog.selectors import provider_config
from tenants import cache as config_cache
from tenants import rls
from tenants.errors import ConflictError
from tenants.queue import enqueue

logger = logging.getLogger(__name__)

TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)
# The least output a model call may be given room for under an agent's token cap.
MIN_OUTPUT_TOKENS = 16


def lease_seconds() -> float:
    return float(getattr(settings, "RUN_LEASE_SECONDS", 30.0))


class RunLeaseHeldError(Exception):
    """Another execution holds a live lease on the run; it may be retried in `retry_in` seconds."""

    def __init__(self, run_id: Any, retry_in: float) -> None:
        super().__init__(f"run {run_id} is being executed elsewhere; its lease expires in {retry_in:.1f} s")
        self.retry_in = retry_in


class _LeaseLostError(Exception):
    """This execution no longer owns the run (its lease was taken over, or the run left `running`)."""


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """The run reached a final or waiting state; unwinds the loop (raised after the commit)."""


def new_lease_owner() -> str:
    """A token naming this execution: host, process and a random part (unique per execution)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"


def execute(run: Run, *, client: ChatClient | None = None, owner: str = "") -> Run:
    """Execute `run` (fetched through its tenant's scope) until it finishes or waits, and return it
    re-read. A run already finished, waiting for approval or cancelled before it started is left as
    it is. Raises RunLeaseHeldError when another execution holds it, and the transient database errors
    (for the task to retry); any other failure ends the run `failed` with `internal_error`.
    `client` replaces the provider's client (tests and benchmarks)."""
    owner = owner or new_lease_owner()
    if _claim(run, owner):
        engine = _Engine(run, owner=owner, client=client)
        with _Heartbeat(run.pk, owner, lease_seconds()):
            engine.go()
    return Run.objects.for_tenant(run.tenant).get(pk=run.pk)


def _claim(run: Run, owner: str) -> bool:
    """queued (or running with an expired lease) → running, with a lease for `owner`. False when
    there is nothing to execute."""
    with transaction.atomic():
        row = Run.objects.for_tenant(run.tenant).select_for_update().get(pk=run.pk)
        row.tenant = run.tenant  # already loaded: saves a query when the change is announced
        now = timezone.now()
        if row.is_finished or row.status == Run.Status.AWAITING_APPROVAL:
            return False
        held = row.status == Run.Status.RUNNING and row.lease_owner != owner and row.lease_expires_at is not None
        if held and row.lease_expires_at is not None and row.lease_expires_at > now:
            raise RunLeaseHeldError(row.pk, (row.lease_expires_at - now).total_seconds())
        if row.status == Run.Status.RUNNING:
            logger.warning("run %s: resuming after the lease of %s expired", row.pk, row.lease_owner or "nobody")
        if row.cancel_requested_at is not None:
            _set_final(row, Run.Status.CANCELLED, "cancelled", "Cancelled on request.", now=now)
            return False
        was = row.status
        row.status = Run.Status.RUNNING
        row.lease_owner = owner
        row.lease_expires_at = now + timedelta(seconds=lease_seconds())
        row.started_at = row.started_at or now
        row.trace_id = row.trace_id or secrets.token_hex(16)
        row.save(update_fields=["status", "lease_owner", "lease_expires_at", "started_at", "trace_id"])
        if was != Run.Status.RUNNING:
            run_changed(row)
    return True


def _set_final(
    row: Run, status: str, error_type: str = "", message: str = "", *, output: str | None = None, now: Any = None
) -> None:
    """Write a final status on a locked row and announce it after commit."""
    row.save(update_fields=_finalize(row, status, error_type, message, output=output, now=now))
    run_changed(row)


def _finalize(
    row: Run, status: str, error_type: str = "", message: str = "", *, output: str | None = None, now: Any = None
) -> list[str]:
    """Set a final status on `row` in memory; the fields to save."""
    row.status = status
    row.error_type = error_type
    row.error_message = message
    if output is not None:
        row.output = output
    row.finished_at = now or timezone.now()
    row.lease_owner = ""
    row.lease_expires_at = None
    row.actions_rejected, row.actions_expired, row.actions_blocked = row.action_counts()
    return [
        "status",
        "error_type",
        "error_message",
        "output",
        "finished_at",
        "lease_owner",
        "lease_expires_at",
        *Run.ACTION_COUNT_FIELDS,
    ]


def budget_approval_key(step_index: int) -> str:
    """The call id under which a reviewer's decision on a full budget before model call
    `step_index` is kept in Run.approval_decisions."""
    return f"budget:{step_index}"


def resume_after_approval(
    *,
    run: Run,
    call_id: str,
    approved: bool,
    arguments: dict[str, Any] | None = None,
    note: str = "",
    expired: bool = False,
    end_run: bool = False,
) -> Run:
    """Record a reviewer's decision on the tool call `run` waits for, and queue the run again (the
    task is sent after commit). Approved: the call runs, with `arguments` if the reviewer edited
    them (checked by the tool-call guardrails again); rejected: the model is told so (`expired`:
    that nobody decided in time), or with `end_run` the run ends `failed` instead. ConflictError
    when the run is not waiting for that call."""
    with transaction.atomic():
        row = Run.objects.for_tenant(run.tenant).select_for_update().get(pk=run.pk)
        if row.status != Run.Status.AWAITING_APPROVAL:
            raise ConflictError(f"The run is {row.get_status_display().lower()}, not awaiting approval.")
        waits_for_budget = call_id == budget_approval_key(row.step_count)
        if not waits_for_budget and call_id not in {call["id"] for call in _pending_calls(row.messages)}:
            raise ConflictError(f"The run is not waiting for a decision on call {call_id!r}.")
        row.approval_decisions = {
            **row.approval_decisions,
            call_id: {
                "approved": approved,
                "arguments": arguments,
                "note": note,
                "expired": expired,
                "end_run": end_run,
                "decided_at": timezone.now().isoformat(),
            },
        }
        row.status = Run.Status.QUEUED
        row.save(update_fields=["approval_decisions", "status"])
        run_changed(row)
        tenant_id, run_id = str(row.tenant_id), str(row.pk)
        enqueue("agents.tasks.execute_run", tenant_id, run_id)
    return row


def _pending_calls(messages: list[Message]) -> list[dict[str, Any]]:
    """The tool calls of the last assistant message that have no result message yet."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message["role"] == "assistant":
            answered = {m.get("tool_call_id") for m in messages[index + 1 :] if m["role"] == "tool"}
            return [dict(call) for call in message.get("tool_calls", []) if call["id"] not in answered]
    return []


def _call_key(name: str, arguments: Any) -> tuple[str, str]:
    return name, tools.canonical_json(arguments)


class _Engine:
    """One execution of one run by the worker holding its lease. Keeps the run in memory (this
    execution is its only writer) and writes it back at every step under the row lock."""

    def __init__(self, run: Run, *, owner: str, client: ChatClient | None) -> None:
        self.run = (
            Run.objects.for_tenant(run.tenant)
            .select_related("tenant", "agent", "agent_version", "api_key")
            .get(pk=run.pk)
        )
        self.version = self.run.agent_version
        # Who the run's model calls are for: built once, read by every hook of the pipeline.
        self.call = hooks.CallContext.of_run(self.run)
        self.owner = owner
        self.client_override = client
        self.span: hooks.Span | None = None
        # False while the conversation's start (system and user messages) is only in memory: it
        # is written with the first step (or whatever this execution commits first).
        self.messages_saved = True

    # --- The loop --------------------------------------------------------------------------------

    def go(self) -> None:
        # The run span ends in the transaction that ends or pauses the run (_locked), so it
        # commits with that state; here only when the execution stops otherwise. One root span
        # per run, named after its agent: every execution of the run (resumed after an approval,
        # or after its worker died) continues it (`replaces`: an earlier one may be stored).
        self.span = span = hooks.open_span(
            self.call,
            "run",
            self.run.agent.name,
            span_id=hooks.run_span_id(self.run),
            started_at=self.run.started_at.timestamp() if self.run.started_at else None,
            run_id=str(self.run.pk),
            agent_id=str(self.run.agent_id),
        )
        span.replaces = self.run.step_count > 0 or bool(self.run.approval_decisions)
        try:
            with config_cache.snapshot():
                self._prepare()
            self._loop()
        except _Stop:
            pass
        except _LeaseLostError as exc:
            span.status = "error"
            logger.warning("run %s: stopping, %s", self.run.pk, exc)
        except TRANSIENT_DATABASE_ERRORS:
            span.status = "error"
            self._release_lease()
            raise
        except Exception as exc:
            span.status = "error"
            logger.exception("run %s failed in the engine", self.run.pk)
            with suppress(_Stop, _LeaseLostError):
                self._finish(Run.Status.FAILED, "internal_error", f"{type(exc).__name__}: {exc}")
        except BaseException:
            span.status = "error"
            raise
        finally:
            self._end_span()

    def _end_span(self) -> None:
        """End the run span (once), with the run's status."""
        if self.span is not None and self.span.ended_at is None:
            self.span.attributes["run.status"] = self.run.status
            hooks.close_span(self.call, self.span)

    def _prepare(self) -> None:
        alias = self.version.model_alias
        try:
            # An eval run on a candidate model replaces the pin (evals/hooks.py).
            candidate = hooks.model_for_run(run=self.run)
            if candidate is not None:
                pipeline.check_usable(candidate, alias=alias)
            self.model: LanguageModel = candidate or pipeline.resolve_model(tenant=self.run.tenant, alias=alias)
        except pipeline.CallRefusedError as exc:
            self._finish(Run.Status.FAILED, exc.code, exc.message)
        provider = self.model.provider
        self.client: ChatClient = self.client_override or client_for(provider_config(provider))
        grants = AgentVersionTool.objects.for_tenant(self.run.tenant).filter(agent_version=self.version)
        self.tools: dict[str, Tool] = {
            g.tool.name: g.tool for g in grants.select_related("tool").order_by("tool__name")
        }
        self.granted = {tool.pk for tool in self.tools.values()}
        self.specs = [
            ToolSpec(name=t.name, description=t.description, parameters=t.parameters) for t in self.tools.values()
        ]
        if not self.run.messages:
            self._start_conversation()
        # Calls that already ran (have a result): asking for one again is a loop.
        results = {m.get("tool_call_id") for m in self.run.messages if m["role"] == "tool"}
        self.ran = {
            _call_key(call["name"], call["arguments"])
            for m in self.run.messages
            for call in m.get("tool_calls", [])
            if call["id"] in results
        }

    def _start_conversation(self) -> None:
        verdict = hooks.check_input(call=self.call, text=self.run.input)
        if verdict.action in ("block", "require_approval"):
            # An input cannot wait for a reviewer (nothing would resume it meaningfully): refuse it.
            self._finish(Run.Status.BLOCKED, "guardrail_input", verdict.reason or "A guardrail blocked the input.")
        text = verdict.redacted if verdict.action == "redact" else self.run.input
        messages: list[Message] = []
        if self.version.instructions:
            messages.append({"role": "system", "content": self.version.instructions})
        messages.append({"role": "user", "content": text})
        # Written with the first model call's step, in its transaction (with the input verdict's
        # span): an execution that dies before that starts the conversation again when resumed.
        self.run.messages = messages
        self.messages_saved = False

    def _loop(self) -> None:
        # Each step reads the configuration (guardrail policies and settings, tool grants, pins)
        # under one version of the configuration cache (tenants/cache.py): one Redis GET a step,
        # and a change an admin commits applies from the next step on.
        while True:
            pending = _pending_calls(self.run.messages)
            if pending:
                for call in pending:
                    with config_cache.snapshot():
                        self._tool_step(call)
                continue
            with config_cache.snapshot():
                last = self.run.messages[-1]
                if last["role"] == "assistant":
                    self._conclude(last["content"])
                self._model_step()

    def _conclude(self, content: str) -> NoReturn:
        """End a run whose last model step, already committed, was a final answer (a run resumed
        after its worker died between that step and its end)."""
        final, output = self._concluded(content)
        self._finish(*final, output=output)

    def _concluded(self, content: str) -> tuple[tuple[str, str, str], str | None]:
        """The output guardrails on a final answer: the final state (status, error type, message)
        and the output to store (None: keep none)."""
        verdict = hooks.check_output(call=self.call, text=content)
        if verdict.action in ("block", "require_approval"):
            reason = verdict.reason or "A guardrail blocked the answer."
            return (Run.Status.BLOCKED, "guardrail_output", reason), None
        output = verdict.redacted if verdict.action == "redact" else content
        return (Run.Status.SUCCEEDED, "", ""), output

    # --- Model calls -----------------------------------------------------------------------------

    def _model_step(self) -> None:
        calls = sum(1 for m in self.run.messages if m["role"] == "assistant")
        if calls >= self.version.max_steps:
            self._finish(
                Run.Status.FAILED,
                "max_steps",
                f"The agent made its {self.version.max_steps} model calls (max steps) without a final answer.",
            )
        model = self.model
        request = ChatRequest(
            model_id=model.model_id,
            messages=list(self.run.messages),
            tools=self.specs,
            temperature=self.version.temperature,
        )
        # The agent's cap bounds input + output of each call: the output may use what the input
        # (estimated) leaves, up to the model's own limit. A conversation that leaves nothing is
        # refused before the call.
        cap = self.version.max_tokens_per_request
        room = cap - estimate_request_tokens(request)
        if room < MIN_OUTPUT_TOKENS:
            self._finish(
                Run.Status.BUDGET_EXCEEDED,
                "token_cap_exceeded",
                f"The next model call would send about {cap - room} tokens, leaving {max(room, 0)} of the "
                f"{cap} tokens per request allowed for agent {self.run.agent.name!r} (at least "
                f"{MIN_OUTPUT_TOKENS} are needed for an answer).",
            )
        request = replace(request, max_output_tokens=min(room, model.max_output_tokens))
        index = self.run.step_count
        summary = {
            "alias": self.version.model_alias,
            "model_id": model.model_id,
            "messages": len(request.messages),
            "tools": [spec.name for spec in request.tools],
            "max_output_tokens": request.max_output_tokens,
            "temperature": request.temperature,
        }
        failure: ProviderError | None = None
        response: ChatResponse | None = None
        refusal: hooks.BudgetDecision | None = None
        latency_ms = 0
        cost = 0
        # The step's span holds its budget reservation, the call and the settlement: the budget
        # hook's spans hang under it (call.parent_span_id).
        with hooks.span(self.call, "model", model.model_id, parent=self.span, step_index=index) as span:
            span.input = {"messages": request.messages, "tools": [spec.name for spec in request.tools]}
            self.call.parent_span_id = span.span_id
            try:
                reservations = pipeline.reserve(call=self.call, model=model, request=request)
                refusal = reservations.refusal
                if refusal is not None:
                    span.status = "error"
                    span.attributes.update(
                        {
                            "error.type": "budget_exceeded",
                            "error.message": refusal.message or "A budget refused the call.",
                        }
                    )
                else:
                    started = time.perf_counter()
                    try:
                        response = self.client.chat(request)
                        span.output = response.as_message()
                    except ProviderError as exc:
                        failure = exc
                        span.status = "error"
                        span.attributes.update({"error.type": exc.type, "error.message": exc.message})
                    latency_ms = round((time.perf_counter() - started) * 1000)
                    used = response.usage if failure is None and response is not None else None
                    cost = pipeline.settle(call=self.call, model=model, reservations=reservations, usage=used)
            finally:
                self.call.parent_span_id = ""
        if refusal is not None:
            message = refusal.message or "A budget refused the call."
            if refusal.approval is not None:
                # A budget that asks a reviewer: pause for one, or end as the reviewer decided.
                key = budget_approval_key(self.run.step_count)
                decided = self.run.approval_decisions.get(key)
                if decided is None:
                    self._pause_for_budget(key, self.run.step_count, refusal.approval, message)
                why = "nobody decided in time" if decided.get("expired") else "a reviewer declined"
                note = f": {decided['note']}" if decided.get("note") else ""
                message = f"{message} It asked for a reviewer's approval, and {why}{note}."
            self._finish(Run.Status.BUDGET_EXCEEDED, "budget_exceeded", message)

        if failure is not None or response is None:
            assert failure is not None
            with self._locked() as run:
                Step.objects.create(
                    tenant_id=run.tenant_id,
                    run=run,
                    index=index,
                    kind=Step.Kind.MODEL,
                    model_id=model.model_id,
                    request=summary,
                    response={"error": {"type": failure.type, "message": failure.message, "status": failure.status}},
                    latency_ms=latency_ms,
                    error=f"{failure.type}: {failure.message}",
                )
                run.step_count = index + 1
                run.save(update_fields=["step_count"])
            self._finish(Run.Status.FAILED, f"provider_{failure.type}", failure.message)
            return

        usage = response.usage
        step = Step(
            tenant_id=self.run.tenant_id,
            run=self.run,
            index=index,
            kind=Step.Kind.MODEL,
            model_id=model.model_id,
            request=summary,
            response={
                "content": response.content,
                "tool_calls": [call.as_dict() for call in response.tool_calls],
                "finish_reason": response.finish_reason,
                "reported_model_id": response.model_id,
                "usage": asdict(usage),
            },
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_micros=cost,
            latency_ms=latency_ms,
        )
        fields: dict[str, Any] = {
            "messages": [*self.run.messages, response.as_message()],
            "step_count": index + 1,
            "input_tokens": self.run.input_tokens + usage.input_tokens,
            "output_tokens": self.run.output_tokens + usage.output_tokens,
            "cost_micros": self.run.cost_micros + cost,
        }
        if response.tool_calls:
            self._write_step(step, fields)
            return
        # A final answer: checked now, so the step and the run's end commit together.
        try:
            final, output = self._concluded(response.content)
        except Exception:
            self._write_step(step, fields)  # the model call is on record before the run fails
            raise
        self._write_step(step, fields, final=final, output=output)

    # --- Tool calls ------------------------------------------------------------------------------

    def _tool_step(self, call: dict[str, Any]) -> None:
        name, call_id, arguments = call["name"], call["id"], call["arguments"]
        key = _call_key(name, arguments)
        if key in self.ran:
            self._finish(
                Run.Status.FAILED,
                "loop_detected",
                f"The model asked for {name} with the same arguments again after it had run "
                f"({tools.canonical_json(arguments)[:200]}): stopped to avoid a loop.",
            )
        index = self.run.step_count
        started = time.perf_counter()
        tool = self.tools.get(name)
        final: tuple[str, str, str] | None = None
        if tool is None:
            exists = Tool.objects.for_tenant(self.run.tenant).filter(name=name).exists()
            result = tools.ToolResult.failure(
                f"The tool {name!r} is not granted to this agent." if exists else f"There is no tool named {name!r}."
            )
        elif problem := tools.permission_error(run=self.run, version=self.version, tool=tool, granted=self.granted):
            result = tools.ToolResult.failure(problem)
        else:
            arguments, result, final = self._guarded_call(tool, call_id, index, arguments)
        latency_ms = round((time.perf_counter() - started) * 1000)
        step = Step(
            tenant_id=self.run.tenant_id,
            run=self.run,
            index=index,
            kind=Step.Kind.TOOL,
            tool_name=name,
            call_id=call_id,
            request={"arguments": arguments},
            response={"result": result.content},
            latency_ms=latency_ms,
            error=result.error,
        )
        tool_message: Message = {"role": "tool", "tool_call_id": call_id, "name": name, "content": result.as_text()}
        self._write_step(step, {"messages": [*self.run.messages, tool_message], "step_count": index + 1}, final=final)
        self.ran.add(key)

    def _guarded_call(
        self, tool: Tool, call_id: str, index: int, arguments: dict[str, Any]
    ) -> tuple[dict[str, Any], tools.ToolResult, tuple[str, str, str] | None]:
        """Guardrails and approval around one permitted call: (arguments used, result, final state
        to end the run in, if a guardrail blocked)."""
        verdict = hooks.check_tool_call(call=self.call, tool=tool, arguments=arguments)
        if verdict.action == "block":
            return self._blocked(tool, arguments, "tool_call", verdict.reason or "A guardrail blocked the call.")
        if verdict.action in ("redact", "require_approval") and verdict.redacted is not None:
            arguments = verdict.redacted
        decision = self.run.approval_decisions.get(call_id)
        if decision is None:
            wants = verdict.action == "require_approval"
            if wants or hooks.needs_approval(run=self.run, tool=tool, arguments=arguments):
                decision = self._decide_or_pause(tool, call_id, index, arguments, verdict.reason if wants else "")
        if decision is None:
            pass  # no approval needed
        elif not decision.get("approved"):
            note = decision.get("note") or ""
            if decision.get("expired"):
                message = "The approval request expired before a reviewer decided; the call was not made."
            else:
                message = "A reviewer rejected this call" + (f": {note}" if note else ".")
            end = (Run.Status.FAILED, "approval_expired" if decision.get("expired") else "approval_rejected", message)
            return arguments, tools.ToolResult.failure(message), end if decision.get("end_run") else None
        elif decision.get("arguments") is not None and decision["arguments"] != arguments:
            # Edited by the reviewer: the edit is checked like the original (a human approved these
            # exact arguments, so require_approval is not asked again).
            arguments = decision["arguments"]
            verdict = hooks.check_tool_call(call=self.call, tool=tool, arguments=arguments)
            if verdict.action == "block":
                reason = verdict.reason or "A guardrail blocked the edited call."
                return self._blocked(tool, arguments, "tool_call", reason)
            if verdict.action == "redact":
                arguments = verdict.redacted

        with hooks.span(self.call, "tool", tool.name, parent=self.span, step_index=index, call_id=call_id) as span:
            simulated = hooks.simulated_tool_result(run=self.run, tool=tool, arguments=arguments)
            if simulated is not None:
                span.attributes["tool.simulated"] = True
            result = (
                simulated
                if simulated is not None
                else tools.execute_tool(run=self.run, tool=tool, step_index=index, call_id=call_id, arguments=arguments)
            )
            span.input, span.output = arguments, result.content
            if not result.ok:
                span.status = "error"
                span.attributes["error.message"] = result.error
        verdict = hooks.check_tool_result(call=self.call, tool=tool, result=result.content)
        if verdict.action in ("block", "require_approval"):
            reason = verdict.reason or "A guardrail blocked the tool's result."
            return self._blocked(tool, arguments, "tool_result", reason)
        if verdict.action == "redact":
            result = tools.ToolResult(content=verdict.redacted, error=result.error)
        return arguments, result, None

    def _blocked(
        self, tool: Tool, arguments: dict[str, Any], stage: str, reason: str
    ) -> tuple[dict[str, Any], tools.ToolResult, tuple[str, str, str]]:
        """A guardrail stopped a call of `tool` at `stage` (`tool_call` or `tool_result`): an
        incident for the agent and this tool (the hooks hear of it), and the end of the run."""
        hooks.tool_incident(run=self.run, tool=tool, stage=stage, reason=reason)
        return (
            arguments,
            tools.ToolResult.failure(f"Blocked: {reason}"),
            (Run.Status.BLOCKED, f"guardrail_{stage}", reason),
        )

    def _decide_or_pause(
        self, tool: Tool, call_id: str, index: int, arguments: dict[str, Any], reason: str
    ) -> dict[str, Any]:
        """A decision made at once by a hook (an eval run's case), recorded on the run like a
        reviewer's so a resumed run does not ask again; otherwise the run pauses."""
        decision = hooks.decide_without_reviewer(
            run=self.run, tool=tool, call_id=call_id, arguments=arguments, reason=reason
        )
        if decision is None:
            self._pause(tool, call_id, index, arguments, reason)
        decision = {"arguments": None, "expired": False, "end_run": False, **decision}
        decision["decided_at"] = timezone.now().isoformat()
        with self._locked() as run:
            run.approval_decisions = {**run.approval_decisions, call_id: decision}
            run.save(update_fields=["approval_decisions"])
        return decision

    def _pause(self, tool: Tool, call_id: str, index: int, arguments: dict[str, Any], reason: str) -> NoReturn:
        reason = reason or f"{tool.name} ({tool.get_risk_display().lower()}) needs a reviewer's approval."
        with self._locked() as run:
            # With a cancel request pending, _locked cancels the run rather than parking it.
            if run.cancel_requested_at is None:
                run.status = Run.Status.AWAITING_APPROVAL
                run.lease_owner = ""
                run.lease_expires_at = None
                run.save(update_fields=["status", "lease_owner", "lease_expires_at"])
                hooks.approval_requested(
                    run=run, tool=tool, call_id=call_id, step_index=index, arguments=arguments, reason=reason
                )
                run_changed(run)
        raise _Stop

    def _pause_for_budget(self, key: str, index: int, details: dict[str, Any], reason: str) -> NoReturn:
        with self._locked() as run:
            if run.cancel_requested_at is None:
                run.status = Run.Status.AWAITING_APPROVAL
                run.lease_owner = ""
                run.lease_expires_at = None
                run.save(update_fields=["status", "lease_owner", "lease_expires_at"])
                hooks.budget_approval_requested(run=run, key=key, step_index=index, details=details, reason=reason)
                run_changed(run)
        raise _Stop

    # --- Transactions on the run row ---------------------------------------------------------------

    def _lease_expiry(self) -> Any:
        return timezone.now() + timedelta(seconds=lease_seconds())

    def _write_step(
        self,
        step: Step,
        fields: dict[str, Any],
        *,
        final: tuple[str, str, str] | None = None,
        output: str | None = None,
    ) -> None:
        """Commit `step` and the run's new `fields` (its lease renewed) in one transaction, with
        what the hooks buffered for the step; with `final` (status, error type, message) and
        `output` the run ends in the same commit (its run span with it), and the loop stops.

        The common case costs one statement besides the step's INSERT: an UPDATE of the run that
        only matches while this execution holds it (running, its lease owner) with no cancel
        request pending, so it locks the row and checks the lease in one round trip, as the
        SELECT … FOR UPDATE of `_locked` would. When it matches nothing (the lease lost, a cancel
        pending), nothing was written and `_locked` decides: it stops a lost execution, and
        commits the step then cancels the run (or ends it as `final` says)."""
        fields = {**fields, "lease_expires_at": self._lease_expiry()}
        values = dict(fields)
        if final is not None:
            ended = copy.copy(self.run)  # the run as it would end, without touching it yet
            for name, value in fields.items():
                setattr(ended, name, value)
            values = {name: getattr(ended, name) for name in [*fields, *_finalize(ended, *final, output=output)]}
        with transaction.atomic():
            held = (
                Run.objects.for_tenant(self.run.tenant)
                .filter(
                    pk=self.run.pk, status=Run.Status.RUNNING, lease_owner=self.owner, cancel_requested_at__isnull=True
                )
                .update(**values)
            )
            if held:
                for name, value in values.items():
                    setattr(self.run, name, value)
                self.messages_saved = self.messages_saved or "messages" in values
                step.save(force_insert=True)
                run_changed(self.run)  # pages showing the run render the new step (or its end) now
                if final is not None:
                    self._end_span()
                hooks.step_committing(call=self.call)
        if not held:
            with self._locked() as run:
                for name, value in fields.items():
                    setattr(run, name, value)
                step.save(force_insert=True)
                run.save(update_fields=list(fields))
                if final is not None:
                    _set_final(run, *final, output=output)
        if final is not None:
            raise _Stop

    @contextmanager
    def _locked(self) -> Iterator[Run]:
        """A transaction holding the run's row lock, after checking this execution still owns the
        run; yields the in-memory run (refreshed with a pending cancel request) to modify and save.
        What the hooks buffered (the step's spans) is written before it commits; a run that stops
        with this commit (ended, paused, cancelled) has its run span ended and written in it.
        Cancellation is checked here, at the end of every step's transaction: a run still running
        with a cancel request is cancelled in the same commit, and the loop stops after it."""
        cancelled = False
        with transaction.atomic():
            row = (
                Run.objects.for_tenant(self.run.tenant)
                .select_for_update()
                .only("id", "status", "lease_owner", "cancel_requested_at")
                .get(pk=self.run.pk)
            )
            if row.status != Run.Status.RUNNING or row.lease_owner != self.owner:
                raise _LeaseLostError(f"the run is {row.status} and its lease belongs to {row.lease_owner or 'nobody'}")
            self.run.cancel_requested_at = row.cancel_requested_at
            yield self.run
            if not self.messages_saved:
                self.run.save(update_fields=["messages"])
                self.messages_saved = True
            if self.run.cancel_requested_at is not None and self.run.status == Run.Status.RUNNING:
                _set_final(self.run, Run.Status.CANCELLED, "cancelled", "Cancelled on request; stopped between steps.")
                cancelled = True
            elif self.run.status == Run.Status.RUNNING:
                # A new step is committed: pages showing the run render it now, not at the next status.
                run_changed(self.run)
            if self.run.status != Run.Status.RUNNING:
                self._end_span()  # the execution stops with this commit (final, paused, cancelled)
            # What the hooks buffered for this step (its spans) commits with it, or not at all.
            hooks.step_committing(call=self.call)
        if cancelled:
            raise _Stop

    def _finish(self, status: str, error_type: str = "", message: str = "", *, output: str | None = None) -> NoReturn:
        """End the run in `status` (committed), then unwind the loop."""
        with self._locked() as run:
            _set_final(run, status, error_type, message, output=output)
        raise _Stop

    def _release_lease(self) -> None:
        """After a transient database error: let the task's retry claim the run at once."""
        try:
            Run.objects.for_tenant(self.run.tenant).filter(
                pk=self.run.pk, lease_owner=self.owner, status=Run.Status.RUNNING
            ).update(lease_expires_at=timezone.now())
        except TRANSIENT_DATABASE_ERRORS:
            logger.warning("run %s: could not release the lease; it expires by itself", self.run.pk)


class _Heartbeat:
    """A thread that pushes the lease's expiry forward every third of the lease while the run
    executes, so a long model or tool call does not look like a dead worker. It uses its own
    database connection and SKIP LOCKED, so it never waits on the engine's row lock (it skips a
    beat instead)."""

    def __init__(self, run_id: Any, owner: str, lease: float) -> None:
        self.run_id = run_id
        self.owner = owner
        self.lease = lease
        self._stop = threading.Event()
        # In the run's tenant context (row-level security), which the engine's thread has now.
        self._thread = threading.Thread(target=rls.carried(self._beat), name=f"lease-{run_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.lease / 3):
                try:
                    with transaction.atomic():
                        # By primary key: the run was fetched through its tenant's scope by the
                        # thread that started this one, whose tenant context this one carries.
                        row = (
                            Run.objects.across_tenants("the lease heartbeat of the run in hand")
                            .select_for_update(skip_locked=True)
                            .filter(pk=self.run_id, lease_owner=self.owner, status=Run.Status.RUNNING)
                            .only("id")
                            .first()
                        )
                        if row is not None:
                            row.lease_expires_at = timezone.now() + timedelta(seconds=self.lease)
                            row.save(update_fields=["lease_expires_at"])
                except TRANSIENT_DATABASE_ERRORS:
                    logger.warning("run %s: lease heartbeat failed; retrying", self.run_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()
