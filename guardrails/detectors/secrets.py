# ruff: noqa: E501 - provider formats read best unbroken
"""Credentials: provider and cloud keys, tokens, private keys, JWTs, passwords in URLs, and
high-entropy values in key-like context (`api_key = "…"`). Findings are redactable: a `redact`
action replaces the secret (only the value, for `name = value` pairs) with `[SECRET:<type>]`
(guardrails.detectors.redaction).

Formats follow the providers' published prefixes and lengths; the generic rule needs a key-like
name, an assignment, and a value that looks random (Shannon entropy per character and a mix of
character classes), so prose and ordinary identifiers do not trip it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from guardrails.detectors.base import Finding, excerpt


@dataclass(frozen=True)
class SecretPattern:
    type: str
    label: str
    pattern: re.Pattern[str]
    group: int = 0  # the group that is the secret itself
    # Lower-case substrings one of which every match contains: a pattern is skipped without them
    # (scanning 2 KB with two dozen patterns costs more than the substring tests).
    hints: tuple[str, ...] = ()


def _p(type_: str, label: str, pattern: str, group: int = 0, flags: int = 0, hints: str = "") -> SecretPattern:
    return SecretPattern(type_, label, re.compile(pattern, flags), group, tuple(hints.split()))


PATTERNS: tuple[SecretPattern, ...] = (
    _p(
        "private_key",
        "a private key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        flags=re.DOTALL,
        hints="private",
    ),
    _p("anthropic_key", "an Anthropic API key", r"\bsk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{32,}", hints="sk-ant-"),
    _p(
        "openai_key",
        "an OpenAI API key",
        r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}(?:T3BlbkFJ[A-Za-z0-9_-]{20,})?",
        hints="sk-",
    ),
    _p(
        "aws_access_key_id",
        "an AWS access key id",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
        hints="akia asia abia acca agpa aida aroa anpa anva a3t",
    ),
    _p(
        "aws_secret_access_key",
        "an AWS secret access key",
        r"(?i)aws.{0,24}?(?:secret|private).{0,24}?[=:]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
        group=1,
        hints="aws",
    ),
    _p(
        "github_token",
        "a GitHub token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b",
        hints="ghp_ gho_ ghu_ ghs_ ghr_ github_pat_",
    ),
    _p("gitlab_token", "a GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}\b", hints="glpat-"),
    _p("slack_token", "a Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b", hints="xox"),
    _p(
        "slack_webhook",
        "a Slack webhook URL",
        r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+",
        hints="hooks.slack.com",
    ),
    _p("stripe_key", "a Stripe secret key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b", hints="_live_ _test_"),
    _p("google_api_key", "a Google API key", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])", hints="aiza"),
    _p("google_oauth_token", "a Google OAuth token", r"\bya29\.[0-9A-Za-z_-]{20,}", hints="ya29."),
    _p(
        "azure_storage_key",
        "an Azure storage account key",
        r"AccountKey=([A-Za-z0-9+/]{86}==)",
        group=1,
        hints="accountkey=",
    ),
    _p("sendgrid_key", "a SendGrid API key", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b", hints="sg."),
    _p("twilio_key", "a Twilio API key", r"\bSK[0-9a-f]{32}\b", hints="sk"),
    _p("npm_token", "an npm token", r"\bnpm_[A-Za-z0-9]{36}\b", hints="npm_"),
    _p("pypi_token", "a PyPI token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}", hints="pypi-"),
    _p("huggingface_token", "a Hugging Face token", r"\bhf_[A-Za-z]{34,}\b", hints="hf_"),
    _p("digitalocean_token", "a DigitalOcean token", r"\bdo[opr]_v1_[a-f0-9]{64}\b", hints="doo_v1_ dop_v1_ dor_v1_"),
    _p(
        "shopify_token",
        "a Shopify token",
        r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b",
        hints="shpat_ shpss_ shpca_ shppa_",
    ),
    _p("mailgun_key", "a Mailgun API key", r"\bkey-[0-9a-zA-Z]{32}\b", hints="key-"),
    _p("console_api_key", "an API key of this console", r"\baoc_[A-Za-z0-9]{4,16}_[A-Za-z0-9_-]{20,}", hints="aoc_"),
    _p("jwt", "a JSON Web Token", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", hints="eyj"),
    _p(
        "url_credentials",
        "a password in a URL",
        r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@\"']{1,64}:([^\s/@\"']{3,128})@[\w.-]+",
        group=1,
        flags=re.IGNORECASE,
        hints="://",
    ),
)

# `name = value` / `name: value` / `"name": "value"` where the name says it is secret.
_ASSIGNED = re.compile(
    r"(?i)\b([\w.-]*(?:api[_-]?key|apikey|secret|token|passwd|password|pwd|access[_-]?key|client[_-]?secret|auth[_-]?key|"
    r"private[_-]?key|credentials?|bearer|signing[_-]?key|encryption[_-]?key)[\w.-]*)[\"']?\s*(?:=|:|=>)\s*[\"']?"
    r"([^\s\"',;]{8,200})"
)
# The generic rule's regex is the costly one: skip it when no key-like name can be in the text.
_ASSIGNED_HINTS = ("key", "secret", "token", "passw", "pwd", "credential", "bearer")
_BEARER = re.compile(r"(?i)\bauthorization\s*:\s*(?:bearer|token|basic)\s+([A-Za-z0-9._~+/=-]{16,})")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:x+|\*+|\.+|<[^>]*>|\{[^}]*\}|\$\{?\w+\}?|%\(?\w+\)?s?|changeme|example|redacted|none|null|true|false|your[_-]?\w*)$"
)
MIN_ENTROPY = 3.0


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _looks_random(value: str, *, password: bool) -> bool:
    if _PLACEHOLDER.match(value):
        return False
    if password:
        # A password need not be random, only present; it must not be a word a sentence continues with.
        return len(value) >= 8 and not value.isalpha()
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
    return len(value) >= 16 and classes >= 2 and entropy(value) >= MIN_ENTROPY


def detect(text: str) -> list[Finding]:
    """Every credential in `text` (overlaps resolved: the first, most specific, pattern wins)."""
    if len(text) < 8:
        return []
    findings: list[Finding] = []

    def add(type_: str, label: str, start: int, end: int, score: float) -> None:
        if any(start < f.end and f.start < end for f in findings):
            return
        findings.append(
            Finding(
                detector="secrets",
                type=type_,
                score=score,
                reason=f"secret: {label}",
                start=start,
                end=end,
                excerpt=excerpt(text, start, end),
                redactable=True,
            )
        )

    lowered = text.lower()
    for secret in PATTERNS:
        if secret.hints and not any(hint in lowered for hint in secret.hints):
            continue
        for match in secret.pattern.finditer(text):
            add(secret.type, secret.label, match.start(secret.group), match.end(secret.group), 0.95)
    for match in _BEARER.finditer(text):
        add("bearer_token", "a bearer token", match.start(1), match.end(1), 0.9)
    if not any(word in lowered for word in _ASSIGNED_HINTS):
        return sorted(findings, key=lambda f: f.start)
    for match in _ASSIGNED.finditer(text):
        name, value = match.group(1).lower(), match.group(2)
        password = any(word in name for word in ("passw", "pwd"))
        if _looks_random(value, password=password):
            add(
                "password" if password else "generic_secret",
                f"a value assigned to {match.group(1)}",
                *match.span(2),
                0.8,
            )
    return sorted(findings, key=lambda f: f.start)
