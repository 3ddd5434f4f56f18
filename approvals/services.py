"""Writes of approvals: create a request, decide it exactly once (with quorum and edits), expire,
escalate and cancel it, grant and revoke autonomy, and edit the rules.

Each service owns its transaction, its audit row and its after-commit side effects (resuming the
run, waking long-poll waiters, the live console, the callback webhook).
"""

from __future__ import annotations

import logging
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents import hooks, runtime, tools
from agents.models import Agent, Run, Tool
from approvals import events, policy
from approvals.models import (
    DEFAULT_TIMEOUT_SECONDS,
    ApprovalRequest,
    ApprovalRule,
    ApprovalVote,
    AutonomyGrant,
    OnReject,
    Reason,
    Risk,
)
from catalog import crypto
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError, ServiceError
from tenants.models import Tenant
from tenants.net import UnsafeUrlError
from tenants.queue import enqueue
from tenants.services import audit_record
from tenants.webhooks import check_webhook_url

logger = logging.getLogger(__name__)

MAX_EXPIRES_IN = 7 * 24 * 3600
MAX_CONTEXT_MESSAGES = 6
MAX_MESSAGE_CHARS = 2000


class DecisionForbiddenError(ServiceError):
    type = "permission_denied"
    status_code = 403


@dataclass(frozen=True)
class Created:
    """A new request, and the secret its callback webhook is signed with (shown once)."""

    approval: ApprovalRequest
    callback_secret: str


# --- Creating requests -------------------------------------------------------------------------


def _times(rule: ApprovalRule | None, timeout: float) -> dict[str, Any]:
    """created_at, expires_at and escalate_at of a request created now under `rule`."""
    now = timezone.now()
    share = rule.escalate_at_share if rule is not None else None
    return {
        "created_at": now,
        "expires_at": now + timedelta(seconds=timeout),
        "escalate_at": now + timedelta(seconds=timeout * share) if share else None,
    }


def approval_request_for_run(
    *, run: Run, tool: Tool, call_id: str, step_index: int, arguments: dict[str, Any], reason: str
) -> ApprovalRequest:
    """The request for a run's paused tool call (the engine calls this inside the transaction that
    pauses the run, through ApprovalHooks). Idempotent per (run, call): a re-paused call keeps its
    request. `reason` is the engine's text: a guardrail's reason, or its default."""
    existing = ApprovalRequest.objects.for_tenant(run.tenant).filter(run=run, call_id=call_id).first()
    if existing is not None:
        return existing
    need = policy.evaluate(tenant=run.tenant, agent=run.agent, tool=tool, arguments=arguments)
    if need is not None:
        code, detail, rule = need.reason, need.detail, need.rule
    else:
        rule = policy.rule_for(tenant=run.tenant, agent=run.agent, tool=tool)
        default_text = f"{tool.name} ({tool.get_risk_display().lower()}) needs a reviewer's approval."
        code = Reason.GUARDRAIL if reason and reason != default_text else Reason.POLICY
        detail = reason
    saved_rule = rule if rule.pk and not rule._state.adding else None
    timeout = rule.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
    times = _times(rule, timeout)
    approval = ApprovalRequest.objects.create(
        tenant=run.tenant,
        run=run,
        step_index=step_index,
        call_id=call_id,
        agent_id=run.agent_id,
        tool=tool,
        action=tool.name,
        arguments=arguments,
        arguments_hash=tools.arguments_hash(arguments),
        arguments_shape=policy.arguments_shape(arguments),
        risk=tool.risk,
        reason=code,
        reason_detail=detail[:2000],
        context=_run_context(run, guardrail=detail if code == Reason.GUARDRAIL else ""),
        rule=saved_rule,
        quorum=rule.quorum,
        on_reject=rule.on_reject,
        requested_by_api_key=run.api_key,
        requester_label=f"run {run.pk}"[:200],
        **times,
    )
    events.approval_changed(approval)
    return approval


