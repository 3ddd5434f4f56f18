"""Output guardrails on the gateway's answers, in memory (guardrails.checks.evaluate, the same
rules and detectors the check service runs; the verdict is recorded afterwards by
`calls.conclude`).

A stream is guarded by holding back a window: text is released to the client only once
WINDOW_CHARS more have arrived after it, and each release re-checks everything said so far, so a
secret or a card number split across chunks is found whole and masked before any of it leaves;
a finding that reaches into the window holds the release back to its start. A block ends the
stream with an error event. With no output rules nothing is held back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from guardrails.checks import CheckResult, evaluate
from guardrails.detectors.base import Finding
from guardrails.detectors.redaction import label

WINDOW_CHARS = 96  # longer than any secret or card number a detector masks
STEP_CHARS = 160  # new text between two checks of a stream


class BlockedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Checked:
    blocks: bool
    reason: str
    text: str  # the text to send: redacted where a redact rule found something
    findings: list[dict[str, Any]] = field(default_factory=list)


def _masked(checked: CheckResult) -> list[Finding]:
    if checked.action != "redact":
        return []
    return [f.finding for f in checked.findings if f.action == "redact" and f.finding.redactable]


def check(rules: list[dict[str, Any]], text: str) -> Checked:
    checked = evaluate(rules, stage="output", content=text)
    if checked.action in ("block", "require_approval"):
        from guardrails.services import masked_findings

        return Checked(True, checked.reason or "refused by policy", text, masked_findings(checked.findings)[:10])
    return Checked(False, checked.reason, _apply(text, _masked(checked), 0, len(text)))


def _apply(text: str, findings: list[Finding], start: int, end: int) -> str:
    """text[start:end] with every finding inside it replaced by its label."""
    out, at = [], start
    for finding in sorted((f for f in findings if start <= f.start and f.end <= end), key=lambda f: f.start):
        if finding.start < at:
            continue  # overlaps one already masked
        out.append(text[at : finding.start])
        out.append(label(finding))
        at = finding.end
    out.append(text[at:end])
    return "".join(out)


class StreamGuard:
    """Feed a stream's text deltas; get back what may be released now (see the module docstring)."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self.rules = rules
        self.text = ""
        self.released = 0  # characters of `text` already released
        self.checked_at = 0
        self.sent = ""  # what was released, masks included

    @property
    def changed(self) -> bool:
        return self.sent != self.text[: self.released]

    def feed(self, delta: str) -> str:
        self.text += delta
        if (
            len(self.text) - self.checked_at < STEP_CHARS + WINDOW_CHARS
            and len(self.text) - self.released < 4 * STEP_CHARS
        ):
            return ""
        return self._release(final=False)

    def flush(self) -> str:
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        if self.released >= len(self.text):
            return ""
        checked = evaluate(self.rules, stage="output", content=self.text)
        self.checked_at = len(self.text)
        if checked.action in ("block", "require_approval"):
            raise BlockedError(checked.reason or "refused by policy")
        findings = _masked(checked)
        end = len(self.text) if final else max(len(self.text) - WINDOW_CHARS, self.released)
        for finding in findings:
            if finding.start < end < finding.end:
                end = max(finding.start, self.released)
        if end <= self.released:
            return ""
        out = _apply(self.text, findings, self.released, end)
        self.released = end
        self.sent += out
        return out
