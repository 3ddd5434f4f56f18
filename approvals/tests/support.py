"""Shared support for the approvals tests: a run paused on a refund, and the hook recorder."""

from __future__ import annotations

from typing import Any

from agents import hooks, runtime
from agents.models import Run, Tool
from agents.tests.test_runtime import ScriptedClient, Setup, build, calls
from approvals.models import ApprovalRequest
from tenants.audit import Actor
from tenants.models import Membership, Role, User

REFUND = {"order_number": "T-1001", "reason": "Broken on arrival"}


def paused(setup: Setup | None = None, *, arguments: dict[str, Any] | None = None, call_id: str = "c1") -> Run:
    """A run of a fresh tenant's agent paused on an irreversible refund (the built-in default)."""
    setup = setup or build()
    if not setup.tenant.demoorders.filter(number="T-1001").exists():
        setup.order("T-1001")
    run = setup.start()
    client = ScriptedClient(calls(("refund_order", arguments or REFUND), ids=[call_id]))
    run = runtime.execute(run, client=client)
    assert run.status == Run.Status.AWAITING_APPROVAL, (run.status, run.error_message)
    return run


def request_of(run: Run) -> ApprovalRequest:
    return ApprovalRequest.objects.for_tenant(run.tenant).select_related("tenant", "run", "tool", "agent").get(run=run)


def reviewer(setup_or_tenant: Any, name: str = "rita", role: str = Role.REVIEWER) -> Actor:
    tenant = getattr(setup_or_tenant, "tenant", setup_or_tenant)
    user = User.objects.create_user(f"{name}-{tenant.slug}@example.test", "pw-123456789", name=name.title())
    Membership.objects.create(tenant=tenant, user=user, role=role)
    return Actor(user=user)


class SpanRecorder(hooks.RunHooks):
    """Records the spans every run reports (the traces app's place in the engine)."""

    def __init__(self) -> None:
        self.spans: list[hooks.Span] = []

    def span_end(self, *, call: hooks.CallContext, span: hooks.Span) -> None:
        self.spans.append(span)


class Guard(hooks.RunHooks):
    """A tool-call guardrail: blocks arguments naming a blocked order, redacts none."""

    def __init__(self, blocked: str = "T-6666") -> None:
        self.blocked = blocked
        self.seen: list[dict[str, Any]] = []

    def check_tool_call(self, *, call: hooks.CallContext, tool: Tool, arguments: dict[str, Any]) -> hooks.Verdict:
        self.seen.append(arguments)
        if arguments.get("order_number") == self.blocked:
            return hooks.Verdict(action="block", reason=f"order {self.blocked} is under investigation")
        return hooks.ALLOW
