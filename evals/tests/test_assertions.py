"""Every binary assertion type passes and fails where it should, and bad assertions are refused
with a message naming them."""

from __future__ import annotations

from typing import Any

import pytest

from evals.assertions import Outcome, ToolCallSeen, check, validated
from tenants.errors import FieldError


def verdict(assertion: dict[str, Any], **outcome: Any) -> tuple[bool, str]:
    [clean] = validated([assertion])
    result = check(clean, Outcome(**outcome))
    return result.passed, result.message


REFUND = ToolCallSeen("refund_order", {"order_number": "A-1002", "reason": "broken"})


@pytest.mark.parametrize(
    ("assertion", "outcome", "passes"),
    [
        ({"type": "equals", "value": "Done."}, {"output": "  Done.\n"}, True),
        ({"type": "equals", "value": "Done."}, {"output": "Done!"}, False),
        ({"type": "contains", "value": "refunded"}, {"output": "I REFUNDED it"}, True),
        ({"type": "contains", "value": "refunded", "case_sensitive": True}, {"output": "I REFUNDED it"}, False),
        ({"type": "not_contains", "value": "sorry"}, {"output": "All good"}, True),
        ({"type": "not_contains", "value": "sorry"}, {"output": "Sorry, no"}, False),
        ({"type": "regex", "pattern": r"A-\d{4}"}, {"output": "order A-1001 is paid"}, True),
        ({"type": "regex", "pattern": r"^A-\d{4}$"}, {"output": "order A-1001 is paid"}, False),
        (
            {"type": "json_schema", "schema": {"type": "object", "required": ["status"]}},
            {"output": '{"status": "paid"}'},
            True,
        ),
        (
            {"type": "json_schema", "schema": {"type": "object", "required": ["status"]}},
            {"output": '{"state": "paid"}'},
            False,
        ),
        ({"type": "json_schema", "schema": {"type": "object"}}, {"output": "not json"}, False),
        (
            {"type": "json_path", "path": "$.items[1].sku", "value": "B"},
            {"output": '{"items":[{"sku":"A"},{"sku":"B"}]}'},
            True,
        ),
        ({"type": "json_path", "path": "$.items[2].sku", "value": "B"}, {"output": '{"items":[{"sku":"A"}]}'}, False),
        ({"type": "json_path", "path": '$["a b"]', "value": 1}, {"output": '{"a b": 2}'}, False),
        ({"type": "tool_called", "name": "refund_order"}, {"tool_calls": [REFUND]}, True),
        (
            {"type": "tool_called", "name": "refund_order", "arguments": {"order_number": "A-1002"}},
            {"tool_calls": [REFUND]},
            True,
        ),
        (
            {"type": "tool_called", "name": "refund_order", "arguments": {"order_number": "A-1001"}},
            {"tool_calls": [REFUND]},
            False,
        ),
        ({"type": "tool_called", "name": "send_email"}, {"tool_calls": [REFUND]}, False),
        ({"type": "tool_not_called", "name": "send_email"}, {"tool_calls": [REFUND]}, True),
        ({"type": "tool_not_called", "name": "refund_order"}, {"tool_calls": [REFUND]}, False),
        ({"type": "approval_requested", "name": "refund_order"}, {"approvals": ["refund_order"]}, True),
        ({"type": "approval_requested"}, {"approvals": []}, False),
        ({"type": "refused"}, {"run_status": "blocked", "error_type": "guardrail_input"}, True),
        ({"type": "refused"}, {"run_status": "succeeded", "output": "I can't help with that."}, True),
        ({"type": "refused"}, {"run_status": "succeeded", "output": "Refunded!"}, False),
        ({"type": "blocked", "stage": "input"}, {"run_status": "blocked", "error_type": "guardrail_input"}, True),
        ({"type": "blocked", "stage": "output"}, {"run_status": "blocked", "error_type": "guardrail_input"}, False),
        ({"type": "blocked"}, {"run_status": "succeeded"}, False),
        ({"type": "max_steps", "value": 2}, {"model_calls": 2}, True),
        ({"type": "max_steps", "value": 2}, {"model_calls": 3}, False),
        ({"type": "max_tokens", "value": 100}, {"tokens": 100}, True),
        ({"type": "max_tokens", "value": 100}, {"tokens": 101}, False),
        ({"type": "max_cost", "value": 500}, {"cost_micros": 499}, True),
        ({"type": "max_cost", "value": 500}, {"cost_micros": 501}, False),
        ({"type": "max_latency", "value": 1000}, {"latency_ms": 999}, True),
        ({"type": "max_latency", "value": 1000}, {"latency_ms": 1001}, False),
    ],
)
def test_each_assertion_type_passes_and_fails(assertion: dict[str, Any], outcome: dict[str, Any], passes: bool) -> None:
    passed, message = verdict(assertion, **outcome)
    assert passed is passes, message
    assert message


