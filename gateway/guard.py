"""Output guardrails on the gateway's answers, in memory (guardrails.checks.evaluate, the same
rules and detectors the check service runs; the verdict is recorded afterwards by
`calls.conclude`).

A stream is guarded by holding back only what could still become part of a finding: the word
being written (no whitespace after it yet) and, before it, the run of words that could belong to
a secret, a card, phone or account number or an address (`_suspect`: a digit, `@`, `:`, `=`, `/`,
`_`, `+`, `#`, or a long word), never more than WINDOW_CHARS. Plain prose is released word by
word as it arrives, so the time to first token stays the provider's; "4111 1111 1111" waits until
a plain word follows it. Each release checks the text around it (the last WINDOW_CHARS already
released and everything since: every detector that masks is a pattern shorter than that), and the
whole text every STEP_CHARS and at the end, for rules that judge the whole answer. A finding is
masked whole when none of it has left; one that began in text already released (a keyword before
a value) has the rest of it masked. A block ends the stream with an error event. With no output
rules nothing is held back. The tenant's reviewer feedback (guardrails.feedback) applies to every
check; an entry matches a whole text, so on a stream it decides the whole-text checks, not the
windows between them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from guardrails import feedback as reviewers
from guardrails.checks import CheckResult, evaluate
from guardrails.detectors.base import Finding
from guardrails.detectors.redaction import label

WINDOW_CHARS = 96  # longer than any secret or card number a detector masks
STEP_CHARS = 160  # new text between two checks of the whole text of a stream
LONG_WORD = 20  # a word this long may be a key or a token
SUSPECT = re.compile(r"[0-9@:=/_+#]")
SPACE = re.compile(r"\s")


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


def _evaluate(rules: list[dict[str, Any]], text: str, found: reviewers.FeedbackSet | None) -> CheckResult:
    """The output rules' verdict on `text`, with the tenant's reviewer feedback applied (a text
    reviewers marked a false positive passes, one they marked a missed attack is refused), as the
    recorded verdict (calls.conclude, through guardrail_check) applies it. In memory: the set was
    read at admission; its hits are counted when the verdict is recorded."""
    checked = evaluate(rules, stage="output", content=text)
    if found:
        checked = reviewers.apply(found, checked, stage="output", content=text).result
    return checked


def check(rules: list[dict[str, Any]], text: str, feedback: reviewers.FeedbackSet | None = None) -> Checked:
    checked = _evaluate(rules, text, feedback)
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


def _suspect(word: str) -> bool:
    """Whether `word` could be part of something a detector masks (see the module docstring)."""
    return len(word) >= LONG_WORD or SUSPECT.search(word) is not None


def _safe_end(text: str, released: int) -> int:
    """How far `text` may be released now: up to the word being written, less the run of suspect
    words before it, and never holding back more than WINDOW_CHARS."""
    end = len(text)
    # The word being written: everything after the last whitespace.
    while end > released and not text[end - 1].isspace():
        end -= 1
    # Complete words before it that could still be the start of a finding.
    while end > released:
        word_end = end
        while word_end > released and text[word_end - 1].isspace():
            word_end -= 1
        word_start = word_end
        while word_start > released and not text[word_start - 1].isspace():
            word_start -= 1
        if word_start == word_end or not _suspect(text[word_start:word_end]):
            break
        end = word_start
    cap = len(text) - WINDOW_CHARS
    if end < cap:
        # Held back more than the window: release up to the last word boundary before it.
        boundary = max(text.rfind(" ", released, cap + 1), text.rfind("\n", released, cap + 1))
        end = boundary + 1 if boundary >= released else cap
    return max(end, released)


class StreamGuard:
    """Feed a stream's text deltas; get back what may be released now (see the module docstring)."""

    def __init__(self, rules: list[dict[str, Any]], feedback: reviewers.FeedbackSet | None = None) -> None:
        self.rules = rules
        self.feedback = feedback
        self.text = ""
        self.released = 0  # characters of `text` already released
        self.checked_at = 0  # length of `text` at its last whole check
        self.sent = ""  # what was released, masks included

    @property
    def changed(self) -> bool:
        return self.sent != self.text[: self.released]

    def feed(self, delta: str) -> str:
        self.text += delta
        if _safe_end(self.text, self.released) <= self.released:
            return ""
        return self._release(final=False)

    def flush(self) -> str:
        return self._release(final=True)

    def _findings(self, *, whole: bool) -> list[Finding]:
        """The masking findings around what is about to be released (offsets into `text`), or
        BlockedError. The whole text when `whole`, else from WINDOW_CHARS before the release on."""
        start = 0 if whole else max(0, self.released - WINDOW_CHARS)
        checked = _evaluate(self.rules, self.text[start:] if start else self.text, self.feedback)
        if whole:
            self.checked_at = len(self.text)
        if checked.action in ("block", "require_approval"):
            raise BlockedError(checked.reason or "refused by policy")
        found = _masked(checked)
        return [replace(f, start=f.start + start, end=f.end + start) for f in found] if start else found

    def _release(self, *, final: bool) -> str:
        if self.released >= len(self.text) and not final:
            return ""
        whole = final or len(self.text) - self.checked_at >= STEP_CHARS
        findings = self._findings(whole=whole)
        if self.released >= len(self.text):
            return ""
        end = len(self.text) if final else _safe_end(self.text, self.released)
        for finding in findings:
            if finding.start < end < finding.end:
                end = max(finding.start, self.released)
        if end <= self.released:
            return ""
        # A finding that began in text already released: the rest of it is masked.
        clipped = [
            replace(f, start=self.released) if f.start < self.released < f.end else f
            for f in findings
            if f.end > self.released
        ]
        out = _apply(self.text, clipped, self.released, end)
        self.released = end
        self.sent += out
        return out
