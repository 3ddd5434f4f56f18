"""Running a policy's rules on one stage's content: pure (no database), so the check service, the
benchmark and the console's try-it box share it.

A rule is {"stage", "detector", "parameters", "action"}. Every rule of the stage runs, in order;
the verdict is the strictest action among the rules that found something
(block > require_approval > redact > flag > allow), and `allowed` is False for block and
require_approval. A redaction masks the findings of the `redact` rules (PII, secrets and custom
rules are the redactable detectors); for a tool call or a tool result every string inside the
JSON value is checked and masked on its own, so the structure stays intact.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from guardrails import detectors
from guardrails.detectors import Finding, injection, tool_scope

ACTION_RANK = {"allow": 0, "flag": 1, "redact": 2, "require_approval": 3, "block": 4}
REDACTABLE_DETECTORS = frozenset({"pii", "secrets", "custom"})
MAX_STRINGS = 2_000  # strings inside one JSON value that are redacted one by one


@dataclass(frozen=True)
class RuleFinding:
    """A finding and the rule (its position and action) that produced it."""

    finding: Finding
    rule: int
    action: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.finding.as_dict(), "rule": self.rule, "action": self.action}


@dataclass(frozen=True)
class ToolContext:
    """What the tool_scope detector checks a call against (see detectors.tool_scope.check)."""

    tool: tool_scope.ToolGrant | None
    tool_name: str
    granted: frozenset[str] | None = None
    agent_scopes: frozenset[str] | None = None
    key_scopes: frozenset[str] | None = None


@dataclass
class CheckResult:
    """A stage's verdict. `redacted` is the masked content (a str, or the JSON value of a tool
    call or result) when the action is redact; `text` is what the detectors read."""

    allowed: bool
    action: str
    findings: list[RuleFinding] = field(default_factory=list)
    redacted: Any = None
    text: str = ""
    latency_us: int = 0

    @property
    def reason(self) -> str:
        """The findings behind the verdict, strictest first, as one sentence."""
        decisive = [f for f in self.findings if f.action == self.action] or self.findings
        reasons = list(dict.fromkeys(f.finding.reason for f in decisive))
        return "; ".join(reasons[:5]) + (f" (and {len(reasons) - 5} more)" if len(reasons) > 5 else "")

    @property
    def detectors(self) -> list[str]:
        return list(dict.fromkeys(f.finding.detector for f in self.findings))

    @property
    def redacted_text(self) -> str | None:
        if self.action != "redact" and not (self.action == "require_approval" and self.redacted is not None):
            return None
        if self.redacted is None:
            return None
        return self.redacted if isinstance(self.redacted, str) else as_text(self.redacted)


def as_text(value: Any) -> str:
    """What text detectors read for a JSON value: the string itself, or compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))


def rules_for(rules: list[dict[str, Any]], stage: str) -> list[tuple[int, dict[str, Any]]]:
    return [(index, rule) for index, rule in enumerate(rules) if rule.get("stage") == stage]


def _redact_value(value: Any, rules: list[tuple[int, dict[str, Any]]], stage: str, budget: list[int]) -> Any:
    if isinstance(value, str):
        budget[0] -= 1
        if budget[0] < 0:
            return value
        found = [
            f for _, rule in rules for f in detectors.run(rule["detector"], value, rule["parameters"], stage=stage)
        ]
        return detectors.redact(value, found)
    if isinstance(value, dict):
        return {key: _redact_value(item, rules, stage, budget) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_value(item, rules, stage, budget) for item in value]
    return value


def evaluate(
    rules: list[dict[str, Any]],
    *,
    stage: str,
    content: Any,
    tool: ToolContext | None = None,
) -> CheckResult:
    """Run the `stage` rules of `rules` on `content` (a str for input and output; the arguments
    for a tool call; any JSON value for a tool result)."""
    started = time.perf_counter()
    text = as_text(content) if content is not None else ""
    found: list[RuleFinding] = []
    for index, rule in rules_for(rules, stage):
        detector, params, action = rule["detector"], rule.get("parameters") or {}, rule["action"]
        if detector == "tool_scope":
            if tool is None:
                continue
            hits = tool_scope.check(
                tool=tool.tool,
                tool_name=tool.tool_name,
                arguments=content,
                granted=tool.granted,
                agent_scopes=tool.agent_scopes,
                key_scopes=tool.key_scopes,
            )
        else:
            hits = detectors.run(detector, text, params, stage=stage)
        found.extend(RuleFinding(hit, index, action) for hit in hits)
    action = max((f.action for f in found), key=ACTION_RANK.__getitem__, default="allow")
    redacted: Any = None
    redacting = [(i, r) for i, r in rules_for(rules, stage) if r["action"] == "redact"]
    if action in ("redact", "require_approval") and any(f.action == "redact" for f in found):
        if isinstance(content, str) or content is None:
            mask = [f.finding for f in found if f.action == "redact"]
            redacted = detectors.redact(text, mask)
        else:
            redacted = _redact_value(content, redacting, stage, [MAX_STRINGS])
    return CheckResult(
        allowed=ACTION_RANK[action] < ACTION_RANK["require_approval"],
        action=action,
        findings=found,
        redacted=redacted,
        text=text,
        latency_us=round((time.perf_counter() - started) * 1_000_000),
    )


MAX_SIGNALS = 40


