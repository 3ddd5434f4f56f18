"""Which rule applies to a call, and whether it needs a human: pure reads, no writes.

The most specific rule of the tenant wins (agent + tool, then tool, then agent, then the tenant's
default); a tenant without a default rule gets the built-in one: irreversible tools ask a human.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agents.models import Agent, Tool
from approvals.models import ApprovalRequest, ApprovalRule, AutonomyGrant, Reason, Risk
from tenants import cache as config_cache
from tenants.models import Tenant


def builtin_default_rule(tenant: Tenant) -> ApprovalRule:
    """The rule of a tenant that has not written its own default (unsaved): irreversible asks."""
    return ApprovalRule(tenant=tenant, mode=ApprovalRule.Mode.RISK, risk_tiers=[Risk.IRREVERSIBLE])


def rule_for(*, tenant: Tenant, agent: Agent | None, tool: Tool | None) -> ApprovalRule:
    """The rule that governs `agent` calling `tool`: from the tenant's rules in the configuration
    cache (tenants.cache; ApprovalRule is watched), else one query. Shared: never modify it."""
    agent_id = agent.pk if agent is not None else None
    tool_id = tool.pk if tool is not None else None
    rules = [
        rule
        for rule in config_cache.cached(
            "approval_rules", tenant.pk, lambda: list(ApprovalRule.objects.for_tenant(tenant))
        )
        if rule.agent_id in (None, agent_id) and rule.tool_id in (None, tool_id)
    ]
    if not rules:
        return builtin_default_rule(tenant)
    # Specificity: a tool match outranks an agent match; both outrank either.
    return max(rules, key=lambda r: (r.tool_id is not None) * 2 + (r.agent_id is not None))


def arguments_shape(arguments: Any) -> str:
    """A hash of the arguments' shape: keys and value types, recursively, without the values."""

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in sorted(value.items())}
        if isinstance(value, list):
            return [shape(value[0])] if value else []
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int | float):
            return "number"
        if value is None:
            return "null"
        return "string"

    return hashlib.sha256(json.dumps(shape(arguments), sort_keys=True).encode()).hexdigest()


def reported_confidence(arguments: Any) -> float | None:
    """The model's confidence in the call, when it reports one as a numeric `confidence` (0 to 1)
    among the call's arguments (a tool that wants it asks for it in its schema)."""
    if not isinstance(arguments, dict):
        return None
    value = arguments.get("confidence")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


@dataclass(frozen=True)
class Need:
    """A call needs a human: why, and the rule that says so."""

    reason: str
    detail: str
    rule: ApprovalRule


def evaluate(*, tenant: Tenant, agent: Agent | None, tool: Tool, arguments: dict[str, Any]) -> Need | None:
    """Whether `agent` calling `tool` with `arguments` needs a human under the tenant's rules
    (before autonomy is considered). A few indexed queries."""
    rule = rule_for(tenant=tenant, agent=agent, tool=tool)
    if rule.mode == ApprovalRule.Mode.NEVER:
        return None
    # A low confidence or a novel shape is named first: autonomy does not cover those.
    confidence = reported_confidence(arguments)
    if rule.confidence_threshold is not None and confidence is not None and confidence < rule.confidence_threshold:
        return Need(
            Reason.LOW_CONFIDENCE,
            f"The model reported a confidence of {confidence:.2f}, below {rule.confidence_threshold:.2f}.",
            rule,
        )
    if rule.novelty and agent is not None:
        seen = (
            ApprovalRequest.objects.for_tenant(tenant)
            .filter(
                agent=agent,
                tool=tool,
                arguments_shape=arguments_shape(arguments),
                status=ApprovalRequest.Status.APPROVED,
            )
            .exists()
        )
        if not seen:
            return Need(
                Reason.NOVEL, f"{agent.name} has never had {tool.name} approved with arguments shaped so.", rule
            )
    if rule.mode == ApprovalRule.Mode.ALWAYS:
        return Need(Reason.POLICY, f"The rule for {rule.target_label} asks a human for every call.", rule)
    if tool.risk in rule.risk_tiers:
        if tool.risk == Risk.IRREVERSIBLE:
            return Need(Reason.IRREVERSIBLE, f"{tool.name} is irreversible.", rule)
        return Need(Reason.POLICY, f"{tool.name} is a {tool.get_risk_display().lower()} tool.", rule)
    return None


def autonomy_covers(*, tenant: Tenant, agent: Agent | None, tool: Tool, need: Need) -> AutonomyGrant | None:
    """The active grant that lets this call through without a human, if any. Autonomy covers the
    rule's own policy (risk tier, always); a low confidence or a novel shape still asks, and an
    irreversible tool only where the rule explicitly allows it."""
    rule = need.rule
    if agent is None or rule.autonomy_after is None or need.reason not in (Reason.POLICY, Reason.IRREVERSIBLE):
        return None
    if tool.risk == Risk.IRREVERSIBLE and not rule.autonomy_irreversible:
        return None
    return AutonomyGrant.objects.for_tenant(tenant).filter(agent=agent, tool=tool, revoked_at__isnull=True).first()
