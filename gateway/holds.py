"""Tool calls held for a reviewer: the model proposed a call that the tenant's approval rules or a
tool-call guardrail (`require_approval`) want a human to see, so the gateway holds the answer
until one decides, as the run engine pauses a run (agents/runtime.py, approvals/).

    review(call, proposed)    thread hop: each proposed call of a catalog tool (any call, when
                              X-AOC-Agent names an agent) → the agent's grants and scopes and the
                              key's scope (refused) → tool-call guardrails (block refuses, redact
                              replaces the arguments, require_approval asks) → the approval rules
                              and the agent's autonomy → an ApprovalRequest with the conversation
    wait                      no thread: subscribed to the requests' channel-layer groups
                              (approvals.longpoll.decisions_of) until each is decided or expires,
                              min(X-AOC-Approval-Wait, the rule's timeout); a stream sends an SSE
                              comment `: waiting for approval …` meanwhile
    settle(call, review)      thread hop: expire what nobody decided (or cancel it when the client
                              left), re-check edited arguments with the guardrails, and record each
                              approval as a span under the call's gateway span

Approved calls reach the client as the model proposed them, or with the reviewer's edited
arguments; a refused call (rejected, expired, blocked, not allowed) is taken out of the answer and
replaced by assistant text saying so and why; other calls are unaffected, and when no call remains
the finish reason says the model stopped. Calls of tools the console does not know go through
unchanged unless an agent is named (then its catalog tools are all it may call).

The provider's answer is settled before the hold (a reservation must not outlive its TTL while a
reviewer thinks), so the call's cost headers are exact; the hold is the approval span's wait.
A client that leaves while its call is held has its requests cancelled: nobody would receive a
decision, and a reviewer should not approve an action that will never happen (nor earn the agent
autonomy with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from agents import hooks
from approvals.longpoll import decisions_of, pooled
from catalog.clients import ToolCall
from gateway.errors import invalid

if TYPE_CHECKING:
    from agents.models import Tool
    from approvals.models import ApprovalRequest
    from gateway.asgi import Exchange
    from gateway.calls import Call

WAIT_HEADER = "x-aoc-approval-wait"
MAX_WAIT_SECONDS = 7 * 24 * 3600  # approvals.services.MAX_EXPIRES_IN


def requested_wait(headers: dict[str, str]) -> float | None:
    """Seconds the client will wait for a reviewer (X-AOC-Approval-Wait), None when it did not
    say (the request's own expiry then); a 400 for anything but a number above 0."""
    raw = headers.get(WAIT_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_WAIT_SECONDS):
        raise invalid(
            f"X-AOC-Approval-Wait: how many seconds to hold a tool call for a reviewer, a number above 0 "
            f"and at most {MAX_WAIT_SECONDS} (not {raw[:40]!r})."
        )
    return value


@dataclass
class Outcome:
    """What becomes of one proposed call: released with `arguments`, or refused (`arguments`
    None) and replaced by `refusal`. Pending while `approval_id` waits for a decision."""

    call: ToolCall
    arguments: dict[str, Any] | None
    refusal: str = ""
    approval_id: str = ""
    expires_at: datetime | None = None

    @property
    def changed(self) -> bool:
        return self.arguments is None or self.arguments != self.call.arguments


@dataclass
class Review:
    """The outcome of every proposed call, in the order they were proposed."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def held(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.approval_id]

    @property
    def changed(self) -> bool:
        return any(o.changed or o.approval_id for o in self.outcomes)


async def hold(
    exchange: Exchange,
    call: Call,
    proposed: list[ToolCall],
    *,
    wait: float | None,
    said: str = "",
    stream: bool = False,
) -> list[Outcome] | None:
    """Review the calls the model proposed and hold the answer while reviewers decide; the
    outcome of each (in order), or None when every call goes out as proposed. The caller must
    not answer when the client left meanwhile (`exchange.disconnected`)."""
    if not proposed:
        return None
    review = await pooled(review_calls, call, proposed, wait, said)
    if not review.changed:
        return None
    if review.held:
        answered = False
        try:
            await _wait(exchange, call, review, stream=stream)
            answered = not exchange.disconnected.is_set()
        finally:
            # Also when the request's task is cancelled (the server stops): nobody will receive
            # the answer, so what is still pending is cancelled rather than left for a reviewer.
            await asyncio.shield(pooled(settle, call, review, not answered))
    return review.outcomes


# --- review (a thread hop) -----------------------------------------------------------------------


def review_calls(call: Call, proposed: list[ToolCall], wait: float | None, said: str) -> Review:
    """Each proposed call's outcome; an ApprovalRequest for each that needs a human. The tenant's
    tools and the agent's grants come from the configuration cache (tenants.cache): a call of
    the client's own tools costs no query."""
    from tenants import cache as config_cache

    with config_cache.snapshot():
        tools = _catalog(call)
        granted = _granted(call)
    if not {p.name for p in proposed} & tools.keys() and call.context.agent is None:
        return Review([Outcome(p, p.arguments) for p in proposed])
    return _review(call, proposed, wait, said, tools, granted)


def _catalog(call: Call) -> dict[str, Tool]:
    from agents.models import Tool
    from tenants import cache as config_cache

    tenant = call.context.tenant
    return config_cache.cached("gateway_tools", tenant.pk, lambda: {t.name: t for t in Tool.objects.for_tenant(tenant)})


def _granted(call: Call) -> frozenset[str] | None:
    """The names of the tools granted to the call's agent (its current version), None without one."""
    from agents.models import AgentVersionTool
    from tenants import cache as config_cache

    tenant, version = call.context.tenant, call.context.agent_version
    if version is None:
        return None
    return config_cache.cached(
        "granted_tools",
        version.pk,
        lambda: frozenset(
            AgentVersionTool.objects.for_tenant(tenant)
            .filter(agent_version=version)
            .values_list("tool__name", flat=True)
        ),
    )


def _review(
    call: Call,
    proposed: list[ToolCall],
    wait: float | None,
    said: str,
    catalog: dict[str, Tool],
    granted: frozenset[str] | None,
) -> Review:
    from approvals import policy, services
    from traces.context import current_span

    context = call.context
    current_span.set((context.trace_id, call.span.span_id))  # guardrail spans under the gateway span
    review = Review()
    conversation: list[dict[str, Any]] = [dict(m) for m in call.request.messages]
    ids: set[str] = set()
    for index, p in enumerate(proposed):
        # A request is for one call of the answer: an id missing or given twice is made unique.
        call_id = p.id if p.id and p.id not in ids else f"{p.id or 'call'}#{index}"
        ids.add(call_id)
        p = ToolCall(id=call_id, name=p.name, arguments=p.arguments)
        tool = catalog.get(p.name)
        if tool is None and context.agent is None:
            review.outcomes.append(Outcome(p, p.arguments))  # the client's own tool
            continue
        problem = _not_allowed(call, tool, p.name, granted)
        if problem or tool is None:
            review.outcomes.append(_refused(call, p, f"The call to {p.name} was refused: {problem}."))
            continue
        verdict = hooks.check_tool_call(call=context, tool=tool, arguments=p.arguments)
        if verdict.action == "block":
            reason = verdict.reason or "refused by policy"
            _incident(call, tool, reason)
            review.outcomes.append(Outcome(p, None, f"The call to {p.name} was blocked by a guardrail: {reason}."))
            continue
        arguments = p.arguments
        if verdict.action in ("redact", "require_approval") and isinstance(verdict.redacted, dict):
            arguments = verdict.redacted
        wants = verdict.action == "require_approval"
        if not wants:
            need = policy.evaluate(tenant=context.tenant, agent=context.agent, tool=tool, arguments=arguments)
            grant = (
                policy.autonomy_covers(tenant=context.tenant, agent=context.agent, tool=tool, need=need)
                if need is not None
                else None
            )
            if grant is not None:
                services.autonomy_used(grant=grant)
            if need is None or grant is not None:
                review.outcomes.append(Outcome(p, arguments))
                continue
        proposal = f"{p.name}({json.dumps(arguments, ensure_ascii=False)})"
        approval = services.approval_request_for_call(
            call=context,
            tool=tool,
            call_id=p.id,
            arguments=arguments,
            reason=(verdict.reason or "A guardrail asked for a reviewer.") if wants else "",
            request_id=call.request_id,
            messages=[*conversation, {"role": "assistant", "content": f"{said}\n{proposal}".strip()}],
            wait_seconds=wait,
        )
        review.outcomes.append(Outcome(p, arguments, approval_id=str(approval.pk), expires_at=approval.expires_at))
    return review


def _not_allowed(call: Call, tool: Tool | None, name: str, granted: frozenset[str] | None) -> str:
    """Why the call's agent or key may not call the tool ("" when it may), as the run engine
    says it (agents.tools.permission_error)."""
    context = call.context
    if tool is None:
        return f"there is no tool named {name!r}"
    if granted is not None and tool.name not in granted:
        return f"the tool {name!r} is not granted to this agent"
    scope = tool.required_scope
    if scope and context.agent_version is not None and scope not in context.agent_version.scopes:
        return f"the tool {name!r} needs the scope {scope!r}, which this agent does not hold"
    if scope and not call.key.has_scope(scope):
        return f"the tool {name!r} needs the scope {scope!r}, which this API key lacks"
    return ""


def _refused(call: Call, proposed: ToolCall, text: str) -> Outcome:
    """A call the agent or key may not make: refused, and a tool span in the trace saying why."""
    now = time.time()
    span = hooks.Span(
        trace_id=call.context.trace_id,
        kind="tool",
        name=f"{proposed.name} (refused)",
        parent_id=call.span.span_id,
        started_at=now,
        ended_at=now,
        status="error",
        attributes={
            "call_id": proposed.id,
            "gateway.request_id": call.request_id,
            "error.type": "tool_not_allowed",
            "error.message": text,
        },
    )
    span.input = proposed.arguments
    hooks.record_span(call=call.context, span=span)
    return Outcome(proposed, None, text)


def _incident(call: Call, tool: Tool, reason: str) -> None:
    """A guardrail stopped the agent at a call it proposed: its autonomy for the tool is revoked."""
    from approvals import services

    agent = call.context.agent
    if agent is not None:
        services.autonomy_incident(
            tenant=call.context.tenant,
            agent=agent,
            tool=tool,
            reason=f"incident in gateway call {call.request_id}: a guardrail blocked a call it proposed ({reason})",
        )


# --- wait (no thread) ----------------------------------------------------------------------------


def _pending(call: Call, ids: list[str]) -> list[datetime]:
    """The expiry of each request still pending."""
    from approvals.models import ApprovalRequest

    return list(
        ApprovalRequest.objects.for_tenant(call.context.tenant)
        .filter(pk__in=ids, status=ApprovalRequest.Status.PENDING)
        .values_list("expires_at", flat=True)
    )


async def _wait(exchange: Exchange, call: Call, review: Review, *, stream: bool) -> None:
    """Until every held call is decided, the last of them expires, or the client leaves."""
    ids = [o.approval_id for o in review.held]
    names = ", ".join(dict.fromkeys(o.call.name for o in review.held))
    interval = max(settings.GATEWAY_APPROVAL_KEEPALIVE_SECONDS, 0.05)
    async with decisions_of(ids) as sleep:
        while not exchange.disconnected.is_set():
            pending = await pooled(_pending, call, ids)
            if not pending:
                return
            left = (max(pending) - timezone.now()).total_seconds()
            if left <= 0:
                return
            if stream:
                comment = (
                    f": waiting for approval of {names} ({len(pending)} pending, at most {math.ceil(left)} s more)"
                )
                await exchange.raw(f"{comment}\n\n".encode())
            # A little past the expiry, so that expiring it finds it due.
            if await sleep(min(interval, left + 0.05), exchange.disconnected):
                return


# --- settle (a thread hop) -----------------------------------------------------------------------


def settle(call: Call, review: Review, left: bool) -> None:
    """Close what is still pending (expired; cancelled when the client left), turn each decision
    into the call's outcome, and record the approval spans."""
    from approvals import services
    from approvals.models import ApprovalRequest
    from tenants.audit import Actor
    from tenants.errors import ConflictError
    from traces.context import current_span

    context = call.context
    current_span.set((context.trace_id, call.span.span_id))
    rows = ApprovalRequest.objects.for_tenant(context.tenant).select_related("tenant", "tool", "agent")
    for outcome in review.held:
        row = rows.get(pk=outcome.approval_id)
        if row.is_pending:
            if left:
                with contextlib.suppress(ConflictError):  # decided meanwhile: the decision stands
                    services.approval_cancel(approval=row, actor=Actor.system_actor("gateway: the client left"))
            elif not services.approval_expire(approval=row):
                # Not due by the database's clock, or being decided this instant (locked): nobody
                # waits any longer, unless the decision is committing now, which then stands.
                with contextlib.suppress(ConflictError):
                    services.approval_cancel(approval=row, actor=Actor.system_actor("gateway: the wait ended"))
            row = rows.get(pk=outcome.approval_id)
        _decided(call, outcome, row)
        _record(call, outcome, row, left=left)


def _decided(call: Call, outcome: Outcome, row: ApprovalRequest) -> None:
    name = outcome.call.name
    status = row.status
    if status == "approved":
        arguments = row.effective_arguments
        if row.is_edited:
            # The reviewer's arguments are checked like the model's (the edit was checked when it
            # was made; the policy may have changed since). A human approved them: no new request.
            if row.tool is None:
                outcome.arguments, outcome.refusal = None, f"The call to {name} was refused: its tool was removed."
                return
            verdict = hooks.check_tool_call(call=call.context, tool=row.tool, arguments=arguments)
            if verdict.action == "block":
                outcome.arguments = None
                outcome.refusal = (
                    f"The edited call to {name} was blocked by a guardrail: {verdict.reason or 'refused by policy'}."
                )
                return
            if verdict.action == "redact" and isinstance(verdict.redacted, dict):
                arguments = verdict.redacted
        outcome.arguments = arguments if isinstance(arguments, dict) else outcome.arguments
        return
    outcome.arguments = None
    if status == "rejected":
        outcome.refusal = f"The call to {name} was refused by a reviewer: {row.decision_note}"
    elif status == "expired":
        outcome.refusal = f"The call to {name} was refused: the approval request expired without a decision."
    else:
        outcome.refusal = f"The call to {name} was refused: the approval request was {status}."


def _record(call: Call, outcome: Outcome, row: ApprovalRequest, *, left: bool) -> None:
    """The approval as a span under the call's gateway span: the decision, who, the wait."""
    ended = row.decided_at or timezone.now()
    span = hooks.Span(
        trace_id=call.context.trace_id,
        kind="approval",
        name=f"approval {outcome.call.name}",
        parent_id=call.span.span_id,
        started_at=row.created_at.timestamp(),
        ended_at=ended.timestamp(),
        status="ok" if outcome.arguments is not None else "error",
        attributes={
            "approval.id": str(row.pk),
            "approval.decision": row.status,
            "approval.decided_by": row.decided_by_label,
            "approval.note": row.decision_note,
            "approval.wait_ms": round((ended - row.created_at).total_seconds() * 1000),
            "approval.reason": row.reason,
            "approval.edited": row.is_edited,
            "call_id": outcome.call.id,
            "gateway.request_id": call.request_id,
            "gateway.client_left": left,
        },
    )
    span.input = outcome.call.arguments
    span.output = {"arguments": outcome.arguments} if outcome.arguments is not None else {"refused": outcome.refusal}
    if outcome.arguments is None:
        span.attributes.update({"error.type": f"approval_{row.status}", "error.message": outcome.refusal})
    hooks.record_span(call=call.context, span=span)


# --- answers rewritten ---------------------------------------------------------------------------


def _joined(text: Any, refusals: list[str]) -> str:
    said = text if isinstance(text, str) else ""
    return "\n\n".join(part for part in (said, "\n".join(refusals)) if part)


def _arguments_text(outcome: Outcome, raw: Any) -> Any:
    """The arguments as the client receives them: as the provider sent them unless changed."""
    return json.dumps(outcome.arguments, ensure_ascii=False) if outcome.changed else raw


def completion(data: dict[str, Any], outcomes: list[Outcome]) -> None:
    """A Chat Completions answer with each choice's tool calls (in the order
    gateway.endpoints._read_completion read them) replaced by their outcomes."""
    queue = iter(outcomes)
    for choice in data.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict) or not message.get("tool_calls"):
            continue
        kept, refusals = [], []
        for raw in message["tool_calls"]:
            outcome = next(queue)
            if outcome.arguments is None:
                refusals.append(outcome.refusal)
                continue
            function = raw.get("function") or {}
            kept.append(
                {**raw, "function": {**function, "arguments": _arguments_text(outcome, function.get("arguments"))}}
            )
        if refusals:
            message["content"] = _joined(message.get("content"), refusals)
        if kept:
            message["tool_calls"] = kept
        else:
            message.pop("tool_calls", None)
            if choice.get("finish_reason") == "tool_calls":
                choice["finish_reason"] = "stop"


