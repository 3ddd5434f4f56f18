"""Prompt injection and jailbreak detection: weighted patterns over normalised text.

Each signal is a pattern family with a weight (how sure one match makes us) and a reason. A text's
score is the noisy-OR of the signals it matches, 1 - Π(1 - weight), counting each signal once:
one strong signal (an instruction override, a system-prompt extraction) is enough on its own,
while weak ones (a persona, a mention of "no restrictions", a model's name) only add up. Words
that merely appear in benign requests ("ignore the warning", "pretend to be a tour guide",
"unrestricted access") carry low weights, which keeps false positives down.

Two modes:
- `direct`: the text is the user's own prompt. Flags overrides, role hijacks, jailbreak personas,
  system-prompt extraction and exfiltration requests.
- `indirect`: the text is third-party content (a tool result, a retrieved document, an email)
  that the model will read. Any instruction aimed at the assistant is suspicious there, so on
  top of the direct signals it flags imperative sentences, requests about "your answer/reply",
  messages addressed to the AI and embedded code that opens shells or sockets.

The signals themselves (pattern families, weights, reasons) are the rule table in
guardrails/detectors/injection_signals.py; this module scans a text's normalised views with them
and scores what matched.

Beside the rules, a learned model (guardrails/detectors/learned.py: logistic regression over
hashed character and word n-grams of the same normalised views, one weight vector per mode,
trained by guardrails/training/train_injection.py) scores the text; its probability, calibrated
per mode, is fused with the rules' score (learned.fuse) and, when it counts, reported as a finding
of type `learned`. Without its model file the rules work alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guardrails.detectors import learned
from guardrails.detectors.base import Finding, excerpt
from guardrails.detectors.injection_signals import ALL_SIGNALS, Mode, Signal
from guardrails.detectors.normalize import View, hidden_characters, views

__all__ = ["ALL_SIGNALS", "DEFAULT_THRESHOLD", "Explanation", "Mode", "detect", "explain", "rule_score", "score"]

DEFAULT_THRESHOLD: dict[str, float] = {"direct": 0.5, "indirect": 0.5}
_TOKENS = re.compile(r"\w+(?:'\w+)*")  # words, with inner apostrophes ("don't"), not quotes


def _signals_for(mode: Mode) -> tuple[Signal, ...]:
    return tuple(signal for signal in ALL_SIGNALS if mode in signal.modes)


_BY_MODE: dict[str, tuple[Signal, ...]] = {"direct": _signals_for("direct"), "indirect": _signals_for("indirect")}


@dataclass(frozen=True)
class Match:
    signal: Signal
    start: int
    end: int
    via: str


def _scan(text_views: list[View], signals: tuple[Signal, ...]) -> list[Match]:
    matches: list[Match] = []
    seen: set[str] = set()
    for view in text_views:
        decoded = view.blob is not None
        lowered = view.text.lower()
        tokens = frozenset(_TOKENS.findall(lowered))
        for signal in signals:
            if signal.reason in seen:
                continue
            if signal.view == "skeleton" and view.via == "unicode":
                continue
            if signal.view == "unicode" and ((view.via != "unicode" and not decoded) or view.text.isascii()):
                continue
            if not signal.prefilter.admits(lowered, tokens):
                continue
            found = signal.search(view.text, lowered)
            if found is None:
                continue
            seen.add(signal.reason)
            start, end = view.span(found.start(), found.end())
            matches.append(Match(signal, start, end, view.via))
    return matches


def score(weights: list[float]) -> float:
    """Noisy-OR of independent signals' weights."""
    remaining = 1.0
    for weight in weights:
        remaining *= 1.0 - weight
    return round(1.0 - remaining, 4)


# The last text's scan, per mode: a policy often runs the detector twice on one text with two
# thresholds (the default tool_result rules block at 0.85 and flag at 0.5), and the scan, not the
# threshold, is the cost. One entry per mode, replaced whole (a tuple), so threads never see half.
_LAST: dict[str, tuple[str, list[Match], dict[str, int], float | None]] = {}


def _analysis(text: str, mode: Mode, *, with_model: bool = True) -> tuple[list[Match], dict[str, int], float | None]:
    """The signals matched in `text` in `mode`, its hidden characters and, `with_model`, the
    learned model's probability (None without a model file, or when not asked for: the rules
    alone do not pay for the model): what detect() scores."""
    last = _LAST.get(mode)
    if last is not None and last[0] == text and (last[3] is not None or not with_model or learned.shipped() is None):
        return last[1], last[2], last[3]
    text_views = views(text)
    matches = _scan(text_views, _BY_MODE[mode])
    hidden = hidden_characters(text)
    model = learned.shipped() if with_model else None
    probability = None if model is None else model.probability(learned.features([v.text for v in text_views]), mode)
    _LAST[mode] = (text, matches, hidden, probability)
    return matches, hidden, probability


def _rule_weights(matches: list[Match], hidden: dict[str, int]) -> list[float]:
    weights = [m.signal.weight for m in matches]
    if hidden.get("tag"):
        # Tag characters render as nothing and have no place in prose: smuggled text.
        weights.append(0.5)
    if hidden.get("bidi"):
        weights.append(0.2)
    if any(m.via and m.via != "unicode" for m in matches):
        # An instruction that had to be encoded to get through is more suspicious, not less.
        weights.append(0.3)
    return weights


