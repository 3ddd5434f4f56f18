"""An async fake LLM provider on loopback for tests and benchmarks: OpenAI's Chat Completions,
Responses and Embeddings APIs and Anthropic's Messages API, streaming and not, over real HTTP
(a raw ASGI app under uvicorn in a thread), answering from a script and recording what it was sent.

    with FakeUpstream() as fake:
        fake.queue(Scripted("Hello there", chunks=4),
                   Scripted(tool_calls=[("lookup_order", {"order_number": "A-1001"}),
                                        ("lookup_order", {"order_number": "A-1002"})]),
                   error(429, "Slow down", retry_after=1),
                   Scripted("cut", drop_after_chunks=2))
        OpenAI(base_url=fake.base_url, api_key="x").chat.completions.create(...)   # .../v1
        Anthropic(base_url=fake.root_url, api_key="x").messages.create(...)        # no /v1
        fake.requests[0].body["messages"], fake.requests[0].headers["authorization"]

A `Scripted` reply is neutral: it is rendered in the wire format of whichever API was called
(chat.completion or its SSE chunks, a Responses `response` or its event stream, an Anthropic
`message` or its event stream); `error(...)` answers in that API's error shape. Every POST takes the
next queued reply (embeddings use only its `usage`, `delay` and `model`); when the queue is empty,
`handler(body, path)` answers if given, else an echo of the last user message's text. Embeddings are
deterministic vectors (8 dimensions unless the request asks for `dimensions`) hashed from the input.
`latency` delays every answer; `api_key`, when set, is required (Bearer or x-api-key), else 401.
A stream whose client hangs up ends at its next event (slow ones: `chunk_delay`).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import importlib.util
import json
import logging
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from itertools import count
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MODEL = "fake-model-2024-01-01"
_ids = count(1)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass(frozen=True)
class Scripted:
    """One model answer, rendered into whichever API was called. Tool-call arguments given as a str
    are sent verbatim (to script malformed JSON); dicts are encoded. `usage` may use either OpenAI's
    (prompt_tokens/completion_tokens) or the neutral/Anthropic names (input_tokens/output_tokens);
    without it, both are estimated at ~4 characters a token. `chunks`: how many pieces the text and
    each tool call's arguments are streamed in. `drop_after_chunks`: on a stream, send that many
    events and then close the connection without finishing."""

    content: str | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    chunks: int = 3
    delay: float = 0.0
    chunk_delay: float = 0.0
    drop_after_chunks: int | None = None
    model: str | None = None


@dataclass(frozen=True)
class ErrorReply:
    status: int
    message: str
    retry_after: float | None = None
    type: str | None = None
    code: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # the decoded JSON, or None


Reply = Scripted | ErrorReply
Handler = Callable[[dict[str, Any], str], "Reply | str"]


def error(
    status: int, message: str, *, retry_after: float | None = None, type: str | None = None, code: str | None = None
) -> ErrorReply:
    """An error answered in the shape of the API called, e.g. error(429, "Slow down", retry_after=1).
    `type` defaults by status (OpenAI: invalid_request_error, rate_limit_exceeded...; Anthropic:
    rate_limit_error, overloaded_error...)."""
    return ErrorReply(status, message, retry_after, type, code)


_OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error"}
_OPENAI_TYPES |= {404: "invalid_request_error", 429: "requests"}
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error"}
_ANTHROPIC_TYPES |= {404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}

# uvicorn logs "ASGI callable returned without completing response" for a stream we cut on purpose
# (drop_after_chunks); the flag lets that one record through the filter silently, no other.
_dropping: contextvars.ContextVar[bool] = contextvars.ContextVar("fake_upstream_dropping", default=False)


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _dropping.get()


_drop_filter = _DropFilter()


class _DroppedError(Exception):
    pass


class FakeUpstream:
    """The server, started on a free loopback port by `start()` or `with`. `base_url` ends in /v1
    (the OpenAI SDK's base), `root_url` does not (the Anthropic SDK's base)."""

    def __init__(
        self,
        *,
        handler: Handler | None = None,
        latency: float = 0.0,
        api_key: str | None = None,
        models: tuple[str, ...] = (DEFAULT_MODEL,),
    ) -> None:
        self.handler = handler
        self.latency = latency
        self.api_key = api_key
        self.models = models
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # --- the API of FakeOpenAI -------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake server is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def fail(self, status: int, *, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` POSTs with `status` (429 and 5xx exercise retries)."""
        self.queue(*[error(status, f"Fake error {status}", retry_after=retry_after)] * times)

    def start(self) -> FakeUpstream:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self,
            log_level="warning",
            lifespan="off",
            access_log=False,
            loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            http="httptools" if importlib.util.find_spec("httptools") else "h11",
            timeout_graceful_shutdown=1,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(_drop_filter)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-upstream", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._server = None
        self._port = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body))
        api = _API.get(path)
        anthropic = api == "messages" or (api is None and "anthropic-version" in headers)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self.api_key is not None and self.api_key not in (
            headers.get("authorization", "").removeprefix("Bearer "),
            headers.get("x-api-key"),
        ):
            await _error(send, error(401, "Incorrect API key provided.", code="invalid_api_key"), anthropic)
            return
        if method == "GET" and path == "/v1/models":
            await _json(send, 200, self._models(anthropic))
            return
        if api is None or method != "POST":
            await _error(send, error(404, f"Invalid URL ({method} {path})"), anthropic)
            return
        if not isinstance(body, dict):
            await _error(send, error(400, "We could not parse the JSON body of your request."), anthropic)
            return
        reply = self._next(body, path)
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        if isinstance(reply, ErrorReply):
            await _error(send, reply, anthropic)
            return
        render = _RENDER[api]
        # A real provider stops generating when its client hangs up: so does a stream here, at its
        # next event (uvicorn's send drops what is sent to a client that has gone, silently).
        gone = asyncio.ensure_future(receive())  # done only with http.disconnect: the body was read

        async def send_while_connected(message: Message) -> None:
            if gone.done():
                raise _DroppedError
            await send(message)

        try:
            await render(send_while_connected, body, reply)
        except _DroppedError:
            _dropping.set(True)  # return with the response unfinished: uvicorn closes the connection
        finally:
            gone.cancel()

    def _next(self, body: dict[str, Any], path: str) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        if self.handler is not None:
            reply = self.handler(body, path)
            return Scripted(reply) if isinstance(reply, str) else reply
        return Scripted(f"echo: {_last_user_text(body)}")

    def _models(self, anthropic: bool) -> dict[str, Any]:
        if anthropic:
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2024-01-01T00:00:00Z"} for m in self.models
            ]
            return {"data": data, "has_more": False, "first_id": self.models[0], "last_id": self.models[-1]}
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models],
        }