class ChatStream:
    """A Chat Completions stream's tool calls, kept from the client until they are reviewed:
    `take` removes their deltas from each chunk (and the finish of a choice that has them);
    `release` gives the chunks that send them whole, or their refusals, and the finish."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[int, dict[str, str]]] = {}  # choice -> index -> id, name, arguments
        self.finishes: dict[int, str] = {}
        self.said: set[int] = set()  # choices with text
        self.template: dict[str, Any] = {}

    def take(self, chunk: dict[str, Any]) -> bool:
        """Take the tool calls out of `chunk`; True when it has nothing left to say."""
        choices = chunk.get("choices") or []
        took = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = int(choice.get("index", 0) or 0)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if delta.get("content"):
                    self.said.add(index)
                for raw in delta.pop("tool_calls", None) or []:
                    if not isinstance(raw, dict):
                        continue
                    took = True
                    slot = self.calls.setdefault(index, {}).setdefault(
                        int(raw.get("index", 0) or 0), {"id": "", "name": "", "arguments": ""}
                    )
                    function = raw.get("function") or {}
                    slot["id"] = str(raw.get("id") or slot["id"])
                    slot["name"] += str(function.get("name") or "")
                    slot["arguments"] += str(function.get("arguments") or "")
            if choice.get("finish_reason") and index in self.calls:
                self.finishes[index] = str(choice["finish_reason"])
                choice["finish_reason"] = None
                took = True
        if took:
            self.template = self.template or {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        return took and _silent(chunk)

    def proposed(self) -> list[ToolCall]:
        from gateway.endpoints import _arguments

        return [
            ToolCall(id=c["id"], name=c["name"], arguments=_arguments(c["arguments"]))
            for _, calls in sorted(self.calls.items())
            for _, c in sorted(calls.items())
        ]

    def release(self, outcomes: list[Outcome] | None) -> Iterator[dict[str, Any]]:
        queue = iter(outcomes) if outcomes is not None else None
        for choice, calls in sorted(self.calls.items()):
            kept = 0
            refusals = []
            for _, c in sorted(calls.items()):
                outcome = next(queue) if queue is not None else None
                if outcome is not None and outcome.arguments is None:
                    refusals.append(outcome.refusal)
                    continue
                arguments = _arguments_text(outcome, c["arguments"]) if outcome is not None else c["arguments"]
                delta = {
                    "tool_calls": [
                        {
                            "index": kept,
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": arguments},
                        }
                    ]
                }
                kept += 1
                yield self._chunk(choice, delta)
            if refusals:
                text = "\n".join(refusals)
                yield self._chunk(choice, {"content": f"\n\n{text}" if choice in self.said else text})
            finish = self.finishes.get(choice)
            if finish is not None:
                if not kept and finish == "tool_calls":
                    finish = "stop"
                yield self._chunk(choice, {}, finish)

    def _chunk(self, choice: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.template, "choices": [{"index": choice, "delta": delta, "finish_reason": finish}]}


def _silent(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict):
            return False
        delta = choice.get("delta") or {}
        if choice.get("finish_reason") or any(v not in (None, "", [], {}) for v in delta.values()):
            return False
    return not chunk.get("usage")


# --- the Responses API ---------------------------------------------------------------------------


def _refusal_item(item: dict[str, Any], text: str) -> dict[str, Any]:
    """A message item in place of a refused function_call item."""
    return {
        "type": "message",
        "id": f"msg_{item.get('id') or item.get('call_id') or 'refused'}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def response(data: dict[str, Any], outcomes: list[Outcome]) -> None:
    """A Responses answer with its function_call items (in the order gateway.responses._read read
    them) replaced by their outcomes: a refused call becomes a message item saying so."""
    queue = iter(outcomes)
    output = []
    for item in data.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "function_call":
            outcome = next(queue)
            if outcome.arguments is None:
                item = _refusal_item(item, outcome.refusal)
            elif outcome.changed:
                item = {**item, "arguments": _arguments_text(outcome, item.get("arguments"))}
        output.append(item)
    data["output"] = output


class ResponsesStream:
    """A Responses stream from its first function_call item on, kept from the client until the
    calls are reviewed (events that follow one could refer to its place in the output)."""

    FINAL = ("response.completed", "response.incomplete")

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def take(self, kind: str, data: dict[str, Any]) -> bool:
        if not self.events and not (
            kind == "response.output_item.added" and (data.get("item") or {}).get("type") == "function_call"
        ):
            return False
        self.events.append((kind, data))
        return True

    def release(self, outcomes: list[Outcome] | None) -> Iterator[tuple[str, dict[str, Any]]]:
        """The kept events, with each reviewed call as its outcome says, numbered on from the first."""
        plan: dict[int, Outcome] = {}
        final = next((data for kind, data in self.events if kind in self.FINAL), None)
        if outcomes is not None and final is not None:
            queue = iter(outcomes)
            for position, item in enumerate((final.get("response") or {}).get("output") or []):
                if isinstance(item, dict) and item.get("type") == "function_call":
                    plan[position] = next(queue)
        sequence = next((d["sequence_number"] for _, d in self.events if isinstance(d.get("sequence_number"), int)), 0)
        for kind, data in self._replay(plan, outcomes):
            data["sequence_number"] = sequence
            sequence += 1
            yield kind, data

    def _replay(self, plan: dict[int, Outcome], outcomes: list[Outcome] | None) -> Iterator[tuple[str, dict[str, Any]]]:
        for kind, data in self.events:
            index = data.get("output_index")
            outcome = plan.get(index) if isinstance(index, int) else None
            if kind in self.FINAL and outcomes is not None and isinstance(data.get("response"), dict):
                response(data["response"], outcomes)
            if outcome is None or not outcome.changed:
                yield kind, data
                continue
            raw = data.get("item")
            item: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if outcome.arguments is not None:  # edited by the reviewer: the arguments in one piece
                text = _arguments_text(outcome, None)
                if kind == "response.function_call_arguments.done":
                    delta = {k: v for k, v in data.items() if k not in ("arguments", "name")}
                    yield (
                        "response.function_call_arguments.delta",
                        {
                            **delta,
                            "type": "response.function_call_arguments.delta",
                            "delta": text,
                        },
                    )
                    yield kind, {**data, "arguments": text}
                elif kind == "response.output_item.done":
                    yield kind, {**data, "item": {**item, "arguments": text}}
                elif kind != "response.function_call_arguments.delta":
                    yield kind, data
                continue
            refused = _refusal_item(item, outcome.refusal)  # item is {} for argument events
            where = {"item_id": refused["id"], "output_index": index, "content_index": 0}
            part = refused["content"][0]
            if kind == "response.output_item.added":
                yield kind, {**data, "item": {**refused, "status": "in_progress", "content": []}}
                yield (
                    "response.content_part.added",
                    {
                        "type": "response.content_part.added",
                        **where,
                        "part": {**part, "text": ""},
                    },
                )
                yield (
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        **where,
                        "delta": outcome.refusal,
                        "logprobs": [],
                    },
                )
                yield (
                    "response.output_text.done",
                    {
                        "type": "response.output_text.done",
                        **where,
                        "text": outcome.refusal,
                        "logprobs": [],
                    },
                )
                yield "response.content_part.done", {"type": "response.content_part.done", **where, "part": part}
            elif kind == "response.output_item.done":
                yield kind, {**data, "item": refused}


# --- the Anthropic Messages API ------------------------------------------------------------------


def message(data: dict[str, Any], outcomes: list[Outcome]) -> None:
    """A Messages answer with its tool_use blocks (in the order gateway.messages._read read them)
    replaced by their outcomes: a refused call becomes a text block saying so; with no tool_use
    left the stop reason is end_turn."""
    queue = iter(outcomes)
    blocks, kept = [], 0
    for block in data.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "tool_use":
            outcome = next(queue)
            if outcome.arguments is None:
                blocks.append({"type": "text", "text": outcome.refusal})
                continue
            if outcome.changed:
                block = {**block, "input": outcome.arguments}
            kept += 1
        blocks.append(block)
    data["content"] = blocks
    if not kept and data.get("stop_reason") == "tool_use":
        data["stop_reason"] = "end_turn"


class MessagesStream:
    """A Messages stream from its first tool_use block on, kept from the client until the calls
    are reviewed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def take(self, kind: str, data: dict[str, Any]) -> bool:
        if not self.events and not (
            kind == "content_block_start" and (data.get("content_block") or {}).get("type") == "tool_use"
        ):
            return False
        self.events.append((kind, data))
        return True

    def release(self, outcomes: list[Outcome] | None) -> Iterator[tuple[str, dict[str, Any]]]:
        plan: dict[int, Outcome] = {}
        if outcomes is not None:
            queue = iter(outcomes)
            for kind, data in self.events:
                if kind == "content_block_start" and (data.get("content_block") or {}).get("type") == "tool_use":
                    plan[int(data.get("index", 0) or 0)] = next(queue)
        kept = sum(1 for o in plan.values() if o.arguments is not None)
        for kind, data in self.events:
            outcome = plan.get(int(data.get("index", 0) or 0)) if kind.startswith("content_block") else None
            if kind == "message_delta" and plan and not kept:
                raw = data.get("delta")
                delta: dict[str, Any] = raw if isinstance(raw, dict) else {}
                if delta.get("stop_reason") == "tool_use":
                    data = {**data, "delta": {**delta, "stop_reason": "end_turn"}}
            if outcome is None or not outcome.changed:
                yield kind, data
                continue
            index = data.get("index", 0)
            if kind == "content_block_delta":
                continue  # the arguments as proposed: replaced in one piece below
            if kind == "content_block_start" and outcome.arguments is None:
                yield kind, {**data, "content_block": {"type": "text", "text": ""}}
                continue
            if kind == "content_block_stop":
                delta = (
                    {"type": "text_delta", "text": outcome.refusal}
                    if outcome.arguments is None
                    else {"type": "input_json_delta", "partial_json": _arguments_text(outcome, None)}
                )
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
            yield kind, data