def rule_score(text: str, *, mode: Mode = "direct") -> float:
    """The rules' score alone (no learned model): what training calibrates the fusion against."""
    if not text.strip():
        return 0.0
    matches, hidden, _ = _analysis(text, mode, with_model=False)
    return score(_rule_weights(matches, hidden))


# A learned score under this (after calibration) is left out of the findings: it changed nothing
# in the fused score (learned.fuse counts it from this level up).
LEARNED_FINDING_FLOOR = learned.AGREE


def detect(
    text: str, *, mode: Mode = "direct", threshold: float | None = None, learned_model: bool = True
) -> list[Finding]:
    """Findings for an injection in `text`, or [] when its score stays under the threshold (the
    mode's default unless given). The score fuses the rules and the learned model
    (guardrails/detectors/learned.py, left out with `learned_model=False`): the rules' noisy-OR of
    the matched signals' weights, and the model's probability calibrated per mode so that its
    threshold reads 0.5, combined by learned.fuse (the surer one, or both when both are fairly
    sure). Every finding carries the fused score, the matched signal's reason and
    span (in `text`); a match inside decoded content names the encoding; the model's own finding
    (type `learned`, over the whole text) carries its probability in the reason."""
    if not text.strip():
        return []
    limit = DEFAULT_THRESHOLD[mode] if threshold is None else threshold
    matches, hidden, probability = _analysis(text, mode, with_model=learned_model)
    weights = _rule_weights(matches, hidden)
    model = learned.shipped() if learned_model else None
    calibrated = 0.0
    total = score(weights)
    if model is not None and probability is not None:
        calibrated = model.calibrated(probability, mode)
        total = learned.fuse(total, calibrated)
    if total < limit or not (matches or calibrated >= LEARNED_FINDING_FLOOR):
        return []
    findings: list[Finding] = []
    for match in sorted(matches, key=lambda m: -m.signal.weight):
        if any(f.type == match.signal.name and f.start < match.end and match.start < f.end for f in findings):
            continue  # the same kind of finding over the same text, found again in another view
        reason = match.signal.reason
        if match.via and match.via != "unicode":
            reason += f" (hidden in {match.via})"
        findings.append(
            Finding(
                detector="injection",
                type=match.signal.name,
                score=total,
                reason=reason,
                start=match.start,
                end=match.end,
                excerpt=excerpt(text, match.start, match.end),
            )
        )
    if calibrated >= LEARNED_FINDING_FLOOR and probability is not None and model is not None:
        findings.append(
            Finding(
                detector="injection",
                type="learned",
                score=total,
                reason=(
                    f"reads like injection text to the learned model: {probability:.2f} "
                    f"(threshold {model.threshold[mode]:.2f} in {mode} mode)"
                ),
                start=0,
                end=len(text),
                excerpt=excerpt(text, 0, len(text)),
            )
        )
    return findings


@dataclass(frozen=True)
class Explanation:
    """What made up a text's injection score: each matched signal with its own weight, its reason
    (a fixed description) and the encoding it was hidden in, the hidden-character and encoding
    bonuses, the rules' noisy-OR, the learned model's probability and calibrated score (None when
    not asked for or without a model file), the fused score and the threshold it was compared
    with. No text: names and numbers."""

    signals: tuple[tuple[str, float, str, str], ...]  # (name, weight, reason, encoding or "")
    bonuses: tuple[tuple[str, float], ...]
    rules: float
    probability: float | None
    learned: float | None
    total: float
    threshold: float


def explain(
    text: str, *, mode: Mode = "direct", threshold: float | None = None, learned_model: bool = True
) -> Explanation:
    """detect()'s score taken apart, for the guardrail events list. Right after detect() on the
    same text and mode this costs no scan (the last analysis per mode is kept)."""
    limit = DEFAULT_THRESHOLD[mode] if threshold is None else threshold
    if not text.strip():
        return Explanation((), (), 0.0, None, None, 0.0, limit)
    matches, hidden, probability = _analysis(text, mode, with_model=learned_model)
    bonuses: list[tuple[str, float]] = []
    if hidden.get("tag"):
        bonuses.append(("tag_characters", 0.5))
    if hidden.get("bidi"):
        bonuses.append(("bidi_characters", 0.2))
    if any(m.via and m.via != "unicode" for m in matches):
        bonuses.append(("encoded", 0.3))
    rules = score(_rule_weights(matches, hidden))
    model = learned.shipped() if learned_model else None
    calibrated = None
    total = rules
    if model is not None and probability is not None:
        calibrated = round(model.calibrated(probability, mode), 4)
        total = learned.fuse(rules, calibrated)
    signals = tuple(
        (m.signal.name, m.signal.weight, m.signal.reason, m.via if m.via != "unicode" else "")
        for m in sorted(matches, key=lambda m: -m.signal.weight)
    )
    return Explanation(
        signals,
        tuple(bonuses),
        rules,
        None if probability is None else round(probability, 4),
        calibrated,
        total,
        limit,
    )
