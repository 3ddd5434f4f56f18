"""What every detector returns: findings with a score, a reason and the span they matched."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EXCERPT_CHARS = 120


@dataclass(frozen=True)
class Finding:
    """One thing a detector found. `start`/`end` index the text the caller passed in (not a
    normalised or decoded copy); `excerpt` is the matched text, cut to EXCERPT_CHARS. `redactable`
    findings are masked by a `redact` action (PII, secrets, custom rules); the others can only
    block, flag or ask for approval."""

    detector: str
    type: str
    score: float
    reason: str
    start: int = 0
    end: int = 0
    excerpt: str = ""
    redactable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def excerpt(text: str, start: int, end: int) -> str:
    piece = text[start:end]
    return piece if len(piece) <= EXCERPT_CHARS else piece[: EXCERPT_CHARS - 1] + "…"
