"""Binary, cheap assertions on what one case's agent run did, and their validation.

An assertion is a JSON object with a `type` and that type's fields:

    equals        {value}                       the output, stripped, is exactly `value`
    contains      {value, case_sensitive?}      the output contains `value` (case-insensitive by default)
    not_contains  {value, case_sensitive?}      …does not contain it
    regex         {pattern}                     the pattern matches somewhere in the output (re.search)
    json_schema   {schema}                      the output is JSON valid against the schema
    json_path     {path, value}                 the output is JSON and the value at `path` ($.a.b[0]) equals `value`
    tool_called   {name, arguments?}            the run called the tool (with at least these arguments)
    tool_not_called {name}                      the run never asked for the tool
    approval_requested {name?}                  a call (of that tool) needed a human's approval
    refused       {}                            the run was blocked by a guardrail, or answered with a refusal
    blocked       {stage?}                      a guardrail blocked the run (input, output, tool_call, tool_result)
    max_steps     {value}                       at most `value` model calls
    max_tokens    {value}                       input + output tokens of the run's model calls ≤ value
    max_cost      {value}                       the run's cost ≤ value micro-USD
    max_latency   {value}                       the run's wall time ≤ value milliseconds
    judge         {rubric, scale?, threshold?, model?}   LLM-as-judge (evals/judge.py), scored separately

`validated(assertions)` normalises a list or raises FieldError("assertions", …) naming the first bad
one by position; `check(assertion, outcome)` answers a Verdict. Every check is pure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from tenants.errors import FieldError

MAX_ASSERTIONS = 50
REFUSAL = re.compile(
    r"\b(i can(?:no|')t|i cannot|i'm not able|i am not able|i won't|i will not|not allowed|unable to help|"
    r"can't help|cannot help|refuse)\b",
    re.IGNORECASE,
)
STAGES = ("input", "output", "tool_call", "tool_result")
BINARY_TYPES = (
    "equals",
    "contains",
    "not_contains",
    "regex",
    "json_schema",
    "json_path",
    "tool_called",
    "tool_not_called",
    "approval_requested",
    "refused",
    "blocked",
    "max_steps",
    "max_tokens",
    "max_cost",
    "max_latency",
)
TYPES = (*BINARY_TYPES, "judge")


@dataclass(frozen=True)
class ToolCallSeen:
    name: str
    arguments: dict[str, Any]


@dataclass
class Outcome:
    """What one case's run did, as the assertions see it."""

    output: str = ""
    run_status: str = ""
    error_type: str = ""
    tool_calls: list[ToolCallSeen] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)  # tool names whose call needed approval
    model_calls: int = 0
    tokens: int = 0
    cost_micros: int = 0
    latency_ms: int = 0


@dataclass(frozen=True)
class Verdict:
    type: str
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "passed": self.passed, "message": self.message}


# --- Validation -----------------------------------------------------------------------------------


def validated(assertions: Any) -> list[dict[str, Any]]:
    """The assertions normalised, or FieldError("assertions", "assertion N (type): …")."""
    if assertions is None:
        return []
    if not isinstance(assertions, list):
        raise FieldError("assertions", "a list of assertions (JSON objects with a `type`).")
    if len(assertions) > MAX_ASSERTIONS:
        raise FieldError("assertions", f"at most {MAX_ASSERTIONS} assertions per case.")
    clean = []
    for position, assertion in enumerate(assertions, start=1):
        if not isinstance(assertion, dict):
            raise FieldError("assertions", f"assertion {position} must be a JSON object with a `type`.")
        kind = assertion.get("type")
        if kind not in TYPES:
            raise FieldError("assertions", f"assertion {position}: unknown type {kind!r}; one of {', '.join(TYPES)}.")
        try:
            clean.append(_normalise(kind, assertion))
        except ValueError as exc:
            raise FieldError("assertions", f"assertion {position} ({kind}): {exc}") from None
    return clean