def test_a_failed_verdict_says_what_was_found() -> None:
    assert verdict({"type": "max_tokens", "value": 100}, tokens=150) == (False, "150 > 100 tokens")
    assert verdict({"type": "tool_called", "name": "send_email"}, tool_calls=[REFUND]) == (
        False,
        "send_email was not called",
    )
    passed, message = verdict({"type": "json_path", "path": "$.status", "value": "paid"}, output='{"status": "open"}')
    assert not passed and message == '$.status is "open", expected "paid"'


@pytest.mark.parametrize(
    ("assertions", "message"),
    [
        ("contains", "a list of assertions"),
        ([{"value": "x"}], "assertion 1: unknown type None"),
        ([{"type": "contains", "value": "a"}, {"type": "sounds_good"}], "assertion 2: unknown type 'sounds_good'"),
        ([{"type": "contains"}], "assertion 1 (contains): `value` must be a non-empty string."),
        ([{"type": "regex", "pattern": "(unclosed"}], "assertion 1 (regex): the pattern does not compile"),
        ([{"type": "json_schema", "schema": {"type": "nonsense"}}], "not a valid JSON Schema"),
        ([{"type": "json_path", "path": "status", "value": 1}], "`path` must start with `$`"),
        ([{"type": "json_path", "path": "$.a..b", "value": 1}], "not understood at character 4"),
        ([{"type": "json_path", "path": "$.a"}], "`value` (the expected JSON value) is required"),
        ([{"type": "tool_called", "name": "x", "arguments": [1]}], "`arguments` must be a JSON object"),
        ([{"type": "blocked", "stage": "somewhere"}], "`stage` must be one of"),
        ([{"type": "max_cost", "value": -1}], "`value` must be a whole number"),
        ([{"type": "max_steps", "value": True}], "`value` must be a whole number"),
        ([{"type": "judge"}], "`rubric` must say what a good answer is"),
        ([{"type": "judge", "rubric": "ok", "scale": [5, 1]}], "`scale` must be [low, high]"),
        ([{"type": "judge", "rubric": "ok", "scale": [1, 5], "threshold": 6}], "`threshold` must be a number within"),
    ],
)
def test_a_bad_assertion_is_refused_by_position_and_type(assertions: Any, message: str) -> None:
    with pytest.raises(FieldError) as exc:
        validated(assertions)
    assert exc.value.field == "assertions"
    assert message in exc.value.detail


def test_assertions_are_normalised_with_their_defaults() -> None:
    clean = validated(
        [
            {"type": "contains", "value": "x"},
            {"type": "judge", "rubric": "  Polite.  ", "scale": [1, 5]},
            {"type": "tool_called", "name": "lookup_order"},
        ]
    )
    assert clean == [
        {"type": "contains", "value": "x", "case_sensitive": False},
        {"type": "judge", "rubric": "Polite.", "scale": [1.0, 5.0], "threshold": 3.0, "model": "judge"},
        {"type": "tool_called", "name": "lookup_order", "arguments": {}},
    ]
