"""The run engine's guardrail hook points: every stage of a run is checked against the agent's
effective policy (guardrails.services.guardrail_check), which records the verdict as a guardrail
span of the run's trace and, when it does something, as a GuardrailEvent.

Registered from GuardrailsConfig.ready(). Flagged content goes on unchanged; redaction replaces
what the model (input, tool result) or the user (output) sees and what the tool receives (tool
call); a block ends the run `blocked` with the reason; require_approval pauses a tool call for a
reviewer (the engine refuses it for input, output and tool results, where nothing could resume).
Content too large to check is blocked, not waved through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from agents.hooks import ALLOW, CallContext, RunHooks, Verdict
from guardrails.checks import CheckResult
from guardrails.models import GuardrailEvent
from guardrails.services import guardrail_check
from tenants.errors import FieldError

if TYPE_CHECKING:
    from agents.models import Tool


def as_verdict(checked: CheckResult) -> Verdict:
    """The engine's verdict for a check: flag allows (it is only recorded)."""
    if checked.action in ("allow", "flag"):
        return ALLOW
    if checked.action == "block":
        return Verdict(action="block", reason=checked.reason)
    return Verdict(action=checked.action, reason=checked.reason, redacted=checked.redacted)  # type: ignore[arg-type]


class GuardrailHooks(RunHooks):
    """Checks input, output, tool calls and tool results against the agent's policy."""

    instance: ClassVar[GuardrailHooks]

    def _check(self, call: CallContext, stage: str, **content: Any) -> Verdict:
        try:
            checked = guardrail_check(
                tenant=call.tenant,
                stage=stage,
                run=call.run,
                agent=call.agent if call.run is None else None,
                api_key=call.api_key,
                source=GuardrailEvent.Source.RUN if call.run is not None else GuardrailEvent.Source.GATEWAY,
                trace_id=call.trace_id,
                **content,
            )
        except FieldError as exc:
            return Verdict(action="block", reason=f"The {stage.replace('_', ' ')} could not be checked: {exc.detail}")
        return as_verdict(checked)

    def check_input(self, *, call: CallContext, text: str) -> Verdict:
        return self._check(call, "input", text=text)

    def check_output(self, *, call: CallContext, text: str) -> Verdict:
        return self._check(call, "output", text=text)

    def check_tool_call(self, *, call: CallContext, tool: Tool, arguments: dict[str, Any]) -> Verdict:
        return self._check(call, "tool_call", tool=tool.name, arguments=arguments)

    def check_tool_result(self, *, call: CallContext, tool: Tool | None, result: Any) -> Verdict:
        name = tool.name if tool is not None else None
        return self._check(call, "tool_result", tool=name, result=result if result is not None else "")


GuardrailHooks.instance = GuardrailHooks()
