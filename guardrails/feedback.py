"""A tenant's reviewer feedback applied to checks: texts a reviewer marked as a false positive are
let through, texts marked as a missed attack are blocked, from the next check on.

Matching. A text is normalised (NFKC, invisible characters dropped, case-folded, runs of
whitespace made one space, trimmed) and matched two ways:
- exactly: the SHA-256 of the normalised text (`fingerprint`) equals an entry's;
- as a near-duplicate: the estimated Jaccard similarity of the two texts' sets of character
  5-grams is at least NEAR (0.7), estimated from bottom-k sketches (the K smallest 5-gram
  hashes of each text, kept on the entry), compared with every entry of the stage at once
  (about 1.2 ms of CPU for 2 KB of text and 1,000 entries, the most a tenant may have; nothing
  without entries). Only texts of at least NEAR_MIN_CHARS normalised characters are compared
  this way (short texts share too few 5-grams to mean anything). One changed word in a one-line
  prompt stays above 0.7 (0.73 to 0.92 measured); an attack sharing the first half of the
  sentence ("ignore all previous instructions and ...") does not (0.3).

Effect, per stage (an entry applies at the stage of the check it came from):
- a missed attack (deny) entry that matches, exactly or near, adds a `feedback` finding whose
  action is DENY_ACTION (block);
- a false positive (allow) entry leaves out the findings of the detectors it names: of the
  injection detector on an exact or near match, of PII, secrets and custom rules on an exact
  match only (a near match could be the same template carrying someone else's card number).
  Tool scope, length and format are rules, not judgments: feedback never overrides them. The
  verdict is recomputed from what is left, and an `allow` finding says why.
- when both match, the deny entry wins.

The entries keep no clear text of what they match: the fingerprint and sketch are hashes, and
the text kept for export (guardrails.services.feedback_export) is masked like the events'.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from guardrails.checks import ACTION_RANK, CheckResult, RuleFinding
from guardrails.detectors import Finding, redact
from guardrails.detectors.normalize import is_invisible

NEAR = 0.7
NEAR_MIN_CHARS = 30
K = 64
SHINGLE = 5
DENY_ACTION = "block"
FEEDBACK_RULE = -1  # the rule position findings of the feedback set carry
SUPPRESSIBLE = ("injection", "pii", "secrets", "custom")
SUPPRESSIBLE_NEAR = frozenset({"injection"})
_SPACES = re.compile(r"\s+")
_PRIME = np.uint32(16777619)
_MIX = np.uint32(0x9E3779B1)


def normalise(text: str) -> str:
    """What matching compares: NFKC, no invisible characters, case-folded, spaces collapsed."""
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKC", text) if not is_invisible(c))
    return _SPACES.sub(" ", text.casefold()).strip()


def fingerprint(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()


def sketch(normalised: str) -> list[int]:
    """The K smallest hashes of the text's character 5-grams (sorted), [] for a short text."""
    if len(normalised) < NEAR_MIN_CHARS:
        return []
    codes = np.frombuffer(normalised.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    count = len(codes) - SHINGLE + 1
    with np.errstate(over="ignore"):
        hashes = codes[:count].copy()
        for k in range(1, SHINGLE):
            hashes = hashes * _PRIME + codes[k : k + count]
        mixed = hashes * _MIX
        mixed ^= mixed >> np.uint32(15)
        mixed = mixed * _MIX
    unique = np.unique(mixed)
    return [int(x) for x in unique[:K]]


# Above every 32-bit hash: the threshold of a sketch that holds its text's every 5-gram, and
# (higher still) the padding of the matrix of sketches, which no threshold admits.
_WHOLE = 1 << 33
_PAD = 1 << 40


def _threshold(values: np.ndarray | list[int] | tuple[int, ...]) -> int:
    """Below it, a sketch holds all its text's 5-gram hashes: its largest one when it is full (K
    hashes), else any hash at all."""
    return int(max(values)) if len(values) >= K else _WHOLE


def similarity(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> float:
    """The two texts' 5-gram Jaccard similarity, estimated from their sketches: below the lower of
    the two thresholds both sketches hold every 5-gram of their text, so the 5-grams of either
    text found there are a uniform sample of the union, and the share in both estimates the
    similarity (exact when both texts are short enough for their sketches to hold them whole)."""
    if not a or not b:
        return 0.0
    limit = min(_threshold(a), _threshold(b))
    set_a = {x for x in a if x <= limit}
    set_b = {x for x in b if x <= limit}
    return len(set_a & set_b) / len(set_a | set_b)


def similarities(mine: list[int], matrix: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """similarity(mine, row) for every row of `matrix` (sketches padded with _PAD; their
    thresholds beside), in a few vector operations."""
    ours = np.asarray(mine, dtype=np.int64)
    limit = np.minimum(thresholds, _threshold(ours))
    inside = matrix <= limit[:, None]
    at = np.minimum(np.searchsorted(ours, matrix), len(ours) - 1)
    both = ((ours[at] == matrix) & inside).sum(axis=1)
    union = inside.sum(axis=1) + np.searchsorted(ours, limit, side="right") - both
    return np.asarray(both / np.maximum(union, 1))


@dataclass(frozen=True)
class Entry:
    """One feedback row as matching needs it."""

    id: str
    kind: str  # "false_positive" | "missed_attack"
    stage: str
    fingerprint: str
    sketch: tuple[int, ...]
    detectors: frozenset[str]


@dataclass
class StageSet:
    exact: dict[str, Entry] = field(default_factory=dict)
    near: list[Entry] = field(default_factory=list)
    # The near entries' sketches as one matrix (padded with _PAD) and their thresholds.
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, K), dtype=np.int64))
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def seal(self) -> None:
        self.matrix = np.full((len(self.near), K), _PAD, dtype=np.int64)
        for row, entry in enumerate(self.near):
            self.matrix[row, : len(entry.sketch)] = sorted(entry.sketch)
        self.thresholds = np.array([_threshold(e.sketch) for e in self.near], dtype=np.int64)


