"""`GET /api/v1/approvals/{id}?wait=N`: answer a request's state, holding the answer until it
leaves `pending` or N seconds pass, without a thread or a database connection per waiter.

A waiter subscribes to the request's channel-layer group (channels_redis multiplexes every
waiter of a process over one Redis receive loop) and sleeps on it; the decision's after-commit
push wakes it. Its few database reads run in the event loop's shared thread pool, each closing
its connection afterwards as a request would, so 500 waiters hold no connection while they wait.

Django's middleware stack is partly synchronous, and a synchronous middleware in front of an
async view keeps one thread blocked for the whole response: waiting requests are therefore
served by `LongPollRouter`, a plain ASGI application in front of Django (config/asgi.py), and the
Django view (`approvals.api.approval_detail`, the same code) serves the rest.

Both count against the key's API rate limit like any API view (429 with `retry_after` and a
Retry-After header), and one key holds at most APPROVAL_MAX_WAITERS_PER_KEY (default 100)
waiting requests open per web process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.http import Http404
from redis.exceptions import RedisError
from rest_framework import exceptions

from approvals import events, selectors
from approvals.models import ApprovalRequest
from approvals.serializers import ApprovalSerializer
from tenants.authentication import authenticate_key
from tenants.errors import ServiceError, error_body
from tenants.models import ApiKey, Scope, Tenant
from tenants.throttling import key_throttle_wait

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 60
# What a channel layer on Redis raises when Redis is unreachable or its connection pool is full.
LAYER_ERRORS = (RedisError, OSError)
RECEIVE_RETRIES = 3
_waiters: dict[str, int] = {}  # key id -> requests of that key waiting now, in this process
# Any of these lets a key read a request (the client that asked, a reviewer, a reader).
READ_SCOPES = (Scope.APPROVALS_WRITE, Scope.APPROVALS_DECIDE, Scope.READ)
PATH = re.compile(r"^/api/v1/approvals/(?P<pk>[^/.]+)/?$")

type Answer = tuple[int, dict[str, Any]]


def _closing[T](fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` as a request would: stale connections closed before, and after."""
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


async def pooled[T](fn: Callable[..., T], *args: Any) -> T:
    """`fn` in the loop's shared thread pool (thread_sensitive=False), not in a thread of this
    request's own, with its connection closed after it as at the end of a request."""
    return await sync_to_async(_closing, thread_sensitive=False)(fn, *args)


async def in_request[T](fn: Callable[..., T], *args: Any) -> T:
    """`fn` in the request's own thread, whose connection Django manages (the Django view)."""
    return await sync_to_async(fn)(*args)


def _authenticate(authorization: str) -> ApiKey:
    header = authorization.split()
    if not header or header[0].lower() != "bearer":
        raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
    if len(header) != 2:
        raise exceptions.AuthenticationFailed("Malformed Authorization header: use `Bearer <api key>`.")
    return authenticate_key(header[1])


def _read(tenant: Tenant, pk: str) -> dict[str, Any]:
    return dict(ApprovalSerializer(selectors.get_approval_for_tenant(tenant, pk)).data)


def parse_wait(raw: str) -> float | None:
    """Seconds to wait, or None when `raw` is not a number from 0 to MAX_WAIT_SECONDS."""
    try:
        wait = float(raw or "0")
    except ValueError:
        return None
    return wait if 0 <= wait <= MAX_WAIT_SECONDS else None