def approval_request_for_call(
    *,
    call: hooks.CallContext,
    tool: Tool,
    call_id: str,
    arguments: dict[str, Any],
    reason: str,
    request_id: str,
    messages: list[dict[str, Any]],
    wait_seconds: float | None = None,
) -> ApprovalRequest:
    """The request for a tool call a model proposed in a gateway call (`call.run` is None): the
    gateway holds the client's answer until it is decided (gateway.holds). Idempotent per
    (gateway request, call). The rule that governs the agent and tool sets the quorum, timeout
    and escalation; the request expires at the rule's timeout or after `wait_seconds` if that
    is sooner, since nobody waits for a decision after that. `reason` is a guardrail's reason
    (require_approval), or "" when the rules ask. `messages` is the conversation so far, the
    proposed call last; a reviewer sees its last messages."""
    tenant = call.tenant
    existing = ApprovalRequest.objects.for_tenant(tenant).filter(gateway_request_id=request_id, call_id=call_id).first()
    if existing is not None:
        return existing
    need = policy.evaluate(tenant=tenant, agent=call.agent, tool=tool, arguments=arguments)
    code: str
    if reason:
        rule = need.rule if need is not None else policy.rule_for(tenant=tenant, agent=call.agent, tool=tool)
        code, detail = Reason.GUARDRAIL, reason
    elif need is not None:
        code, detail, rule = need.reason, need.detail, need.rule
    else:
        rule = policy.rule_for(tenant=tenant, agent=call.agent, tool=tool)
        code, detail = Reason.POLICY, f"{tool.name} ({tool.get_risk_display().lower()}) needs a reviewer's approval."
    timeout: float = rule.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
    if wait_seconds is not None:
        timeout = min(timeout, wait_seconds)
    context: dict[str, Any] = {
        "messages": [
            {"role": str(m.get("role", "")), "content": str(m.get("content", ""))[:MAX_MESSAGE_CHARS]}
            for m in messages[-MAX_CONTEXT_MESSAGES:]
            if m.get("content")
        ],
        "trace_id": call.trace_id,
        "gateway_request_id": request_id,
        "gateway_span_id": call.parent_span_id,
        "end_user_id": call.end_user_id,
        "session_id": call.session_id,
    }
    if code == Reason.GUARDRAIL:
        context["guardrail_findings"] = [{"reason": detail}]
    key = call.api_key
    with transaction.atomic():
        approval = ApprovalRequest.objects.create(
            tenant=tenant,
            run=None,
            call_id=call_id[:200],
            gateway_request_id=request_id[:64],
            agent=call.agent,
            tool=tool,
            action=tool.name,
            arguments=arguments,
            arguments_hash=tools.arguments_hash(arguments),
            arguments_shape=policy.arguments_shape(arguments),
            risk=tool.risk,
            reason=code,
            reason_detail=detail[:2000],
            context=context,
            rule=rule if rule.pk and not rule._state.adding else None,
            quorum=rule.quorum,
            requested_by_api_key=key,
            requester_label=(f"gateway call {request_id}" + (f" (key {key.display_prefix})" if key else ""))[:200],
            **_times(rule, timeout),
        )
        events.approval_changed(approval)
    return approval


BUDGET_OVERRIDE_ACTION = "budget_override"


def approval_request_for_budget(
    *, run: Run, key: str, step_index: int, details: dict[str, Any], reason: str
) -> ApprovalRequest:
    """The request for a run paused before a model call because a `require_approval` budget is
    full (the engine calls this inside the pausing transaction, through ApprovalHooks). Approving
    lets that one call through, counted past the limit; rejecting or expiry ends the run
    `budget_exceeded`. Idempotent per (run, key). Timeout, quorum and escalation come from the
    rule that governs the agent (its tenant default)."""
    existing = ApprovalRequest.objects.for_tenant(run.tenant).filter(run=run, call_id=key).first()
    if existing is not None:
        return existing
    rule = policy.rule_for(tenant=run.tenant, agent=run.agent, tool=None)
    saved_rule = rule if rule.pk and not rule._state.adding else None
    timeout = rule.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
    approval = ApprovalRequest.objects.create(
        tenant=run.tenant,
        run=run,
        step_index=step_index,
        call_id=key,
        agent_id=run.agent_id,
        tool=None,
        action=BUDGET_OVERRIDE_ACTION,
        arguments=details,
        arguments_hash=tools.arguments_hash(details),
        arguments_shape=policy.arguments_shape(details),
        risk=Risk.WRITE,
        reason=Reason.BUDGET,
        reason_detail=reason[:2000],
        context=_run_context(run, guardrail=""),
        rule=saved_rule,
        quorum=rule.quorum,
        on_reject=OnReject.END_RUN,
        requested_by_api_key=run.api_key,
        requester_label=f"run {run.pk}"[:200],
        **_times(rule, timeout),
    )
    events.approval_changed(approval)
    return approval


