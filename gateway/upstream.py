"""The provider side of a gateway request: one pooled async HTTP client per event loop (so per
process under uvicorn), and the provider's failures as the statuses SDKs handle correctly.

The gateway never retries a provider itself: the client's SDK retries what is worth retrying
(429 with the provider's Retry-After, 502), each attempt reserving anew, so one call is never
paid for twice and a retry storm stays visible in the client's own logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from catalog.clients.transport import _error_detail, _retry_after
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.calls import Call

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()
LIMITS = httpx.Limits(max_connections=2000, max_keepalive_connections=256, keepalive_expiry=30)


def client() -> httpx.AsyncClient:
    """The running loop's pooled client (created on first use)."""
    loop = asyncio.get_running_loop()
    http = _clients.get(loop)
    if http is None or http.is_closed:
        http = _clients[loop] = httpx.AsyncClient(limits=LIMITS, timeout=httpx.Timeout(60.0))
    return http


def _timeout(call: Call) -> httpx.Timeout:
    seconds = call.config.timeout_seconds
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


async def post(call: Call, path: str = "") -> dict[str, Any]:
    """POST the call's body to the provider and return its JSON object, or a GatewayError."""
    try:
        response = await client().post(
            call.url + path,
            content=json.dumps(call.body).encode(),
            headers=call.headers,
            timeout=_timeout(call),
            extensions=call.extensions,
        )
    except httpx.TimeoutException:
        raise _timed_out(call) from None
    except httpx.TransportError as exc:
        raise _unreachable(call, exc) from None
    if not response.is_success:
        raise status_error(call, response)
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise GatewayError(
            502,
            "upstream_bad_response",
            f"The provider {call.model.provider.name} answered with a body that is not a JSON object.",
        )
    return data


@contextlib.asynccontextmanager
async def stream(call: Call) -> AsyncIterator[httpx.Response]:
    """The provider's streamed answer (status checked: a failure is a GatewayError before any
    byte reaches the client); closed when the block ends, also when the client left early."""
    http = client()
    request = http.build_request(
        "POST",
        call.url,
        content=json.dumps(call.body).encode(),
        headers=call.headers,
        timeout=_timeout(call),
        extensions=call.extensions,
    )
    try:
        response = await http.send(request, stream=True)
    except httpx.TimeoutException:
        raise _timed_out(call) from None
    except httpx.TransportError as exc:
        raise _unreachable(call, exc) from None
    try:
        if not response.is_success:
            await response.aread()
            raise status_error(call, response)
        yield response
    finally:
        await response.aclose()


def status_error(call: Call, response: httpx.Response) -> GatewayError:
    """A provider's error status as the client's: its 429 with Retry-After (retryable), its
    client errors as they are (the request was the client's), its credential and server failures
    as 502 (nothing the client can fix by changing its request)."""
    name = call.model.provider.name
    status = response.status_code
    detail = _error_detail(response)
    if call.config.api_key:
        detail = detail.replace(call.config.api_key, "[api key]")
    if status == 429:
        return GatewayError(
            429,
            "upstream_rate_limited",
            f"The provider {name} is rate limiting: {detail}",
            retry_after=_retry_after(response) or 1.0,
            retry=True,
        )
    if status == 408:
        return GatewayError(504, "upstream_timeout", f"The provider {name} timed out: {detail}", retry=True)
    if status in (401, 403):
        return GatewayError(
            502,
            "upstream_authentication",
            f"The provider {name} refused the console's credentials ({status}): {detail}. "
            "An admin must fix the provider's API key.",
        )
    if status >= 500:
        return GatewayError(502, "upstream_error", f"The provider {name} failed ({status}): {detail}", retry=True)
    code = 404 if status == 404 else 400
    return GatewayError(code, "upstream_rejected", f"The provider {name} refused the request ({status}): {detail}")


def _timed_out(call: Call) -> GatewayError:
    return GatewayError(
        504,
        "upstream_timeout",
        f"The provider {call.model.provider.name} did not answer within {call.config.timeout_seconds:g} s.",
        retry=True,
    )


def _unreachable(call: Call, exc: Exception) -> GatewayError:
    return GatewayError(
        502,
        "upstream_unreachable",
        f"Could not reach the provider {call.model.provider.name}: {type(exc).__name__}: {exc}",
        retry=True,
    )