@dataclass
class FeedbackSet:
    """A tenant's entries by stage, built once per configuration version (tenants.cache)."""

    stages: dict[str, StageSet] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: list[Entry]) -> FeedbackSet:
        built = cls()
        for entry in entries:
            stage = built.stages.setdefault(entry.stage, StageSet())
            stage.exact[entry.fingerprint] = entry
            if entry.sketch:
                stage.near.append(entry)
        for stage in built.stages.values():
            stage.seal()
        return built

    def __bool__(self) -> bool:
        return bool(self.stages)

    def matches(self, text: str, stage: str) -> list[tuple[Entry, float, bool]]:
        """The entries matching `text` at `stage`: (entry, similarity, exact), exact first."""
        found = self.stages.get(stage)
        if found is None:
            return []
        normalised = normalise(text)
        out: list[tuple[Entry, float, bool]] = []
        exact = found.exact.get(fingerprint(normalised))
        if exact is not None:
            out.append((exact, 1.0, True))
        if found.near and len(normalised) >= NEAR_MIN_CHARS:
            mine = sketch(normalised)
            scores = similarities(mine, found.matrix, found.thresholds) if mine else np.zeros(0)
            for row in np.flatnonzero(scores >= NEAR):
                entry = found.near[row]
                if exact is None or entry.id != exact.id:
                    out.append((entry, float(scores[row]), False))
        return out


@dataclass(frozen=True)
class Applied:
    """What the feedback set did to a check: the new result and the entries that changed it."""

    result: CheckResult
    used: tuple[str, ...]


def _finding(kind: str, score: float, exact: bool, extra: str = "") -> Finding:
    how = "this text" if exact else f"a text {score:.0%} like this one"
    what = "a missed attack" if kind == "missed_attack" else "a false positive"
    return Finding(
        detector="feedback",
        type=kind,
        score=round(score, 3),
        reason=f"a reviewer marked {how} as {what}{extra}",
    )


def apply(feedback: FeedbackSet, result: CheckResult, *, stage: str, content: Any) -> Applied:
    """`result` with the tenant's feedback applied (see the module docstring); unchanged (and
    nothing used) when no entry matches."""
    hits = feedback.matches(result.text, stage)
    if not hits:
        return Applied(result, ())
    deny = next(((e, s, x) for e, s, x in hits if e.kind == "missed_attack"), None)
    if deny is not None:
        entry, score, exact = deny
        added = RuleFinding(_finding("missed_attack", score, exact), FEEDBACK_RULE, DENY_ACTION)
        findings = [*result.findings, added]
        action = max((f.action for f in findings), key=ACTION_RANK.__getitem__)
        changed = replace(
            result, findings=findings, action=action, allowed=ACTION_RANK[action] < ACTION_RANK["require_approval"]
        )
        return Applied(changed, (entry.id,))
    used: list[str] = []
    left_out: set[str] = set()
    notes: list[tuple[Entry, float, bool]] = []
    for entry, score, exact in hits:
        names = entry.detectors if exact else entry.detectors & SUPPRESSIBLE_NEAR
        covers = {f.finding.detector for f in result.findings} & names
        if covers:
            left_out |= covers
            used.append(entry.id)
            notes.append((entry, score, exact))
    if not left_out:
        return Applied(result, ())
    kept = [f for f in result.findings if f.finding.detector not in left_out]
    action = max((f.action for f in kept), key=ACTION_RANK.__getitem__, default="allow")
    _, score, exact = notes[0]
    note = _finding("false_positive", score, exact, f": {', '.join(sorted(left_out))} findings left out")
    findings = [*kept, RuleFinding(note, FEEDBACK_RULE, "allow")]
    redacted = result.redacted
    if action not in ("redact", "require_approval") or not any(f.action == "redact" for f in kept):
        redacted = None
    elif isinstance(content, str):
        redacted = redact(result.text, [f.finding for f in kept if f.action == "redact"])
    # A JSON value keeps its redaction as it was: a few more strings masked, never fewer.
    changed = replace(
        result,
        findings=findings,
        action=action,
        allowed=ACTION_RANK[action] < ACTION_RANK["require_approval"],
        redacted=redacted,
    )
    return Applied(changed, tuple(used))