def _run_context(run: Run, *, guardrail: str) -> dict[str, Any]:
    """What a reviewer needs to judge the call: the last messages, guardrail findings, the trace."""
    messages = [
        {"role": m["role"], "content": str(m.get("content", ""))[:MAX_MESSAGE_CHARS]}
        for m in run.messages[-MAX_CONTEXT_MESSAGES:]
        if m.get("content")
    ]
    context: dict[str, Any] = {"messages": messages, "trace_id": run.trace_id, "run_id": str(run.pk)}
    if guardrail:
        context["guardrail_findings"] = [{"reason": guardrail}]
    return context


def approval_request_create(
    *,
    actor: Actor,
    tenant: Tenant,
    action: str,
    arguments: dict[str, Any],
    risk: str,
    reason: str,
    context: dict[str, Any] | None = None,
    run: Run | None = None,
    expires_in: int | None = None,
    callback_url: str = "",
) -> Created:
    """A request from an external client for an action it performs itself (it long-polls for the
    decision or receives it at `callback_url`). The tenant's rule for the tool of that name (if
    any) sets quorum, timeout and escalation; `expires_in` (seconds) overrides the timeout."""
    action = action.strip()
    if not action:
        raise FieldError("action", "name the action to approve.")
    if len(action) > 200:
        raise FieldError("action", "at most 200 characters.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cn") for c in action):
        # A reviewer reads the action's name in lists: nothing in it may hide or reorder text.
        raise FieldError("action", "contains invisible or control characters.")
    if not isinstance(arguments, dict):
        raise FieldError("arguments", "must be a JSON object.")
    if risk not in Risk.values:
        raise FieldError("risk", f"one of {', '.join(Risk.values)}.")
    if reason not in Reason.values:
        raise FieldError("reason", f"one of {', '.join(Reason.values)}.")
    if context is not None and not isinstance(context, dict):
        raise FieldError("context", "must be a JSON object.")
    if context and "guardrail_findings" in context:
        # A reviewer reads these as the console's own guardrails' findings (badges in the queue):
        # a client may not write them, only its own, under a key of its own.
        raise FieldError(
            "context",
            "guardrail_findings is written by the console's guardrails, not by a client; send your own "
            "findings under another key (e.g. client_findings), shown with the request's context.",
        )
    if expires_in is not None and not 10 <= expires_in <= MAX_EXPIRES_IN:
        raise FieldError("expires_in", f"between 10 and {MAX_EXPIRES_IN} seconds.")
    if callback_url:
        _check_callback_url(callback_url)
    tool = Tool.objects.for_tenant(tenant).filter(name=action).first()
    agent = run.agent if run is not None else None
    rule = policy.rule_for(tenant=tenant, agent=agent, tool=tool)
    timeout = expires_in or rule.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
    times = _times(rule, timeout)
    secret = secrets.token_urlsafe(32) if callback_url else ""
    with transaction.atomic():
        approval = ApprovalRequest.objects.create(
            tenant=tenant,
            run=None,  # an external action is not a paused call of the run; the run is context only
            agent=agent,
            tool=tool,
            action=action,
            arguments=arguments,
            arguments_hash=tools.arguments_hash(arguments),
            arguments_shape=policy.arguments_shape(arguments),
            risk=risk,
            reason=reason,
            context={**(context or {}), **({"run_id": str(run.pk), "trace_id": run.trace_id} if run else {})},
            rule=rule if not rule._state.adding else None,
            quorum=rule.quorum,
            requested_by_api_key=actor.api_key,
            requester_label=actor.label[:200],
            **times,
            callback_url=callback_url,
            callback_secret_encrypted=crypto.encrypt(secret),
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action="approval.request",
            target=approval,
            after={"action": action, "risk": risk, "reason": reason, "arguments_hash": approval.arguments_hash},
        )
        events.approval_changed(approval)
    return Created(approval=approval, callback_secret=secret)


def _check_callback_url(url: str) -> None:
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise FieldError("callback_url", "not a valid URL.") from exc
    try:
        check_webhook_url(url, resolve=False)
    except UnsafeUrlError as exc:
        raise FieldError("callback_url", str(exc)) from exc


# --- Deciding ----------------------------------------------------------------------------------


def _voter(actor: Actor) -> str:
    if actor.user is not None:
        return f"user:{actor.user.pk}"
    if actor.api_key is not None:
        return f"key:{actor.api_key.pk}"
    raise DecisionForbiddenError("Only a reviewer or an API key may decide an approval.")


