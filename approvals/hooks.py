"""The run engine's approval hook points: whether a tool call needs a human, and the request the
paused run waits on. Registered from ApprovalsConfig.ready()."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from agents import hooks
from agents.hooks import RunHooks
from approvals import policy, services

if TYPE_CHECKING:
    from agents.models import Run, Tool

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
        services.approval_request_for_run(
            run=run, tool=tool, call_id=call_id, step_index=step_index, arguments=arguments, reason=reason
        )

    def budget_approval_requested(
        self, *, run: Run, key: str, step_index: int, details: dict[str, Any], reason: str
    ) -> None:
        services.approval_request_for_budget(run=run, key=key, step_index=step_index, details=details, reason=reason)


ApprovalHooks.instance = ApprovalHooks()
