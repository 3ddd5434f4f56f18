"""The run engine's approval hook points: whether a tool call needs a human, and the request the
paused run waits on, recorded as a pending `approval` span under the run's root span (in the
transaction that pauses the run, so the trace says what the run waits for while it waits; the
decision updates that span: approvals.services). Registered from ApprovalsConfig.ready()."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from agents import hooks
from agents.hooks import RunHooks
from approvals import policy, services

if TYPE_CHECKING:
    from agents.models import Run, Tool
    from approvals.models import ApprovalRequest

logger = logging.getLogger(__name__)


class ApprovalHooks(RunHooks):
    """Asks the tenant's rules (always / never / risk tier, confidence, novelty) and lets an
    agent's earned autonomy through; a call that needs a human becomes an ApprovalRequest."""

    instance: ClassVar[ApprovalHooks]

    def needs_approval(self, *, run: Run, tool: Tool, arguments: dict[str, Any]) -> bool:
        need = policy.evaluate(tenant=run.tenant, agent=run.agent, tool=tool, arguments=arguments)
        if need is None:
            return False
        grant = policy.autonomy_covers(tenant=run.tenant, agent=run.agent, tool=tool, need=need)
        if grant is not None:
            logger.info("run %s: %s approved by the agent's autonomy grant %s", run.pk, tool.name, grant.pk)
            if not hooks.is_rehearsal(run=run):
                services.autonomy_used(grant=grant)
            return False
        return True

    def tool_incident(self, *, run: Run, tool: Tool, stage: str, reason: str) -> None:
        what = "a call it proposed" if stage == "tool_call" else "the tool's result"
        services.autonomy_incident(
            tenant=run.tenant,
            agent=run.agent,
            tool=tool,
            reason=f"incident in run {run.pk}: a guardrail blocked {what} ({reason})",
        )

    def approval_requested(
        self, *, run: Run, tool: Tool, call_id: str, step_index: int, arguments: dict[str, Any], reason: str
    ) -> None:
        approval = services.approval_request_for_run(
            run=run, tool=tool, call_id=call_id, step_index=step_index, arguments=arguments, reason=reason
        )
        _pending_span(run, approval)

    def budget_approval_requested(
        self, *, run: Run, key: str, step_index: int, details: dict[str, Any], reason: str
    ) -> None:
        approval = services.approval_request_for_budget(
            run=run, key=key, step_index=step_index, details=details, reason=reason
        )
        _pending_span(run, approval)


def _pending_span(run: Run, approval: ApprovalRequest) -> None:
    """The request as a span of the run's trace while it waits: status unset, ending now (the
    decision moves its end and sets its status). A request decided already (a re-paused call
    keeping its request) is left as its span says."""
    if approval.status != approval.Status.PENDING or not run.trace_id:
        return
    span = hooks.Span(
        trace_id=run.trace_id,
        kind="approval",
        name=f"approval {approval.action}",
        parent_id=hooks.run_span_id(run),
        span_id=hooks.approval_span_id(approval.pk),
        attributes={
            "approval.id": str(approval.pk),
            "approval.decision": "pending",
            "approval.reason": approval.reason,
            "approval.reason_detail": approval.reason_detail,
            "approval.risk": approval.risk,
            "approval.expires_at": approval.expires_at.isoformat(),
            "call_id": approval.call_id,
            "step_index": approval.step_index,
        },
        started_at=approval.created_at.timestamp(),
        status="unset",
        input=approval.arguments,
    )
    hooks.record_span(call=hooks.CallContext.of_run(run), span=span)


ApprovalHooks.instance = ApprovalHooks()