def _checked_edit(approval: ApprovalRequest, arguments: Any) -> dict[str, Any]:
    """The edited arguments, validated against the tool's JSON Schema and re-checked by the
    tool-call guardrails (a block refuses the edit; a redaction is what gets approved)."""
    if approval.reason == Reason.BUDGET:
        raise FieldError("decision", "a budget override is approved or rejected; there is nothing to edit.")
    if not isinstance(arguments, dict):
        raise FieldError("arguments", "an edit needs the new arguments as a JSON object.")
    tool = approval.tool
    if tool is None or (approval.run is None and not approval.gateway_request_id):
        # An external client's action is performed by the client itself, to its own schema: a tool
        # of the same name in the console only picks the rule.
        return arguments
    problem = tools.validation_error(tool, arguments)
    if problem:
        raise FieldError("arguments", problem)
    call = _call_of(approval)
    if approval.run is None:
        # The check's guardrail span joins the gateway call's trace under its gateway span.
        from traces.context import current_span

        token = current_span.set((call.trace_id, call.parent_span_id))
        try:
            verdict = hooks.check_tool_call(call=call, tool=tool, arguments=arguments)
        finally:
            current_span.reset(token)
    else:
        verdict = hooks.check_tool_call(call=call, tool=tool, arguments=arguments)
    if verdict.action == "block":
        raise FieldError("arguments", f"a guardrail blocks the edited call: {verdict.reason or 'blocked'}.")
    if verdict.action == "redact" and isinstance(verdict.redacted, dict):
        return verdict.redacted
    return arguments


def _call_of(approval: ApprovalRequest) -> hooks.CallContext:
    """Who the request's call is for: its run, or the gateway call it was proposed in."""
    if approval.run is not None:
        return hooks.CallContext.of_run(approval.run)
    context = approval.context if isinstance(approval.context, dict) else {}
    agent = approval.agent
    return hooks.CallContext(
        tenant=approval.tenant,
        trace_id=str(context.get("trace_id") or ""),
        api_key=approval.requested_by_api_key,
        agent=agent,
        agent_version=agent.current_version if agent is not None else None,
        end_user_id=str(context.get("end_user_id") or ""),
        session_id=str(context.get("session_id") or ""),
        source="gateway",
        parent_span_id=str(context.get("gateway_span_id") or ""),
    )


def _already_decided(approval: ApprovalRequest) -> ConflictError:
    who = approval.decided_by_label or "nobody"
    when = approval.decided_at.isoformat() if approval.decided_at else ""
    verb = {"expired": "expired", "cancelled": "was cancelled"}.get(approval.status, f"was {approval.status} by {who}")
    return ConflictError(
        f"This request {verb}" + (f" at {when}" if when else "") + "; it cannot be decided again.",
        status=approval.status,
        decided_by=approval.decided_by_label,
        decided_at=when,
    )


def approval_decide(
    *,
    approval: ApprovalRequest,
    actor: Actor,
    decision: str,
    note: str = "",
    arguments: dict[str, Any] | None = None,
) -> ApprovalRequest:
    """Record `actor`'s decision: approve, reject (a note is required) or edit (new arguments,
    re-validated and re-checked, then approved). A request is decided exactly once: the row is
    locked, and a decision on one that left `pending` raises ConflictError naming who decided.
    With a quorum above one, approvals accumulate (one per reviewer, for the same arguments: an
    edit restarts the count) until the quorum is met; one rejection rejects.
    A decision resumes the paused run (after commit) and delivers the callback webhook."""
    if decision not in ApprovalVote.Decision.values:
        raise FieldError("decision", "one of approve, reject, edit.")
    note = (note or "").strip()
    if decision == ApprovalVote.Decision.REJECT and not note:
        raise FieldError("note", "a rejection needs a comment saying why.")
    if decision != ApprovalVote.Decision.EDIT and arguments is not None:
        raise FieldError("arguments", "only an edit carries arguments.")
    voter = _voter(actor)
    if actor.api_key is not None and actor.api_key.pk == approval.requested_by_api_key_id:
        raise DecisionForbiddenError("The API key that asked for this approval cannot decide it.")
    if approval.decided_at is not None or not approval.is_pending:
        raise _already_decided(approval)
    edited = _checked_edit(approval, arguments) if decision == ApprovalVote.Decision.EDIT else None

    expired = False
    with transaction.atomic():
        row = (
            ApprovalRequest.objects.for_tenant(approval.tenant)
            .select_for_update(of=("self",))
            .select_related("tenant", "run", "tool", "agent")
            .get(pk=approval.pk)
        )
        if not row.is_pending:
            raise _already_decided(row)
        now = timezone.now()
        if row.expires_at <= now:
            _finish(row, ApprovalRequest.Status.EXPIRED, label="expiry", now=now)
            audit_record(
                tenant=row.tenant,
                actor=Actor.system_actor("approval expiry"),
                action="approval.expire",
                target=row,
                after={"status": row.status},
            )
            expired = True
        else:
            if ApprovalVote.objects.for_tenant(row.tenant).filter(request=row, voter=voter).exists():
                raise ConflictError("You have already voted on this request; another reviewer must complete it.")
            if edited is not None:
                row.edited_arguments = edited
                row.edited_arguments_hash = tools.arguments_hash(edited)
                row.save(update_fields=["edited_arguments", "edited_arguments_hash"])
            ApprovalVote.objects.create(
                tenant=row.tenant,
                request=row,
                decision=decision,
                voter=voter,
                voter_label=actor.label[:200],
                user=actor.user,
                api_key=actor.api_key,
                note=note,
                arguments_hash=row.effective_hash,
            )
            status = ""
            if decision == ApprovalVote.Decision.REJECT:
                status = ApprovalRequest.Status.REJECTED
            else:
                approvals = (
                    ApprovalVote.objects.for_tenant(row.tenant)
                    .filter(request=row, arguments_hash=row.effective_hash)
                    .exclude(decision=ApprovalVote.Decision.REJECT)
                    .count()
                )
                if approvals >= row.quorum:
                    status = ApprovalRequest.Status.APPROVED
            if status:
                _finish(row, status, label=actor.label, user=actor.user, note=note, now=now)
                _autonomy_after_decision(row, actor=actor, decision=decision)
            audit_record(
                tenant=row.tenant,
                actor=actor,
                action=f"approval.{decision}",
                target=row,
                after={"status": row.status, "note": note, "arguments_hash": row.effective_hash},
            )
            if not status:
                events.approval_changed(row)  # a vote toward the quorum: the page shows the count
    if expired:
        raise _already_decided(row)
    return row


