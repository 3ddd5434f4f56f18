"""Masking: every redactable finding (PII, secrets, custom rules) replaced by a label, through
Presidio's anonymizer, which also resolves overlapping spans."""

from __future__ import annotations

from guardrails.detectors.base import Finding
from guardrails.detectors.pii import anonymizer


def label(finding: Finding) -> str:
    """What replaces a finding: `[EMAIL_ADDRESS]`, `[SECRET:aws_access_key_id]`, `[CUSTOM:…]`."""
    if finding.detector == "secrets":
        return f"[SECRET:{finding.type}]"
    if finding.detector == "custom":
        return f"[CUSTOM:{finding.type}]"
    return f"[{finding.type}]"


def redact(text: str, findings: list[Finding]) -> str:
    """`text` with each redactable finding's span replaced by its label."""
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    spans = [f for f in findings if f.redactable and 0 <= f.start < f.end <= len(text)]
    if not spans:
        return text
    # The anonymizer picks an operator per entity type: make each finding's key unique to its label.
    results = [RecognizerResult(entity_type=label(f), start=f.start, end=f.end, score=f.score) for f in spans]
    operators = {label(f): OperatorConfig("replace", {"new_value": label(f)}) for f in spans}
    return str(anonymizer().anonymize(text=text, analyzer_results=results, operators=operators).text)
