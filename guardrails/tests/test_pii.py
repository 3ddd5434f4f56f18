"""The PII detector's lean pattern analysis (guardrails/detectors/pii.py `_lean`): patterns are
skipped on text lacking a character they need, and what they find is unchanged."""

from __future__ import annotations

import pytest

from guardrails.checks import DEFAULT_RULES, evaluate
from guardrails.detectors import pii
from guardrails.tests.probes import PHONE_NUMBERS, PII_NEAR_MISSES


def test_the_lean_analysis_still_runs_each_pattern_where_its_characters_appear() -> None:
    text = "hosts 2001:db8::8a2e:370:7334 and fe80::1, then mail ops@example.com"
    found = [(f.type, text[f.start : f.end]) for f in pii.detect(text)]
    assert ("IP_ADDRESS", "2001:db8::8a2e:370:7334") in found and ("IP_ADDRESS", "fe80::1") in found
    assert ("EMAIL_ADDRESS", "ops@example.com") in found
    assert pii.detect("no colons, no at-sign, no digits here") == []


def test_a_result_carries_its_recognizer_and_no_explanation() -> None:
    [result] = pii.analyzer().analyze(text="card 4111 1111 1111 1111", language="en", entities=["CREDIT_CARD"])
    assert (result.entity_type, result.score) == ("CREDIT_CARD", 1.0)
    assert result.recognition_metadata["recognizer_name"] == "CardRecognizer"
    assert result.analysis_explanation is None


@pytest.mark.parametrize("text", PII_NEAR_MISSES)
def test_timestamps_dates_ids_versions_and_decimals_are_not_personal_data(text: str) -> None:
    assert [(f.type, text[f.start : f.end]) for f in pii.detect(text)] == []


@pytest.mark.parametrize("text", PHONE_NUMBERS)
def test_phone_numbers_next_to_those_shapes_are_still_found(text: str) -> None:
    assert any(f.type == "PHONE_NUMBER" for f in pii.detect(text))


def test_the_output_redaction_leaves_an_iso_timestamp_whole() -> None:
    text = "Refund done. refunded at: 2026-12-04T13:19:45.123456+00:00, call +44 20 7946 0958 with questions."
    result = evaluate(DEFAULT_RULES, stage="output", content=text)
    assert (
        result.redacted_text
        == "Refund done. refunded at: 2026-12-04T13:19:45.123456+00:00, call [PHONE_NUMBER] with questions."
    )