def _finish(
    row: ApprovalRequest, status: str, *, label: str, user: Any = None, note: str = "", now: Any = None
) -> None:
    """Close a locked pending request in `status`, resume its run and schedule the after-commit
    side effects (waiters, live pages, the callback, the trace span)."""
    row.status = status
    row.decided_at = now or timezone.now()
    row.decided_by = user
    row.decided_by_label = label[:200]
    row.decision_note = note
    row.save(update_fields=["status", "decided_at", "decided_by", "decided_by_label", "decision_note"])
    if row.run is not None and status != ApprovalRequest.Status.CANCELLED:
        _resume(row)
    events.approval_changed(row)
    if row.callback_url:
        tenant_id, approval_id = str(row.tenant_id), str(row.pk)
        enqueue("approvals.tasks.deliver_callback", tenant_id, approval_id)
    if row.run is not None:
        transaction.on_commit(lambda: _record_span(row))


def _resume(row: ApprovalRequest) -> None:
    """Hand the decision to the paused run. A run that no longer waits (cancelled meanwhile) has
    nothing to resume: the request is then recorded as cancelled instead."""
    assert row.run is not None
    approved = row.status == ApprovalRequest.Status.APPROVED
    try:
        with transaction.atomic():
            runtime.resume_after_approval(
                run=row.run,
                call_id=row.call_id,
                approved=approved,
                arguments=row.edited_arguments if approved and row.is_edited else None,
                note=row.decision_note,
                expired=row.status == ApprovalRequest.Status.EXPIRED,
                end_run=not approved and row.on_reject == OnReject.END_RUN,
            )
    except ConflictError as exc:
        logger.info("approval %s: the run no longer waits (%s); recorded as cancelled", row.pk, exc)
        row.status = ApprovalRequest.Status.CANCELLED
        row.save(update_fields=["status"])


def _record_span(row: ApprovalRequest) -> None:
    """The approval as a span of the run's trace: who decided, what, and how long it waited. It
    replaces the pending span recorded when the run paused (approvals/hooks.py), under the run's root."""
    run = row.run
    if run is None or not run.trace_id or row.decided_at is None:
        return
    wait_ms = round((row.decided_at - row.created_at).total_seconds() * 1000)
    span = hooks.Span(
        trace_id=run.trace_id,
        kind="approval",
        name=f"approval {row.action}",
        span_id=hooks.approval_span_id(row.pk),
        parent_id=hooks.run_span_id(run),
        replaces=True,
        attributes={
            "approval.id": str(row.pk),
            "approval.decision": row.status,
            "approval.decided_by": row.decided_by_label,
            "approval.wait_ms": wait_ms,
            "approval.reason": row.reason,
            "approval.edited": row.is_edited,
            "call_id": row.call_id,
            "step_index": row.step_index,
        },
        started_at=row.created_at.timestamp(),
        ended_at=row.decided_at.timestamp(),
        status="ok" if row.status == ApprovalRequest.Status.APPROVED else "error",
    )
    try:
        hooks.record_span(call=hooks.CallContext.of_run(run), span=span)
    except Exception:
        logger.exception("approval %s: recording its span failed", row.pk)


