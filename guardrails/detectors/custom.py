"""A tenant's own rules: deny-listed words or phrases and regular expressions.

Deny-list entries match whole words on the normalised skeleton (normalize.views), so zero-width
characters, homoglyphs and letter spacing do not slip a denied word through; spans point at the
original text. Regexes run on the original text with the `regex` module and a time limit per
search, since a tenant's pattern may backtrack catastrophically.
"""

from __future__ import annotations

from typing import Any

import regex

from guardrails.detectors.base import Finding, excerpt
from guardrails.detectors.normalize import views

REGEX_TIMEOUT_SECONDS = 0.05
MAX_TERMS = 500
MAX_PATTERN_CHARS = 500


def _compile_deny(terms: list[str], case_sensitive: bool) -> Any:
    words = sorted({t.strip() for t in terms if t.strip()}, key=len, reverse=True)
    body = "|".join(r"\s+".join(regex.escape(part) for part in word.split()) for word in words)
    return regex.compile(rf"(?<!\w)(?:{body})(?!\w)", 0 if case_sensitive else regex.IGNORECASE)


def problems(params: dict[str, Any]) -> dict[str, str]:
    """What is wrong with a custom rule's parameters, by parameter name (empty when usable)."""
    errors: dict[str, str] = {}
    deny = params.get("deny", [])
    patterns = params.get("patterns", [])
    if not isinstance(deny, list) or not all(isinstance(t, str) for t in deny):
        errors["deny"] = "a list of words or phrases"
    elif len(deny) > MAX_TERMS:
        errors["deny"] = f"at most {MAX_TERMS} entries"
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        errors["patterns"] = "a list of regular expressions"
    else:
        for pattern in patterns:
            if len(pattern) > MAX_PATTERN_CHARS:
                errors["patterns"] = f"each pattern has at most {MAX_PATTERN_CHARS} characters"
                break
            try:
                regex.compile(pattern)
            except regex.error as exc:
                errors["patterns"] = f"{pattern!r} is not a valid regular expression: {exc}"
                break
    if not errors and not [t for t in deny if t.strip()] and not patterns:
        errors["deny"] = "give at least one word, phrase or pattern"
    return errors


def detect(
    text: str,
    *,
    deny: list[str] | None = None,
    patterns: list[str] | None = None,
    case_sensitive: bool = False,
    **_: Any,
) -> list[Finding]:
    findings: list[Finding] = []
    terms = [t for t in (deny or []) if t.strip()]
    if terms and text:
        matcher = _compile_deny(terms, case_sensitive)
        every = views(text)
        for view in every[:1] + [v for v in every[1:] if v.via == "unicode"]:
            for match in matcher.finditer(view.text, timeout=REGEX_TIMEOUT_SECONDS):
                start, end = view.span(match.start(), match.end())
                if any(f.start == start for f in findings):
                    continue
                findings.append(
                    Finding(
                        detector="custom",
                        type="denied_term",
                        score=1.0,
                        reason=f"denied term {match.group()!r}",
                        start=start,
                        end=end,
                        excerpt=excerpt(text, start, end),
                        redactable=True,
                    )
                )
    flags = 0 if case_sensitive else regex.IGNORECASE
    for pattern in patterns or []:
        try:
            for match in regex.finditer(pattern, text, flags, timeout=REGEX_TIMEOUT_SECONDS):
                if match.end() == match.start():
                    continue
                findings.append(
                    Finding(
                        detector="custom",
                        type="pattern",
                        score=1.0,
                        reason=f"matches the pattern {pattern!r}",
                        start=match.start(),
                        end=match.end(),
                        excerpt=excerpt(text, match.start(), match.end()),
                        redactable=True,
                    )
                )
        except TimeoutError:
            findings.append(
                Finding(
                    detector="custom",
                    type="pattern_timeout",
                    score=1.0,
                    reason=f"the pattern {pattern!r} took too long on this text; treated as a match",
                )
            )
    return sorted(findings, key=lambda f: f.start)