async def answer(
    *,
    authorization: str,
    pk: str,
    raw_wait: str,
    disconnected: Awaitable[Any] | None = None,
    db: Callable[..., Awaitable[Any]] = pooled,
) -> Answer:
    """The status and JSON body of `GET /api/v1/approvals/{pk}?wait=...` (errors in the API's
    shape). `db` runs each database read; `disconnected` resolves when the client leaves."""
    _db = db
    try:
        key = await _db(_authenticate, authorization)
    except exceptions.NotAuthenticated as exc:
        return 401, error_body("not_authenticated", str(exc.detail))
    except exceptions.AuthenticationFailed as exc:
        return 401, error_body("authentication_failed", str(exc.detail))
    except ServiceError as exc:
        return exc.status_code, error_body(exc.type, exc.message)
    if not any(key.has_scope(s) for s in READ_SCOPES):
        return 403, error_body("permission_denied", "This API key lacks the `approvals:write` or `read` scope.")
    throttled = await _db(key_throttle_wait, key)
    if throttled is not None:
        return 429, error_body(
            "throttled",
            f"Request was throttled. Expected available in {math.ceil(throttled)} seconds.",
            retry_after=math.ceil(throttled),
        )
    wait = parse_wait(raw_wait)
    if wait is None:
        return 400, error_body("validation_error", f"wait: a number of seconds from 0 to {MAX_WAIT_SECONDS}.")
    try:
        body = await _db(_read, key.tenant, pk)
    except Http404:
        return 404, error_body("not_found", "Not found.")
    layer = get_channel_layer()
    if body["status"] != ApprovalRequest.Status.PENDING or wait == 0 or layer is None:
        return 200, body
    cap = settings.APPROVAL_MAX_WAITERS_PER_KEY
    waiter = str(key.pk)
    if _waiters.get(waiter, 0) >= cap:
        return 429, error_body(
            "throttled",
            f"This API key already has {cap} requests waiting here; wait for one to answer (or poll without `wait`).",
            retry_after=1,
        )
    _waiters[waiter] = _waiters.get(waiter, 0) + 1
    try:
        return await _wait_for_decision(key, pk, body, wait, disconnected, _db, layer)
    finally:
        _waiters[waiter] -= 1
        if not _waiters[waiter]:
            del _waiters[waiter]


async def _wait_for_decision(
    key: ApiKey,
    pk: str,
    body: dict[str, Any],
    wait: float,
    disconnected: Awaitable[Any] | None,
    _db: Callable[..., Awaitable[Any]],
    layer: Any,
) -> Answer:
    group = events.waiters_group(body["id"])
    try:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
    except LAYER_ERRORS:
        logger.exception("approval %s: could not subscribe a waiter", body["id"])
        return _unavailable()
    try:
        # Read again after subscribing: a decision committed in between is not missed.
        body = await _db(_read, key.tenant, pk)
        if body["status"] == ApprovalRequest.Status.PENDING:
            left = asyncio.ensure_future(disconnected) if disconnected is not None else None
            try:
                ended = await _receive_until(layer, channel, wait, left, lambda: _db(_read, key.tenant, pk))
            finally:
                if left is not None:
                    left.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await left
            if ended is not None:
                return ended
            body = await _db(_read, key.tenant, pk)
    finally:
        try:
            await layer.group_discard(group, channel)
        except LAYER_ERRORS:  # the group's entry expires on its own (channels_redis group_expiry)
            logger.warning("approval %s: could not unsubscribe a waiter", body["id"])
    return 200, body