def approvals_bulk_approve(
    *, tenant: Tenant, actor: Actor, ids: list[Any], note: str = ""
) -> tuple[list[ApprovalRequest], list[str]]:
    """Approve several pending requests at once, all of one action and one risk tier (else
    FieldError). Returns (approved or voted, messages for those that could not be)."""
    rows = list(
        ApprovalRequest.objects.for_tenant(tenant)
        .filter(pk__in=ids, status=ApprovalRequest.Status.PENDING)
        .select_related("tenant", "run", "tool", "agent")
    )
    if not rows:
        raise FieldError("ids", "select at least one pending request.")
    if len({(r.action, r.risk) for r in rows}) > 1:
        raise FieldError("ids", "bulk approval is for requests of one action and one risk tier only.")
    done, problems = [], []
    for row in rows:
        try:
            done.append(approval_decide(approval=row, actor=actor, decision="approve", note=note))
        except ServiceError as exc:
            problems.append(f"{row.pk}: {exc.message}")
    return done, problems


# --- Expiry, escalation, cancellation ----------------------------------------------------------


def approval_expire(*, approval: ApprovalRequest) -> bool:
    """Expire one pending request past its expiry (recorded `expired`, never as a human
    rejection; the run is told nobody decided). False when it was no longer due."""
    with transaction.atomic():
        row = (
            ApprovalRequest.objects.for_tenant(approval.tenant)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant", "run", "tool", "agent")
            .filter(pk=approval.pk, status=ApprovalRequest.Status.PENDING, expires_at__lte=timezone.now())
            .first()
        )
        if row is None:
            return False
        _finish(row, ApprovalRequest.Status.EXPIRED, label="expiry")
        audit_record(
            tenant=row.tenant,
            actor=Actor.system_actor("approval expiry"),
            action="approval.expire",
            target=row,
            after={"status": row.status},
        )
    return True


def approvals_expire_due(*, limit: int = 500) -> int:
    """Expire every due request, each in its own transaction; cancel pending requests whose run
    ended meanwhile (cancelled). Returns how many were expired."""
    now = timezone.now()
    # Each row is then handled through its tenant.
    due = list(
        ApprovalRequest.objects.across_tenants("beat's expiry sweep")
        .filter(status=ApprovalRequest.Status.PENDING, expires_at__lte=now)
        .select_related("tenant")
        .order_by("expires_at")[:limit]
    )
    expired = sum(1 for row in due if approval_expire(approval=row))
    orphans = list(
        ApprovalRequest.objects.across_tenants("beat's expiry sweep: requests whose run ended")
        .filter(status=ApprovalRequest.Status.PENDING, run__status__in=sorted(Run.FINAL_STATUSES))
        .select_related("tenant")[:limit]
    )
    for row in orphans:
        approval_cancel(approval=row, actor=Actor.system_actor("run ended"))
    return expired


def approval_cancel(*, approval: ApprovalRequest, actor: Actor) -> ApprovalRequest:
    """Withdraw a pending request (its run ended, or its requester no longer needs it)."""
    with transaction.atomic():
        row = (
            ApprovalRequest.objects.for_tenant(approval.tenant)
            .select_for_update(of=("self",))
            .select_related("tenant", "run", "tool", "agent")
            .get(pk=approval.pk)
        )
        if not row.is_pending:
            raise _already_decided(row)
        _finish(row, ApprovalRequest.Status.CANCELLED, label=actor.label, user=actor.user)
        audit_record(tenant=row.tenant, actor=actor, action="approval.cancel", target=row)
    return row


def approvals_escalate_due(*, limit: int = 500) -> int:
    """Mark every pending request past its escalation time as escalated (once: a conditional
    update) and send the notifications after commit. Returns how many."""
    now = timezone.now()
    due = list(
        ApprovalRequest.objects.across_tenants("beat's escalation sweep")
        .filter(status=ApprovalRequest.Status.PENDING, escalate_at__lte=now, escalated_at__isnull=True)
        .values_list("tenant_id", "pk")[:limit]
    )
    count = 0
    for tenant_id, pk in due:
        with transaction.atomic():
            won = (
                ApprovalRequest.objects.for_tenant(tenant_id)
                .filter(pk=pk, status=ApprovalRequest.Status.PENDING, escalated_at__isnull=True)
                .update(escalated_at=now)
            )
            if won:
                count += 1
                enqueue("approvals.tasks.notify_escalation", str(tenant_id), str(pk))
    return count