# --- helpers ------------------------------------------------------------------------------------


async def _json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = _dumps(payload).encode()
    hdrs = [*_JSON, (b"content-length", str(len(data)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": data})


async def _error(send: Send, reply: ErrorReply, anthropic: bool) -> None:
    headers = [(b"x-request-id", f"req_fake{next(_ids)}".encode())]
    if reply.retry_after is not None:
        headers.append((b"retry-after", f"{reply.retry_after:g}".encode()))
    if anthropic:
        kind = reply.type or _ANTHROPIC_TYPES.get(reply.status, "api_error")
        payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": reply.message}}
    else:
        kind = reply.type or _OPENAI_TYPES.get(reply.status, "server_error")
        code = reply.code or ("rate_limit_exceeded" if reply.status == 429 else None)
        payload = {"error": {"message": reply.message, "type": kind, "param": None, "code": code}}
    await _json(send, reply.status, payload, headers)


class _Stream:
    """An SSE response: counts the events it sends, to cut the connection after `drop_after_chunks`."""

    def __init__(self, send: Send, reply: Scripted) -> None:
        self.send = send
        self.left = reply.drop_after_chunks
        self.pause = reply.chunk_delay
        self.started = False

    async def event(self, data: str, name: str | None = None) -> None:
        if self.left is not None:
            if self.left <= 0:
                raise _DroppedError
            self.left -= 1
        if not self.started:
            self.started = True
            await self.send({"type": "http.response.start", "status": 200, "headers": _SSE})
        elif self.pause > 0:
            await asyncio.sleep(self.pause)
        line = f"event: {name}\ndata: {data}\n\n" if name else f"data: {data}\n\n"
        await self.send({"type": "http.response.body", "body": line.encode(), "more_body": True})

    async def close(self) -> None:
        await self.send({"type": "http.response.body", "body": b""})


def _pieces(text: str, n: int) -> list[str]:
    """`text` in `n` nearly equal pieces (fewer if it is shorter); [] for ""."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size, extra = divmod(len(text), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def _arguments(args: dict[str, Any] | str) -> str:
    return args if isinstance(args, str) else _dumps(args)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _last_user_text(body: dict[str, Any]) -> str:
    items = body.get("messages")
    if items is None:
        items = body.get("input")
        if isinstance(items, str):
            return items
    if not isinstance(items, list):
        return ""
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return _text_of(item.get("content"))
    return ""


def _tokens(reply: Scripted, body: dict[str, Any]) -> tuple[int, int]:
    """(input, output) tokens: the scripted usage, else ~4 characters a token."""
    usage = reply.usage or {}
    given_in = usage.get("input_tokens", usage.get("prompt_tokens"))
    given_out = usage.get("output_tokens", usage.get("completion_tokens"))
    if given_in is None:
        prompt = body.get("messages", body.get("input", ""))
        given_in = max(1, len(prompt if isinstance(prompt, str) else _dumps(prompt)) // 4)
    if given_out is None:
        produced = len(reply.content or "") + sum(len(_arguments(a)) + len(n) for n, a in reply.tool_calls)
        given_out = max(1, produced // 4)
    return int(given_in), int(given_out)


def _model(reply: Scripted, body: dict[str, Any]) -> str:
    return reply.model or str(body.get("model") or DEFAULT_MODEL)


# --- Chat Completions ---------------------------------------------------------------------------


def _chat_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


async def _chat(send: Send, body: dict[str, Any], reply: Scripted) -> None:
    n = next(_ids)
    model, created = _model(reply, body), int(time.time())
    prompt, completion = _tokens(reply, body)
    finish = "tool_calls" if reply.tool_calls else "stop"
    call_ids = [f"call_fake{n}_{i}" for i in range(len(reply.tool_calls))]
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None, "annotations": []}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": _arguments(args)}}
                for cid, (name, args) in zip(call_ids, reply.tool_calls, strict=True)
            ]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        await _json(
            send,
            200,
            {
                "id": f"chatcmpl-fake{n}",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": _chat_usage(prompt, completion),
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            },
        )
        return
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    head = (
        f'{{"id":"chatcmpl-fake{n}","object":"chat.completion.chunk","created":{created},'
        f'"model":{_dumps(model)},"system_fingerprint":"fp_fake","service_tier":"default",'
    )
    tail = ',"usage":null}' if include_usage else "}"
    stream = _Stream(send, reply)

    async def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        await stream.event(f'{head}"choices":[{_dumps(choice)}]{tail}')

    await chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in _pieces(reply.content or "", reply.chunks):
        await chunk({"content": piece})
    for i, (cid, (name, args)) in enumerate(zip(call_ids, reply.tool_calls, strict=True)):
        start = {"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
        await chunk({"tool_calls": [start]})
        for piece in _pieces(_arguments(args), reply.chunks):
            await chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    await chunk({}, finish)
    if include_usage:
        await stream.event(f'{head}"choices":[],"usage":{_dumps(_chat_usage(prompt, completion))}}}')
    await stream.event("[DONE]")
    await stream.close()


# --- Responses ----------------------------------------------------------------------------------


def _response(
    body: dict[str, Any], rid: str, model: str, created: int, status: str, output: list[Any], usage: Any
) -> dict[str, Any]:
    tools = body.get("tools")
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools if isinstance(tools, list) else [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


async def _responses(send: Send, body: dict[str, Any], reply: Scripted) -> None:
    n = next(_ids)
    rid, model, created = f"resp_fake{n}", _model(reply, body), int(time.time())
    prompt, completion = _tokens(reply, body)
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }
    text_part = {"type": "output_text", "text": reply.content or "", "annotations": [], "logprobs": []}
    message = {
        "type": "message",
        "id": f"msg_fake{n}",
        "status": "completed",
        "role": "assistant",
        "content": [text_part],
    }
    calls: list[dict[str, Any]] = [
        {
            "type": "function_call",
            "id": f"fc_fake{n}_{i}",
            "call_id": f"call_fake{n}_{i}",
            "name": name,
            "arguments": _arguments(args),
            "status": "completed",
        }
        for i, (name, args) in enumerate(reply.tool_calls)
    ]
    output: list[dict[str, Any]] = ([message] if reply.content is not None else []) + calls
    if not body.get("stream"):
        await _json(send, 200, _response(body, rid, model, created, "completed", output, usage))
        return
    stream = _Stream(send, reply)
    seq = count()

    async def event(kind: str, **fields: Any) -> None:
        await stream.event(_dumps({"type": kind, "sequence_number": next(seq), **fields}), kind)

    await event("response.created", response=_response(body, rid, model, created, "in_progress", [], None))
    await event("response.in_progress", response=_response(body, rid, model, created, "in_progress", [], None))
    for index, item in enumerate(output):
        iid = item["id"]
        if item["type"] == "message":
            await event(
                "response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []}
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            where = {"item_id": iid, "output_index": index, "content_index": 0}
            await event("response.content_part.added", **where, part=part)
            for piece in _pieces(reply.content or "", reply.chunks):
                await event("response.output_text.delta", **where, delta=piece, logprobs=[])
            await event("response.output_text.done", **where, text=reply.content or "", logprobs=[])
            await event("response.content_part.done", **where, part=text_part)
        else:
            added = {**item, "arguments": "", "status": "in_progress"}
            await event("response.output_item.added", output_index=index, item=added)
            for piece in _pieces(item["arguments"], reply.chunks):
                await event("response.function_call_arguments.delta", item_id=iid, output_index=index, delta=piece)
            await event(
                "response.function_call_arguments.done",
                item_id=iid,
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        await event("response.output_item.done", output_index=index, item=item)
    await event("response.completed", response=_response(body, rid, model, created, "completed", output, usage))
    await stream.close()


# --- Anthropic Messages -------------------------------------------------------------------------


def _tool_input(args: dict[str, Any] | str) -> Any:
    if isinstance(args, dict):
        return args
    try:
        return json.loads(args)
    except ValueError:
        return {}


async def _messages(send: Send, body: dict[str, Any], reply: Scripted) -> None:
    n = next(_ids)
    model = _model(reply, body)
    prompt, completion = _tokens(reply, body)
    stop = "tool_use" if reply.tool_calls else "end_turn"
    tool_ids = [f"toolu_fake{n}_{i}" for i in range(len(reply.tool_calls))]
    usage = {"input_tokens": prompt, "output_tokens": completion}
    usage |= {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.content}] if reply.content is not None else []
    blocks += [
        {"type": "tool_use", "id": tid, "name": name, "input": _tool_input(args)}
        for tid, (name, args) in zip(tool_ids, reply.tool_calls, strict=True)
    ]
    message = {
        "id": f"msg_fake{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        await _json(send, 200, message)
        return
    stream = _Stream(send, reply)

    async def event(kind: str, **fields: Any) -> None:
        await stream.event(_dumps({"type": kind, **fields}), kind)

    start_usage = {**usage, "output_tokens": 1}
    await event("message_start", message={**message, "content": [], "stop_reason": None, "usage": start_usage})
    index = 0
    if reply.content is not None:
        await event("content_block_start", index=0, content_block={"type": "text", "text": ""})
        await event("ping")
        for piece in _pieces(reply.content, reply.chunks):
            await event("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
        await event("content_block_stop", index=0)
        index = 1
    else:
        await event("ping")
    for i, (tid, (name, args)) in enumerate(zip(tool_ids, reply.tool_calls, strict=True)):
        block = {"type": "tool_use", "id": tid, "name": name, "input": {}}
        await event("content_block_start", index=index + i, content_block=block)
        for piece in _pieces(_arguments(args), reply.chunks):
            delta = {"type": "input_json_delta", "partial_json": piece}
            await event("content_block_delta", index=index + i, delta=delta)
        await event("content_block_stop", index=index + i)
    await event(
        "message_delta", delta={"stop_reason": stop, "stop_sequence": None}, usage={"output_tokens": completion}
    )
    await event("message_stop")
    await stream.close()


# --- Embeddings ---------------------------------------------------------------------------------


def _vector(text: str, dims: int) -> list[float]:
    """A unit vector of `dims` floats, the same for the same text."""
    words = struct.unpack(f"<{dims}I", hashlib.shake_256(text.encode()).digest(4 * dims))
    raw = [w / 2147483647.5 - 1.0 for w in words]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return [x / norm for x in raw]


async def _embeddings(send: Send, body: dict[str, Any], reply: Scripted) -> None:
    given = body.get("input")
    if isinstance(given, str) or (isinstance(given, list) and given and isinstance(given[0], int)):
        inputs: list[Any] = [given]
    elif isinstance(given, list) and given:
        inputs = given
    else:
        await _error(send, error(400, "'input' must be a non-empty string or list."), False)
        return
    dims = body.get("dimensions") or 8
    if not isinstance(dims, int) or not 1 <= dims <= 4096:
        await _error(send, error(400, "'dimensions' must be an integer from 1 to 4096."), False)
        return
    as_base64 = body.get("encoding_format") == "base64"
    data, tokens = [], 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else _dumps(item)
        tokens += len(item) if isinstance(item, list) else max(1, len(text) // 4)
        vector = _vector(text, dims)
        embedding: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    if reply.usage:
        tokens = int(reply.usage.get("prompt_tokens", reply.usage.get("input_tokens", tokens)))
    payload = {
        "object": "list",
        "data": data,
        "model": _model(reply, body),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    await _json(send, 200, payload)


_API = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/embeddings": "embeddings",
}
_RENDER: dict[str, Callable[[Send, dict[str, Any], Scripted], Awaitable[None]]] = {
    "chat": _chat,
    "responses": _responses,
    "messages": _messages,
    "embeddings": _embeddings,
}
