"""Webhooks to customers' URLs: where they may go (tenants.net's guard, with
settings.WEBHOOK_ALLOWED_HOSTS) and the one signed sender."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from django.conf import settings

from tenants.net import check_outbound_url, pinned


def check_webhook_url(url: str, *, resolve: bool = True) -> list[str]:
    """The addresses a webhook at `url` may be called at, or UnsafeUrlError (tenants.net)."""
    return check_outbound_url(
        url,
        allowed_hosts=getattr(settings, "WEBHOOK_ALLOWED_HOSTS", []),
        what="webhook",
        setting="WEBHOOK_ALLOWED_HOSTS",
        resolve=resolve,
    )


class WebhookFailedError(Exception):
    """The receiver answered, but not 2xx (worth retrying with backoff)."""


WEBHOOK_TIMEOUT_SECONDS = 10.0


def post_signed(url: str, secret: str, payload: dict[str, Any], *, event: str) -> None:
    """POST `payload` as JSON to a customer's `url`, signed like tool webhooks (X-AOC-Timestamp, and
    X-AOC-Signature = HMAC-SHA256 of `timestamp.body` with `secret` when there is one) and naming the
    `event` (X-AOC-Event). The URL passes the SSRF guard right before the request, which goes to the
    address the guard approved. Raises UnsafeUrlError (final: retrying will not help),
    WebhookFailedError or httpx.HTTPError (retry)."""
    from agents.tools import USER_AGENT, sign

    addresses = check_webhook_url(url)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-AOC-Timestamp": timestamp,
        "X-AOC-Event": event,
    }
    if secret:
        headers["X-AOC-Signature"] = sign(secret, timestamp, body)
    target, extensions = pinned(url, addresses[0], headers)
    with httpx.Client(timeout=WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client:
        response = client.post(target, content=body, headers=headers, extensions=extensions)
    if not 200 <= response.status_code < 300:
        raise WebhookFailedError(f"HTTP {response.status_code}: {response.text[:200]}")