def escalation_recipients(approval: ApprovalRequest) -> list[str]:
    """The tenant's admins and the rule's extra addresses, without duplicates."""
    from tenants.models import Membership, Role

    admins = (
        Membership.objects.for_tenant(approval.tenant).filter(role=Role.ADMIN).values_list("user__email", flat=True)
    )
    extra = approval.rule.escalation_emails if approval.rule is not None else []
    return sorted({*admins, *extra})


# --- Autonomy ----------------------------------------------------------------------------------


def autonomy_streak(*, tenant: Tenant, agent: Agent, tool: Tool) -> int:
    """Consecutive human approvals of `agent` calling `tool`, newest first, with no rejection,
    edit or expiry between, since the last revocation (one query, at most 1000 rows)."""
    last_revoked = (
        AutonomyGrant.objects.for_tenant(tenant)
        .filter(agent=agent, tool=tool, revoked_at__isnull=False)
        .order_by("-revoked_at")
        .values_list("revoked_at", flat=True)
        .first()
    )
    decided = ApprovalRequest.objects.for_tenant(tenant).filter(
        agent=agent, tool=tool, decided_at__isnull=False, status__in=["approved", "rejected", "expired"]
    )
    if last_revoked is not None:
        decided = decided.filter(decided_at__gt=last_revoked)
    streak = 0
    for status, edited in decided.order_by("-decided_at").values_list("status", "edited_arguments_hash")[:1000]:
        if status != ApprovalRequest.Status.APPROVED or edited:
            break
        streak += 1
    return streak


def _autonomy_after_decision(row: ApprovalRequest, *, actor: Actor, decision: str) -> None:
    """A rejection or an edit revokes the agent's autonomy for the tool; an approval may grant it."""
    if row.agent is None or row.tool is None:
        return
    active = (
        AutonomyGrant.objects.for_tenant(row.tenant)
        .select_for_update()
        .filter(agent=row.agent, tool=row.tool, revoked_at__isnull=True)
        .first()
    )
    if decision != ApprovalVote.Decision.APPROVE:
        if active is not None:
            reason = "a reviewer rejected a call" if decision == "reject" else "a reviewer edited a call"
            _revoke(active, actor=actor, reason=reason)
        return
    if active is not None:
        return
    rule = policy.rule_for(tenant=row.tenant, agent=row.agent, tool=row.tool)
    if rule.autonomy_after is None:
        return
    if row.tool.risk == Risk.IRREVERSIBLE and not rule.autonomy_irreversible:
        return
    streak = autonomy_streak(tenant=row.tenant, agent=row.agent, tool=row.tool)
    if streak >= rule.autonomy_after:
        grant = AutonomyGrant.objects.create(
            tenant=row.tenant,
            agent=row.agent,
            tool=row.tool,
            streak=streak,
            granted_by_label=f"earned: {streak} consecutive approvals",
        )
        audit_record(
            tenant=row.tenant,
            actor=Actor.system_actor("progressive autonomy"),
            action="autonomy.grant",
            target=grant,
            target_label=f"{row.agent.name} · {row.tool.name}",
            after={"streak": streak, "rule": rule.target_label},
        )


def _revoke(grant: AutonomyGrant, *, actor: Actor, reason: str) -> None:
    grant.revoked_at = timezone.now()
    grant.revoked_by_label = actor.label[:200]
    grant.revoke_reason = reason[:300]
    grant.save(update_fields=["revoked_at", "revoked_by_label", "revoke_reason"])
    audit_record(
        tenant=grant.tenant,
        actor=actor,
        action="autonomy.revoke",
        target=grant,
        target_label=f"{grant.agent} · {grant.tool}",
        after={"reason": reason},
    )


def autonomy_revoke(*, grant: AutonomyGrant, actor: Actor, reason: str) -> AutonomyGrant:
    """An admin (or an incident) takes an agent's autonomy for a tool back (audited)."""
    reason = reason.strip()
    if not reason:
        raise FieldError("reason", "say why autonomy is revoked (e.g. an incident).")
    with transaction.atomic():
        row = (
            AutonomyGrant.objects.for_tenant(grant.tenant)
            .select_for_update()
            .select_related("agent", "tool", "tenant")
            .get(pk=grant.pk)
        )
        if row.revoked_at is not None:
            raise ConflictError(f"This grant was already revoked by {row.revoked_by_label}.")
        _revoke(row, actor=actor, reason=reason)
    return row