async def _receive_until(
    layer: Any,
    channel: str,
    wait: float,
    left: asyncio.Future[Any] | None,
    read: Callable[[], Awaitable[dict[str, Any]]],
) -> Answer | None:
    """Sleep on `channel` until a message (the decision's push) or `wait` seconds, then None (the
    caller reads the request). A receive that fails (a Redis timeout or dropped connection) is
    retried after reading the request again, since its message may be lost, up to
    RECEIVE_RETRIES times; then 503. The client leaving (`left`) ends the wait with 499."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    failures = 0
    while (remaining := deadline - loop.time()) > 0:
        receiving = asyncio.ensure_future(layer.receive(channel))
        waits: list[asyncio.Future[Any]] = [receiving] if left is None else [receiving, left]
        try:
            done, _ = await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receiving
        if left is not None and left in done:
            return 499, {}  # the client left: nobody to answer
        if receiving not in done or receiving.cancelled() or receiving.exception() is None:
            return None  # woken by a message, or the wait ran out
        failures += 1
        logger.warning("a waiter's receive on %s failed (%d): %r", channel, failures, receiving.exception())
        if failures > RECEIVE_RETRIES:
            return _unavailable()
        body = await read()
        if body["status"] != ApprovalRequest.Status.PENDING:
            return 200, body
    return None


def _unavailable() -> Answer:
    """The channel layer (Redis) failed: a clear, retryable answer, never a bare 500."""
    return 503, error_body(
        "unavailable",
        "The wait could not be set up (the channel layer is unavailable); poll again shortly.",
        retry_after=1,
    )


POLL_SECONDS = 1.0  # how often `decisions_of` reads again when the channel layer fails

type Sleep = Callable[[float, asyncio.Event | None], Awaitable[bool]]


@contextlib.asynccontextmanager
async def decisions_of(approval_ids: Sequence[object]) -> AsyncIterator[Sleep]:
    """One channel subscribed to the waiters' groups of several requests (the push that wakes a
    long-poll GET), for a caller that holds something while they wait (gateway.holds). Yields
    `sleep(seconds, left)`, which returns when one of the requests may have changed, `seconds`
    have passed or `left` is set (True then); the caller reads the requests after each sleep,
    since a push only says "look again". Without a channel layer, or once Redis fails, `sleep`
    waits POLL_SECONDS at most, so the caller falls back to polling instead of failing."""
    layer = get_channel_layer()
    channel = ""
    groups = [events.waiters_group(pk) for pk in approval_ids]
    if layer is not None:
        try:
            channel = await layer.new_channel()
            for group in groups:
                await layer.group_add(group, channel)
        except LAYER_ERRORS:
            logger.exception("approvals %s: could not subscribe; polling instead", groups)
    listening = bool(channel)

    async def sleep(seconds: float, left: asyncio.Event | None = None) -> bool:
        nonlocal listening
        waking = asyncio.ensure_future(
            layer.receive(channel) if listening and layer is not None else asyncio.sleep(min(seconds, POLL_SECONDS))
        )
        leaving = asyncio.ensure_future(left.wait()) if left is not None else None
        waits = [waking] if leaving is None else [waking, leaving]
        try:
            await asyncio.wait(waits, timeout=max(seconds, 0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                if not waiting.done():
                    waiting.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await waiting
        if listening and waking.done() and not waking.cancelled() and waking.exception() is not None:
            logger.warning("approvals %s: a receive failed (%r); polling instead", groups, waking.exception())
            listening = False
        return left is not None and left.is_set()

    try:
        yield sleep
    finally:
        if channel and layer is not None:
            for group in groups:
                try:
                    await layer.group_discard(group, channel)
                except LAYER_ERRORS:  # the group's entry expires on its own (channels_redis group_expiry)
                    logger.warning("%s: could not unsubscribe a waiter", group)


type Scope_ = dict[str, Any]
type Receive = Callable[[], Awaitable[dict[str, Any]]]
type Send = Callable[[dict[str, Any]], Awaitable[None]]


class LongPollRouter:
    """ASGI: `GET /api/v1/approvals/{id}` with `wait` goes to `answer`; everything else to `app`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope_, receive: Receive, send: Send) -> None:
        match = PATH.match(scope.get("path", "")) if scope.get("type") == "http" else None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")) if match else {}
        if match is None or scope.get("method") != "GET" or "wait" not in query:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        disconnected = _disconnect(receive)
        try:
            status, body = await answer(
                authorization=headers.get("authorization", ""),
                pk=match["pk"],
                raw_wait=query["wait"][-1],
                disconnected=disconnected,
            )
        finally:
            disconnected.close()  # never awaited when the answer came before any wait
        if status == 499:
            return
        payload = json.dumps(body).encode()
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"cache-control", b"no-store"),
        ]
        if status == 401:
            response_headers.append((b"www-authenticate", b'Bearer realm="api"'))
        if status in (429, 503):
            response_headers.append((b"retry-after", str(body["error"]["retry_after"]).encode()))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})


async def _disconnect(receive: Receive) -> None:
    """Returns when the client disconnects (the request has no body to read)."""
    while (await receive())["type"] != "http.disconnect":
        pass
