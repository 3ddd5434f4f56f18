"""Length and format: character and token limits, and output that must be JSON matching a
JSON Schema (Draft 2020-12) when the agent's policy declares one."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from catalog.clients.base import estimate_tokens
from guardrails.detectors.base import Finding, excerpt

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def length(text: str, *, max_chars: int | None = None, max_tokens: int | None = None) -> list[Finding]:
    """A finding when `text` is longer than either limit (tokens estimated like the budgets do)."""
    findings = []
    if max_chars is not None and len(text) > max_chars:
        findings.append(
            Finding(
                detector="length",
                type="too_many_characters",
                score=1.0,
                reason=f"{len(text):,} characters, over the limit of {max_chars:,}",
                start=max_chars,
                end=len(text),
                excerpt=excerpt(text, max_chars, len(text)),
            )
        )
    if max_tokens is not None and (tokens := estimate_tokens(text)) > max_tokens:
        findings.append(
            Finding(
                detector="length",
                type="too_many_tokens",
                score=1.0,
                reason=f"about {tokens:,} tokens, over the limit of {max_tokens:,}",
                start=0,
                end=len(text),
            )
        )
    return findings


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a usable JSON Schema, or None."""
    if not isinstance(schema, dict):
        return "a JSON Schema is an object"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message}"
    return None


def _where(path: Any) -> str:
    return "/".join(map(str, path)) or "(root)"


def json_format(text: str, *, schema: dict[str, Any]) -> list[Finding]:
    """A finding when `text` (optionally in a ```json fence) is not JSON matching `schema`."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        value = json.loads(body)
    except ValueError as exc:
        return [
            Finding(
                detector="format",
                type="not_json",
                score=1.0,
                reason=f"the output is not JSON: {exc}",
                start=0,
                end=len(text),
                excerpt=excerpt(text, 0, len(text)),
            )
        ]
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    return [
        Finding(
            detector="format",
            type="schema_mismatch",
            score=1.0,
            reason=f"the output does not match the schema at {_where(e.absolute_path)}: {e.message}",
            start=0,
            end=len(text),
        )
        for e in errors[:5]
    ]