def autonomy_incident(*, tenant: Tenant, agent: Agent, tool: Tool, reason: str) -> AutonomyGrant | None:
    """An incident (a guardrail stopped the agent at a call of `tool`) revokes the agent's autonomy
    for the tool, if it has any: its next calls ask a human again. Returns the revoked grant."""
    with transaction.atomic():
        grant = (
            AutonomyGrant.objects.for_tenant(tenant)
            .select_for_update()
            .select_related("agent", "tool", "tenant")
            .filter(agent=agent, tool=tool, revoked_at__isnull=True)
            .first()
        )
        if grant is None:
            return None
        _revoke(grant, actor=Actor.system_actor("incident"), reason=reason)
    logger.warning("autonomy of %s for %s revoked: %s", agent, tool, reason)
    return grant


def autonomy_used(*, grant: AutonomyGrant) -> None:
    """Count one call approved by `grant` (an atomic increment)."""
    from django.db.models import F

    AutonomyGrant.objects.for_tenant(grant.tenant).filter(pk=grant.pk).update(auto_approved=F("auto_approved") + 1)


# --- Rules -------------------------------------------------------------------------------------

RULE_FIELDS = (
    "mode",
    "risk_tiers",
    "confidence_threshold",
    "novelty",
    "quorum",
    "timeout_seconds",
    "escalate_at_share",
    "escalation_emails",
    "escalation_webhook_url",
    "on_reject",
    "autonomy_after",
    "autonomy_irreversible",
)


def _rule_state(rule: ApprovalRule) -> dict[str, Any]:
    return {f: getattr(rule, f) for f in RULE_FIELDS}


def approval_rule_save(
    *,
    actor: Actor,
    tenant: Tenant,
    agent: Agent | None = None,
    tool: Tool | None = None,
    webhook_secret: str | None = None,
    **fields: Any,
) -> ApprovalRule:
    """Create or update the rule for (agent, tool) (both None: the tenant default), audited.
    FieldError names a bad field."""
    unknown = set(fields) - set(RULE_FIELDS)
    if unknown:
        raise FieldError(sorted(unknown)[0], "not a rule setting.")
    if agent is not None and agent.tenant_id != tenant.pk:
        raise FieldError("agent", "not found.")
    if tool is not None and tool.tenant_id != tenant.pk:
        raise FieldError("tool", "not found.")
    with transaction.atomic():
        rule = ApprovalRule.objects.for_tenant(tenant).select_for_update().filter(
            agent=agent, tool=tool
        ).first() or policy.builtin_default_rule(tenant)
        rule.agent, rule.tool = agent, tool
        before = None if rule._state.adding else _rule_state(rule)
        for name, value in fields.items():
            setattr(rule, name, value)
        if webhook_secret is not None:
            rule.escalation_webhook_secret_encrypted = crypto.encrypt(webhook_secret)
        rule.updated_at = timezone.now()
        if rule.escalation_webhook_url:
            try:
                check_webhook_url(rule.escalation_webhook_url, resolve=False)
            except UnsafeUrlError as exc:
                raise FieldError("escalation_webhook_url", str(exc)) from exc
        try:
            rule.full_clean(exclude=["tenant", "agent", "tool"], validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            raise FieldError(field, messages[0]) from exc
        try:
            with transaction.atomic():
                rule.save()
        except IntegrityError as exc:
            raise ConflictError("A rule for this agent and tool exists already.") from exc
        audit_record(
            tenant=tenant,
            actor=actor,
            action="approval_rule.create" if before is None else "approval_rule.update",
            target=rule,
            before=before,
            after=_rule_state(rule),
        )
    return rule


def approval_rule_delete(*, actor: Actor, rule: ApprovalRule) -> None:
    """Remove an override (the less specific rule applies again), audited."""
    with transaction.atomic():
        audit_record(
            tenant=rule.tenant, actor=actor, action="approval_rule.delete", target=rule, before=_rule_state(rule)
        )
        rule.delete()


def waited_seconds(approval: ApprovalRequest) -> float:
    """Seconds the request has waited so far (or waited, once decided)."""
    end = approval.decided_at or timezone.now()
    return (end - approval.created_at).total_seconds()