def _signal(
    detector: str, type_: str, score: float, rule: int, action: str, *, count: int = 1, detail: str = ""
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "detector": detector,
        "type": type_[:64],
        "score": round(float(score), 3),
        "rule": rule,
        "action": action,
    }
    if count != 1:
        row["count"] = count
    if detail:
        row["detail"] = detail[:120]
    return row


def signals(rules: list[dict[str, Any]], result: CheckResult, *, stage: str) -> list[dict[str, Any]]:
    """What fired in `result` (checked against `rules` at `stage`), as at most MAX_SIGNALS small
    rows {detector, type, score, rule, action, count?, detail?} for the events list: for an
    injection rule each matched pattern family with its own weight and its fixed description
    (never the matched words), the hidden-text bonuses, the
    learned model's calibrated score (its probability in `detail`) when the rule fuses it, and the
    fused score against the threshold; for the other detectors one row per finding type with its
    highest score and how many there were. Names and numbers only: never the matched text nor a
    reason quoting it, so a secret or an email never reaches an event through here. Findings of rule -1 are the tenant's
    feedback set's (guardrails.feedback). Right after evaluate() the injection scan is not repeated."""
    out: list[dict[str, Any]] = []
    by_rule: dict[int, list[RuleFinding]] = {}
    for item in result.findings:
        by_rule.setdefault(item.rule, []).append(item)
    for index, hits in by_rule.items():
        action = hits[0].action
        rule = rules[index] if 0 <= index < len(rules) else None
        if rule is not None and rule["detector"] == "injection":
            params = rule.get("parameters") or {}
            mode: injection.Mode = params.get("mode") or ("indirect" if stage == "tool_result" else "direct")
            parts = injection.explain(
                result.text, mode=mode, threshold=params.get("threshold"), learned_model=bool(params.get("learned"))
            )
            for name, weight, reason, via in parts.signals:
                detail = f"{reason} (hidden in {via})" if via else reason
                out.append(_signal("injection", name, weight, index, action, detail=detail))
            for name, weight in parts.bonuses:
                out.append(_signal("injection", name, weight, index, action))
            if parts.learned is not None and parts.probability is not None:
                detail = f"model probability {parts.probability:.2f}"
                out.append(_signal("injection", "learned", parts.learned, index, action, detail=detail))
            detail = f"rules {parts.rules:.2f}, threshold {parts.threshold:.2f} ({mode})"
            out.append(_signal("injection", "score", parts.total, index, action, detail=detail))
            continue
        grouped: dict[tuple[str, str], list[RuleFinding]] = {}
        for item in hits:
            grouped.setdefault((item.finding.detector, item.finding.type), []).append(item)
        for (detector, type_), items in grouped.items():
            best = max(item.finding.score for item in items)
            out.append(_signal(detector, type_, best, index, action, count=len(items)))
    return out[:MAX_SIGNALS]


def rule_problems(rule: Any) -> dict[str, str]:
    """What is wrong with one rule, by field (empty when it is usable)."""
    if not isinstance(rule, dict):
        return {"rule": "each rule is an object with stage, detector, parameters and action"}
    errors: dict[str, str] = {}
    if unknown := sorted(set(rule) - {"stage", "detector", "parameters", "action"}):
        errors["rule"] = f"unknown field {unknown[0]!r}"
    stage, detector, action = rule.get("stage"), rule.get("detector"), rule.get("action")
    if stage not in detectors.STAGES:
        errors["stage"] = f"one of {', '.join(detectors.STAGES)}"
    if action not in ACTION_RANK or action == "allow":
        errors["action"] = "one of block, redact, flag, require_approval"
    elif action == "redact" and detector not in REDACTABLE_DETECTORS:
        errors["action"] = f"only {', '.join(sorted(REDACTABLE_DETECTORS))} findings can be redacted"
    if not isinstance(detector, str) or detector not in detectors.DETECTORS:
        errors["detector"] = f"one of {', '.join(detectors.DETECTORS)}"
    elif "stage" not in errors:
        errors.update(detectors.problems(detector, rule.get("parameters", {}) or {}, stage=str(stage)))
    return errors


# Sensible defaults for a new tenant: stop injections and out-of-scope tool calls, keep secrets out
# of what the model and the user see, and flag personal data without getting in the way of
# agents whose work involves it.
DEFAULT_RULES: list[dict[str, Any]] = [
    {"stage": "input", "detector": "injection", "parameters": {"mode": "direct"}, "action": "block"},
    {"stage": "input", "detector": "secrets", "parameters": {}, "action": "redact"},
    {"stage": "input", "detector": "pii", "parameters": {}, "action": "flag"},
    {"stage": "input", "detector": "length", "parameters": {"max_chars": 50_000}, "action": "block"},
    {"stage": "tool_call", "detector": "tool_scope", "parameters": {}, "action": "block"},
    {"stage": "tool_call", "detector": "secrets", "parameters": {}, "action": "block"},
    # Strong evidence of an injected instruction in a tool's result blocks; weaker evidence (any
    # imperative or question in the content) is flagged for review.
    {"stage": "tool_result", "detector": "injection", "parameters": {"mode": "indirect", "threshold": 0.85},
     "action": "block"},
    {"stage": "tool_result", "detector": "injection", "parameters": {"mode": "indirect"}, "action": "flag"},
    {"stage": "tool_result", "detector": "secrets", "parameters": {}, "action": "redact"},
    {"stage": "output", "detector": "secrets", "parameters": {}, "action": "redact"},
    {"stage": "output", "detector": "pii", "parameters": {}, "action": "redact"},
]  # fmt: skip
