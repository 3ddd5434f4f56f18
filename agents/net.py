"""Where webhooks may go: never to private, loopback, link-local or otherwise internal addresses
(server-side request forgery), unless settings.WEBHOOK_ALLOWED_HOSTS names the host."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings


class UnsafeUrlError(Exception):
    """The URL may not be called; the message says why."""


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified


def check_webhook_url(url: str, *, resolve: bool = True) -> list[str]:
    """The addresses `url` may be called at, or UnsafeUrlError. HTTPS is required except for an
    allow-listed host; every address the host resolves to must be public unless allow-listed.
    Call again right before each request (the answer can change: DNS rebinding)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrlError("The webhook URL has no host.")
    allowed = {h.lower() for h in getattr(settings, "WEBHOOK_ALLOWED_HOSTS", [])}
    if parts.scheme != "https" and not (parts.scheme == "http" and host in allowed):
        raise UnsafeUrlError("Webhooks must use https:// (plain http only for an allow-listed host).")
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise UnsafeUrlError(f"The webhook host {host!r} does not resolve.") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if host not in allowed:
        internal = [a for a in addresses if _is_internal(a)]
        if internal:
            raise UnsafeUrlError(
                f"The webhook host {host!r} resolves to an internal address ({internal[0]}); "
                "add it to WEBHOOK_ALLOWED_HOSTS if that is intended."
            )
    return addresses


class WebhookFailedError(Exception):
    """The receiver answered, but not 2xx (worth retrying with backoff)."""


WEBHOOK_TIMEOUT_SECONDS = 10.0


def post_signed(url: str, secret: str, payload: dict[str, Any], *, event: str) -> None:
    """POST `payload` as JSON to a customer's `url`, signed like tool webhooks (X-AOC-Timestamp, and
    X-AOC-Signature = HMAC-SHA256 of `timestamp.body` with `secret` when there is one) and naming the
    `event` (X-AOC-Event). The URL passes the SSRF guard right before the request, which goes to the
    address the guard approved. Raises UnsafeUrlError (final: retrying will not help),
    WebhookFailedError or httpx.HTTPError (retry)."""
    from agents.tools import USER_AGENT, pinned, sign

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
