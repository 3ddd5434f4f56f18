"""Webhooks to customers' URLs, written once for every sender (tool calls, approval callbacks,
budget alerts): where they may go (tenants.net's guard, with settings.WEBHOOK_ALLOWED_HOSTS), how
a request is signed, and the one signed JSON sender.

Every webhook carries `X-AOC-Timestamp` and, when the sender has a secret, `X-AOC-Signature`:
`sha256=` and the hex HMAC-SHA256, with the secret, of `<timestamp>.<body>`. Signing the timestamp
too lets a receiver refuse replays of an old request (check the timestamp is recent, then the
signature). The URL passes the SSRF guard right before each request, which goes to the address the
guard approved (with the original Host and TLS server name), so a DNS answer that changes between
the check and the connection (rebinding) cannot redirect it; redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from django.conf import settings

from tenants.net import check_outbound_url, pinned

USER_AGENT = "AgentOperationsConsole-Webhook/1"
WEBHOOK_TIMEOUT_SECONDS = 10.0


class WebhookFailedError(Exception):
    """The receiver answered, but not 2xx (worth retrying with backoff)."""


def check_webhook_url(url: str, *, resolve: bool = True) -> list[str]:
    """The addresses a webhook at `url` may be called at, or UnsafeUrlError (tenants.net)."""
    return check_outbound_url(
        url,
        allowed_hosts=getattr(settings, "WEBHOOK_ALLOWED_HOSTS", []),
        what="webhook",
        setting="WEBHOOK_ALLOWED_HOSTS",
        resolve=resolve,
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-AOC-Signature value of `body` sent at `timestamp` (see the module docstring)."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, **extra: str) -> dict[str, str]:
    """The headers of a webhook request carrying `body`: JSON, our user agent, the timestamp and,
    with a secret, the signature; `extra` added as given (X-AOC-Event, Idempotency-Key …)."""
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-AOC-Timestamp": timestamp, **extra}
    if secret:
        headers["X-AOC-Signature"] = sign(secret, timestamp, body)
    return headers


def post_signed(url: str, secret: str, payload: dict[str, Any], *, event: str) -> None:
    """POST `payload` as JSON to a customer's `url`, signed, naming the `event` (X-AOC-Event).
    Raises UnsafeUrlError (final: retrying will not help), WebhookFailedError or httpx.HTTPError
    (retry)."""
    addresses = check_webhook_url(url)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    headers = signed_headers(secret, body, **{"X-AOC-Event": event})
    target, extensions = pinned(url, addresses[0], headers)
    with httpx.Client(timeout=WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client:
        response = client.post(target, content=body, headers=headers, extensions=extensions)
    if not 200 <= response.status_code < 300:
        raise WebhookFailedError(f"HTTP {response.status_code}: {response.text[:200]}")
