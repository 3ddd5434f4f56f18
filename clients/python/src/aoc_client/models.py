"""Typed views of the console's JSON answers. Each keeps the whole answer in `raw` for fields this
client does not name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from aoc_client.errors import GuardrailBlockedError

type Stage = Literal["input", "output", "tool_call", "tool_result"]
type Risk = Literal["read", "write", "irreversible"]
type Reason = Literal["irreversible", "guardrail", "budget", "low_confidence", "novel", "policy"]
type Action = Literal["allow", "flag", "redact", "require_approval", "block"]


@dataclass(frozen=True)
class Approval:
    """An approval request. Once approved, `arguments` is what was approved: the reviewer's edit
    if they edited it (`edited`), else what was asked."""

    id: str
    status: str
    action: str
    requested_arguments: dict[str, Any]
    arguments: dict[str, Any]
    edited: bool
    decided_by: str
    note: str
    expires_at: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Approval:
        asked = body.get("arguments") or {}
        approved = body.get("approved_arguments")
        return cls(
            id=str(body["id"]),
            status=str(body["status"]),
            action=str(body.get("action", "")),
            requested_arguments=dict(asked),
            arguments=dict(approved) if isinstance(approved, dict) else dict(asked),
            edited=bool(body.get("edited")),
            decided_by=str(body.get("decided_by") or ""),
            note=str(body.get("note") or ""),
            expires_at=str(body.get("expires_at") or ""),
            raw=body,
        )


@dataclass(frozen=True)
class Usage:
    """What a model call used, as its provider reported it."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    estimated: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "estimated": self.estimated,
        }


@dataclass(frozen=True)
class ReservationState:
    """A reservation as the console answered it: `amount` is the worst case in micro-USD,
    `actual_micros` what the settlement counted (None until settled)."""

    id: str
    status: str
    model: str
    amount: int
    tokens: int
    input_tokens: int
    max_output_tokens: int
    actual_micros: int | None
    expires_at: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ReservationState:
        actual = body.get("actual_micros")
        return cls(
            id=str(body["id"]),
            status=str(body["status"]),
            model=str(body.get("model", "")),
            amount=int(body.get("amount") or 0),
            tokens=int(body.get("tokens") or 0),
            input_tokens=int(body.get("input_tokens") or 0),
            max_output_tokens=int(body.get("max_output_tokens") or 0),
            actual_micros=int(actual) if actual is not None else None,
            expires_at=str(body.get("expires_at") or ""),
            raw=body,
        )


@dataclass(frozen=True)
class Finding:
    """One detector's finding; `excerpt` is from the text this client sent."""

    detector: str
    type: str
    score: float
    reason: str
    start: int
    end: int
    excerpt: str
    rule: int
    action: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Finding:
        return cls(
            detector=str(body.get("detector", "")),
            type=str(body.get("type", "")),
            score=float(body.get("score") or 0),
            reason=str(body.get("reason", "")),
            start=int(body.get("start") or 0),
            end=int(body.get("end") or 0),
            excerpt=str(body.get("excerpt", "")),
            rule=int(body.get("rule") or 0),
            action=str(body.get("action", "")),
        )


@dataclass(frozen=True)
class Verdict:
    """The guardrails' verdict on one stage's content. `allowed` is false for block and
    require_approval; a redaction gives `redacted_text` (and `redacted_arguments` for a tool call)."""

    allowed: bool
    action: Action
    reason: str
    findings: list[Finding]
    redacted_text: str | None
    redacted_arguments: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def raise_for_block(self) -> Verdict:
        """Raise GuardrailBlockedError unless allowed; else return this verdict."""
        if not self.allowed:
            raise GuardrailBlockedError(self)
        return self

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Verdict:
        redacted_arguments = body.get("redacted_arguments")
        return cls(
            allowed=bool(body["allowed"]),
            action=body["action"],
            reason=str(body.get("reason") or ""),
            findings=[Finding.from_json(f) for f in body.get("findings") or []],
            redacted_text=body.get("redacted_text"),
            redacted_arguments=redacted_arguments if isinstance(redacted_arguments, dict) else None,
            raw=body,
        )
