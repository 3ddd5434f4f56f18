"""HTTP for the provider clients: one connection pool per process, and JSON POSTs that retry what
may succeed on a second try (408, 429, 5xx, timeouts, connection errors) with exponential backoff."""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from catalog.clients.base import ProviderConfig, ProviderError
from tenants.net import UnresolvableHostError, UnsafeUrlError, check_outbound_url, pinned

Sleep = Callable[[float], None]

BACKOFF_BASE_SECONDS = 0.5  # then 1, 2, 4, 8
BACKOFF_MAX_SECONDS = 8.0
RETRY_AFTER_MAX_SECONDS = 20.0  # a worker never waits longer than this on a provider's say-so

_shared: tuple[int, httpx.Client] | None = None
_shared_lock = threading.Lock()


def shared_http() -> httpx.Client:
    """The process's pooled client (timeouts are set per request). Re-created after a fork, so
    Celery's prefork workers never share a socket with their parent."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid():
            _shared = (os.getpid(), httpx.Client(limits=httpx.Limits(max_connections=50)))
        return _shared[1]


PROVIDER_URL_VERDICT_SECONDS = 60.0  # how long a host's SSRF verdict (and its addresses) is reused
_verdicts: dict[tuple[str, str, tuple[str, ...]], tuple[float, str, list[str]]] = {}


def check_provider_url(url: str, *, resolve: bool = True) -> list[str]:
    """The addresses a tenant-chosen provider URL may be called at, or UnsafeUrlError: https to a
    public address, or a host in settings.PROVIDER_ALLOWED_HOSTS (tenants.net). With `resolve`,
    a host's verdict and addresses are reused for a minute, so a model call pays for one DNS
    lookup a minute, not one each; UnresolvableHostError (no verdict) is never reused."""
    allowed = tuple(settings.PROVIDER_ALLOWED_HOSTS)
    if not resolve:
        return check_outbound_url(
            url, allowed_hosts=allowed, what="provider", setting="PROVIDER_ALLOWED_HOSTS", resolve=False
        )
    parts = urlsplit(url)
    key = (parts.scheme, parts.netloc.lower(), allowed)
    now = time.monotonic()
    cached = _verdicts.get(key)
    if cached is None or cached[0] < now:
        addresses: list[str] = []
        try:
            addresses = check_outbound_url(
                url, allowed_hosts=allowed, what="provider", setting="PROVIDER_ALLOWED_HOSTS"
            )
            problem = ""
        except UnresolvableHostError:
            raise
        except UnsafeUrlError as exc:
            problem = str(exc)
        if len(_verdicts) > 1000:
            _verdicts.clear()
        cached = _verdicts[key] = (now + PROVIDER_URL_VERDICT_SECONDS, problem, addresses)
    if cached[1]:
        raise UnsafeUrlError(cached[1])
    return cached[2]


def post_json(
    http: httpx.Client,
    url: str,
    *,
    headers: dict[str, str],
    body: dict[str, Any],
    config: ProviderConfig,
    label: str,
    sleep: Sleep = time.sleep,
) -> dict[str, Any]:
    """POST `body` and return the JSON object the provider answered. Retries up to
    `config.max_retries` times, then raises ProviderError; `label` names the provider in messages
    (never the API key, which is also scrubbed from any error text the provider echoes)."""
    attempt = 0
    while True:
        retry_after = None
        try:
            target, sent_headers = url, headers
            extensions: dict[str, Any] = {}
            if config.check_address:
                # To the address the guard approved (a second DNS answer cannot redirect the call:
                # rebinding), with the Host header and TLS name of the real host.
                sent_headers = dict(headers)
                target, extensions = pinned(url, check_provider_url(url)[0], sent_headers)
            response = http.post(
                target, json=body, headers=sent_headers, timeout=config.timeout_seconds, extensions=extensions
            )
        except UnresolvableHostError as exc:  # a DNS failure: worth another try, like a refused connection
            error = ProviderError("connection", f"could not reach {label}: {exc}", retryable=True)
        except UnsafeUrlError as exc:
            raise ProviderError("unsafe_url", f"{label} may not be called: {exc}") from None
        except httpx.TimeoutException:
            error = ProviderError(
                "timeout", f"{label} did not answer within {config.timeout_seconds:g} s", retryable=True
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ProviderError("connection", f"{label} has an unusable URL: {exc}") from exc
        except httpx.TransportError as exc:
            error = ProviderError("connection", f"could not reach {label}: {type(exc).__name__}: {exc}", retryable=True)
        else:
            if response.is_success:
                return _decode(response, label)
            error = _status_error(response, label, config.api_key)
            retry_after = _retry_after(response)
        if not error.retryable or attempt >= config.max_retries:
            if attempt:
                raise ProviderError(
                    error.type,
                    f"{error.message} (gave up after {attempt + 1} attempts)",
                    status=error.status,
                    retryable=error.retryable,
                )
            raise error
        sleep(backoff_seconds(attempt, retry_after))
        attempt += 1


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """How long to wait before retry number `attempt + 1`: the provider's Retry-After when it sent
    one (capped), else exponential backoff with jitter so that many workers do not retry in step."""
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_MAX_SECONDS)
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret


def _decode(response: httpx.Response, label: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProviderError(
            "bad_response",
            f"{label} answered {response.status_code} with a body that is not a JSON object: {response.text[:200]!r}",
            status=response.status_code,
        )
    return data


def _status_error(response: httpx.Response, label: str, api_key: str) -> ProviderError:
    status = response.status_code
    detail = _error_detail(response)
    if api_key:
        detail = detail.replace(api_key, "[api key]")
    if status == 429:
        type_, retryable = "rate_limited", True
    elif status == 408:
        type_, retryable = "timeout", True
    elif status >= 500:
        type_, retryable = "server_error", True
    elif status in (401, 403):
        type_, retryable = "authentication", False
    else:
        type_, retryable = "bad_request", False
    return ProviderError(type_, f"{label} answered {status}: {detail}", status=status, retryable=retryable)


def _error_detail(response: httpx.Response) -> str:
    """The provider's own error message: OpenAI's and Anthropic's {"error": {"type", "message"}},
    else the shapes other OpenAI-compatible servers use, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            kind = error.get("code") or error.get("type")  # OpenAI's code is the more specific
            return f"{error['message']} ({kind})" if kind else str(error["message"])
        for candidate in (error, data.get("message"), data.get("detail")):
            if isinstance(candidate, str) and candidate:
                return candidate
    return response.text[:300].strip() or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date)."""
    try:
        return max(float(response.headers["retry-after-ms"]) / 1000, 0.0)
    except (KeyError, ValueError):
        pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