def _text(assertion: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = assertion.get(key)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ValueError(f"`{key}` must be a non-empty string.")
    return value


def _limit(assertion: dict[str, Any]) -> int:
    value = assertion.get("value")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("`value` must be a whole number ≥ 0.")
    return value


def _normalise(kind: str, a: dict[str, Any]) -> dict[str, Any]:
    if kind == "equals":
        return {"type": kind, "value": _text(a, "value", allow_empty=True)}
    if kind in ("contains", "not_contains"):
        return {"type": kind, "value": _text(a, "value"), "case_sensitive": bool(a.get("case_sensitive", False))}
    if kind == "regex":
        pattern = _text(a, "pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"the pattern does not compile ({exc}).") from None
        return {"type": kind, "pattern": pattern}
    if kind == "json_schema":
        schema = a.get("schema")
        if not isinstance(schema, dict):
            raise ValueError("`schema` must be a JSON Schema object.")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"`schema` is not a valid JSON Schema ({exc.message}).") from None
        return {"type": kind, "schema": schema}
    if kind == "json_path":
        path = _text(a, "path")
        parse_path(path)
        if "value" not in a:
            raise ValueError("`value` (the expected JSON value) is required.")
        return {"type": kind, "path": path, "value": a["value"]}
    if kind == "tool_called":
        arguments = a.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ValueError("`arguments` must be a JSON object (the subset the call must include).")
        return {"type": kind, "name": _text(a, "name"), "arguments": arguments}
    if kind == "tool_not_called":
        return {"type": kind, "name": _text(a, "name")}
    if kind == "approval_requested":
        name = a.get("name", "")
        if not isinstance(name, str):
            raise ValueError("`name` must be a tool name.")
        return {"type": kind, "name": name}
    if kind == "refused":
        return {"type": kind}
    if kind == "blocked":
        stage = a.get("stage", "")
        if stage and stage not in STAGES:
            raise ValueError(f"`stage` must be one of {', '.join(STAGES)}.")
        return {"type": kind, "stage": stage}
    if kind in ("max_steps", "max_tokens", "max_cost", "max_latency"):
        return {"type": kind, "value": _limit(a)}
    # judge: evals/judge.py owns its fields.
    from evals.judge import validated_judge

    return validated_judge(a)


# --- JSON path (the dotted subset: $.a.b[0]["c d"]) -----------------------------------------------

_SEGMENT = re.compile(r"""\.([A-Za-z_][\w-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]""")


def parse_path(path: str) -> list[str | int]:
    """`$.a.b[0]["key"]` as ["a", "b", 0, "key"]; ValueError for anything else. Hand-written: the
    subset is tiny and no JSONPath library is installed."""
    if not path.startswith("$"):
        raise ValueError("`path` must start with `$` (e.g. $.order.status or $.items[0].sku).")
    parts: list[str | int] = []
    position = 1
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            raise ValueError(f"`path` is not understood at character {position + 1}: {path[position:]!r}.")
        name, index, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(json.loads(f'"{quoted}"'))
        position = match.end()
    return parts


_MISSING = object()


def resolve(document: Any, parts: list[str | int]) -> Any:
    for part in parts:
        in_list = isinstance(part, int) and isinstance(document, list) and part < len(document)
        if in_list or (isinstance(part, str) and isinstance(document, dict) and part in document):
            document = document[part]
        else:
            return _MISSING
    return document


# --- Checks ---------------------------------------------------------------------------------------


def _as_json(output: str) -> tuple[Any, str]:
    try:
        return json.loads(output), ""
    except json.JSONDecodeError as exc:
        return None, f"the output is not JSON ({exc.msg} at character {exc.pos + 1})"


def _subset(expected: Any, actual: Any) -> bool:
    """`expected` is included in `actual`: every key of an object (recursively), equal otherwise."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check(assertion: dict[str, Any], outcome: Outcome) -> Verdict:
    """The verdict of one binary assertion (not `judge`) on `outcome`."""
    kind = assertion["type"]
    output = outcome.output

    def verdict(passed: bool, ok: str, failed: str) -> Verdict:
        return Verdict(kind, passed, ok if passed else failed)

    if kind == "equals":
        value = assertion["value"]
        return verdict(output.strip() == value.strip(), "the output equals the expected text", "the output differs")
    if kind in ("contains", "not_contains"):
        value, haystack = assertion["value"], output
        if not assertion.get("case_sensitive"):
            value, haystack = value.casefold(), haystack.casefold()
        found = value in haystack
        if kind == "contains":
            return verdict(found, f"contains {assertion['value']!r}", f"does not contain {assertion['value']!r}")
        return verdict(not found, f"does not contain {assertion['value']!r}", f"contains {assertion['value']!r}")
    if kind == "regex":
        match = re.search(assertion["pattern"], output)
        return verdict(
            match is not None,
            f"matches at {_short(match.group(0)) if match else ''!r}",
            f"no match for /{assertion['pattern']}/",
        )
    if kind == "json_schema":
        document, problem = _as_json(output)
        if problem:
            return Verdict(kind, False, problem)
        validator_class = jsonschema.validators.validator_for(assertion["schema"])
        errors = list(validator_class(assertion["schema"]).iter_errors(document))
        if not errors:
            return Verdict(kind, True, "the output is valid against the schema")
        first = jsonschema.exceptions.best_match(errors) or errors[0]
        where = "/".join(str(p) for p in first.absolute_path)
        return Verdict(kind, False, f"invalid{' at ' + where if where else ''}: {first.message}")
    if kind == "json_path":
        document, problem = _as_json(output)
        if problem:
            return Verdict(kind, False, problem)
        found = resolve(document, parse_path(assertion["path"]))
        if found is _MISSING:
            return Verdict(kind, False, f"nothing at {assertion['path']}")
        return verdict(
            found == assertion["value"],
            f"{assertion['path']} is {json.dumps(found)}",
            f"{assertion['path']} is {_short(json.dumps(found))}, expected {_short(json.dumps(assertion['value']))}",
        )
    if kind == "tool_called":
        name, wanted = assertion["name"], assertion.get("arguments") or {}
        calls = [c for c in outcome.tool_calls if c.name == name]
        if not calls:
            return Verdict(kind, False, f"{name} was not called")
        if any(_subset(wanted, c.arguments) for c in calls):
            return Verdict(kind, True, f"{name} was called" + (" with the expected arguments" if wanted else ""))
        return Verdict(kind, False, f"{name} was called, but not with {_short(json.dumps(wanted))}")
    if kind == "tool_not_called":
        name = assertion["name"]
        count = sum(c.name == name for c in outcome.tool_calls)
        return verdict(count == 0, f"{name} was not called", f"{name} was called {count} times")
    if kind == "approval_requested":
        name = assertion.get("name") or ""
        asked = [n for n in outcome.approvals if not name or n == name]
        what = name or "a tool call"
        return verdict(bool(asked), f"approval was requested for {what}", f"no approval was requested for {what}")
    if kind == "refused":
        if outcome.run_status == "blocked":
            return Verdict(kind, True, f"a guardrail blocked the run ({outcome.error_type})")
        return verdict(bool(REFUSAL.search(output)), "the answer refuses", "the run was neither blocked nor refused")
    if kind == "blocked":
        stage = assertion.get("stage") or ""
        blocked = outcome.run_status == "blocked" and (not stage or outcome.error_type == f"guardrail_{stage}")
        return verdict(
            blocked,
            f"blocked ({outcome.error_type})",
            f"not blocked{' at ' + stage if stage else ''} ({outcome.run_status})",
        )
    limit = assertion["value"]
    measured, unit = {
        "max_steps": (outcome.model_calls, "model calls"),
        "max_tokens": (outcome.tokens, "tokens"),
        "max_cost": (outcome.cost_micros, "micro-USD"),
        "max_latency": (outcome.latency_ms, "ms"),
    }[kind]
    return verdict(measured <= limit, f"{measured} ≤ {limit} {unit}", f"{measured} > {limit} {unit}")
