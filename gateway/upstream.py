"""The provider side of a gateway request: one pooled async HTTP client per event loop (so per
process under uvicorn), and the provider's failures as the statuses SDKs handle correctly.

The client is aiohttp's: on this path it costs a fifth of httpx's CPU per call (measured in
docs/BENCHMARKS.md, the gateway section), and a gateway process is CPU-bound. The SSRF guard's
decision is kept the same way as with httpx: the URL names the address the guard approved
(`tenants.net.pinned`), the Host header the real host, and `server_hostname` the TLS name the
certificate is checked against; aiohttp keeps that name in its pool key, so a connection opened
for one host name is never reused for another at the same address.

The gateway never retries a provider itself: the client's SDK retries what is worth retrying
(429 with the provider's Retry-After, 502), each attempt reserving anew, so one call is never
paid for twice and a retry storm stays visible in the client's own logs.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx

from catalog.clients.transport import _error_detail, _retry_after
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.calls import Call

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()
MAX_CONNECTIONS = 2000  # as many provider calls at once as the process holds streams
KEEPALIVE_SECONDS = 30
TRANSPORT_ERRORS = (aiohttp.ClientError, OSError)


class StreamBrokenError(Exception):
    """The provider's stream broke off (a transport error or a read timeout mid-stream)."""


def session() -> aiohttp.ClientSession:
    """The running loop's pooled session (created on first use)."""
    loop = asyncio.get_running_loop()
    http = _sessions.get(loop)
    if http is None or http.closed:
        connector = aiohttp.TCPConnector(
            limit=MAX_CONNECTIONS, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=60
        )
        # Bodies are sent as given: no cookie jar (calls of different tenants share the session),
        # no proxy from the environment, no redirects followed.
        http = _sessions[loop] = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )
    return http


@atexit.register
def _close_sessions() -> None:
    """Close each loop's session at exit (aiohttp warns about an unclosed one, and by then the
    logging it warns through is gone). A loop that already closed took its sockets with it:
    its session is only marked closed."""

    async def closed(waiter: Any) -> None:
        await waiter

    for loop, http in list(_sessions.items()):
        if http.closed or loop.is_running():  # a daemon thread's loop still running: left to it
            continue
        with contextlib.suppress(Exception):
            if not loop.is_closed():
                loop.run_until_complete(http.close())
                continue
            connector = http.connector
            http.detach()
            if connector is not None:
                asyncio.run(closed(connector.close()))
    _sessions.clear()


def _timeout(call: Call) -> aiohttp.ClientTimeout:
    seconds = call.config.timeout_seconds
    return aiohttp.ClientTimeout(total=None, sock_connect=min(seconds, 10.0), sock_read=seconds)


def _send(call: Call, path: str = "") -> Any:
    """The request as an aiohttp context manager (the pinned URL, Host header and TLS name)."""
    return session().post(
        call.url + path,
        data=json.dumps(call.body).encode(),
        headers=call.headers,
        timeout=_timeout(call),
        server_hostname=call.extensions.get("sni_hostname"),
        allow_redirects=False,
    )


async def _failure(call: Call, response: aiohttp.ClientResponse) -> GatewayError:
    """A provider's error status read whole and mapped (through httpx's Response, which the
    provider clients' helpers read)."""
    try:
        body = await response.read()
    except (*TRANSPORT_ERRORS, TimeoutError):
        body = b""
    answered = httpx.Response(response.status, headers=list(response.headers.items()), content=body, request=None)
    return status_error(call, answered)


async def post(call: Call, path: str = "") -> dict[str, Any]:
    """POST the call's body to the provider and return its JSON object, or a GatewayError."""
    try:
        async with _send(call, path) as response:
            if response.status >= 300:
                raise await _failure(call, response)
            raw = await response.read()
    except TimeoutError:
        raise _timed_out(call) from None
    except TRANSPORT_ERRORS as exc:
        raise _unreachable(call, exc) from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise GatewayError(
            502,
            "upstream_bad_response",
            f"The provider {call.model.provider.name} answered with a body that is not a JSON object.",
        )
    return data


class Streamed:
    """A provider's streamed answer, read line by line (no line-length limit: a Responses API
    `response.completed` event carries the whole response on one line)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def aiter_lines(self) -> AsyncIterator[str]:
        pending = b""
        try:
            async for chunk in self._response.content.iter_any():
                pending += chunk
                if b"\n" not in chunk:
                    continue
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.rstrip(b"\r").decode("utf-8", "replace")
        except (*TRANSPORT_ERRORS, TimeoutError) as exc:
            raise StreamBrokenError(type(exc).__name__) from None
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", "replace")


@contextlib.asynccontextmanager
async def stream(call: Call) -> AsyncIterator[Streamed]:
    """The provider's streamed answer (status checked: a failure is a GatewayError before any
    byte reaches the client); closed when the block ends, also when the client left early."""
    try:
        response = await _send(call)
    except TimeoutError:
        raise _timed_out(call) from None
    except TRANSPORT_ERRORS as exc:
        raise _unreachable(call, exc) from None
    try:
        if response.status >= 300:
            raise await _failure(call, response)
        yield Streamed(response)
    finally:
        if response.content.at_eof():
            response.release()
        else:
            response.close()  # left early: a connection cannot be reused mid-body


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
