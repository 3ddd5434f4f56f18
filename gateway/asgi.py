"""The gateway's provider-shaped endpoints as a plain ASGI application in front of Django
(config/asgi.py), like the approvals long-poll: a model call may stream for minutes, and Django's
partly synchronous middleware would hold a thread for all of it. `GatewayRouter` serves the POST
endpoints below itself and hands every other request (pages, the REST API, `GET /v1/models`,
OTLP ingestion) to Django.

`Exchange` is one HTTP request and its answer: the body read with a size limit, JSON answers and
server-sent events, and whether the client is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from gateway.errors import GatewayError, Shape, invalid

logger = logging.getLogger(__name__)

type Scope = dict[str, Any]
type Receive = Callable[[], Awaitable[dict[str, Any]]]
type Send = Callable[[dict[str, Any]], Awaitable[None]]
type Handler = Callable[[Exchange], Awaitable[None]]


class Exchange:
    """One request to a gateway endpoint and its answer."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, *, shape: Shape = "openai") -> None:
        self.scope, self._receive, self._send = scope, receive, send
        self.shape: Shape = shape
        self.headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text
        self.started = False  # the response has begun: errors from now on are stream events
        self.disconnected = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self.extra_headers: list[tuple[bytes, bytes]] = []

    async def body(self) -> bytes:
        limit = settings.GATEWAY_MAX_BODY_BYTES
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise GatewayError(
                413, "request_too_large", f"The request body is over the gateway's limit of {limit} bytes."
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                raise GatewayError(499, "client_disconnected", "The client left before sending its request.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise GatewayError(
                    413, "request_too_large", f"The request body is over the gateway's limit of {limit} bytes."
                )
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        self._watcher = asyncio.ensure_future(self._watch())
        return b"".join(chunks)

    async def json(self) -> Any:
        raw = await self.body()
        content_type = self.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type not in ("application/json", "") and not content_type.endswith("+json"):
            raise invalid(f"Send the request as application/json, not {content_type}.")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid(f"The request body is not valid JSON: {exc}.") from None
        except RecursionError:
            raise invalid("The request body is nested too deeply.") from None

    async def _watch(self) -> None:
        with contextlib.suppress(Exception):
            while (await self._receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    # --- answers -----------------------------------------------------------------------------------

    async def send_json(self, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode()
        await self._start(
            status,
            [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *(headers or [])],
        )
        await self._send({"type": "http.response.body", "body": payload})

    async def send_error(self, error: GatewayError) -> None:
        if error.status == 499:
            return
        if self.started:
            await self.event(error.body(self.shape), event="error" if self.shape == "anthropic" else None)
            await self.end()
            return
        await self.send_json(error.status, error.body(self.shape), error.headers())

    async def start_events(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await self._start(
            200,
            [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                *(headers or []),
            ],
        )

    async def event(self, data: Any, *, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        prefix = f"event: {event}\n" if event else ""
        await self.raw(f"{prefix}data: {text}\n\n".encode())

    async def raw(self, payload: bytes) -> None:
        await self._send({"type": "http.response.body", "body": payload, "more_body": True})

    async def end(self) -> None:
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, *self.extra_headers, (b"x-content-type-options", b"nosniff")],
            }
        )


async def _conclude_failed(failure: GatewayError) -> None:
    """An endpoint failed unexpectedly after admitting its call: conclude it as failed, so its
    hold is settled for what was produced or released, not kept until the keeper's deadline."""
    from gateway import calls

    call = calls.current_call.get()
    if call is None or call.concluded:
        return
    try:
        calls.conclude(call, calls.Result(error=failure, status=500))
    except Exception:
        logger.exception("gateway: could not conclude call %s after its failure", call.request_id)


class GatewayRouter:
    """ASGI: the gateway's POST endpoints (ROUTES) here; everything else to `app` (Django)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from gateway import endpoints

        path = scope.get("path", "").rstrip("/") if scope.get("type") == "http" else ""
        route = endpoints.ROUTES.get(path)
        if route is None:
            await self.app(scope, receive, send)
            return
        handler, shape = route
        exchange = Exchange(scope, receive, send, shape=shape)
        try:
            if scope.get("method") != "POST":
                exchange.extra_headers.append((b"allow", b"POST"))
                raise GatewayError(405, "method_not_allowed", f"Use POST for {path}.")
            await handler(exchange)
        except GatewayError as error:
            await exchange.send_error(error)
        except (DatabaseError, RedisError):
            # The console's own stores failed (a restart, a dropped connection, no free
            # connection): nothing the client did, and a retry in a moment may well succeed.
            logger.exception("gateway %s: the database or Redis failed", path)
            failure = GatewayError(
                503,
                "console_unavailable",
                "The console's database or cache did not answer; retry in a moment.",
                retry_after=1.0,
                retry=True,
            )
            await _conclude_failed(failure)
            await exchange.send_error(failure)
        except Exception:
            logger.exception("gateway %s failed", path)
            failure = GatewayError(500, "internal_error", "The gateway failed on this request; it is logged.")
            await _conclude_failed(failure)
            await exchange.send_error(failure)
        finally:
            exchange.close()
