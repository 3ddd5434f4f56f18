"""Tool-call scope: the proposed call names a tool granted to the agent, the tool's required scope
is held by the agent (its version's scopes) and by the API key, and the arguments validate
against the tool's JSON Schema.

API keys hold scopes from a fixed list (tenants.models.Scope), so a tool scope such as
"orders:refund" can never be granted to a key by name; as in the run engine
(agents.tools.permission_error), such a tool is within a key's grants only when the key holds it
literally or holds `admin`. A call with no API key (a console user's run) is checked against the
agent alone.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from guardrails.detectors.base import Finding, excerpt


@dataclass(frozen=True)
class ToolGrant:
    """What the check needs to know about a tool."""

    name: str
    required_scope: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def _finding(type_: str, reason: str, arguments: Any) -> Finding:
    shown = json.dumps(arguments, default=str)[:500]
    return Finding(
        detector="tool_scope", type=type_, score=1.0, reason=reason, start=0, end=0, excerpt=excerpt(shown, 0, 120)
    )


def key_holds(key_scopes: Collection[str], scope: str) -> bool:
    return "admin" in key_scopes or scope in key_scopes


def check(
    *,
    tool: ToolGrant | None,
    tool_name: str,
    arguments: Any,
    granted: Collection[str] | None = None,
    agent_scopes: Collection[str] | None = None,
    key_scopes: Collection[str] | None = None,
) -> list[Finding]:
    """Findings for a proposed call of `tool_name` (`tool` None: the tenant has no such tool).
    `granted` (tool names) and `agent_scopes` None: no agent to check against; `key_scopes`
    None: no API key."""
    if tool is None:
        return [_finding("unknown_tool", f"there is no tool named {tool_name!r}", arguments)]
    findings = []
    if granted is not None and tool.name not in granted:
        findings.append(_finding("tool_not_granted", f"the tool {tool.name!r} is not granted to this agent", arguments))
    scope = tool.required_scope
    if scope and agent_scopes is not None and scope not in agent_scopes:
        findings.append(
            _finding(
                "scope_not_held", f"the tool {tool.name!r} needs the scope {scope!r}, which the agent lacks", arguments
            )
        )
    if scope and key_scopes is not None and not key_holds(key_scopes, scope):
        findings.append(
            _finding(
                "scope_not_held",
                f"the tool {tool.name!r} needs the scope {scope!r}, which the API key lacks",
                arguments,
            )
        )
    if not isinstance(arguments, dict):
        findings.append(_finding("invalid_arguments", "the arguments must be a JSON object", arguments))
        return findings
    schema = tool.parameters or {}
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        findings.append(_finding("invalid_schema", f"the tool's argument schema is invalid ({exc.message})", arguments))
        return findings
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    for error in sorted(validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.path])[:5]:
        where = "/".join(str(p) for p in error.absolute_path)
        findings.append(
            _finding(
                "invalid_arguments",
                "the arguments do not match the tool's schema"
                + (f" at {where}" if where else "")
                + f": {error.message}",
                arguments,
            )
        )
    return findings
