"""A small OpenAI-compatible server on loopback for tests and benchmarks: `POST /v1/chat/completions`
and `GET /v1/models` over real HTTP, answering from a script and recording what it was sent.

    with FakeOpenAI() as fake:
        fake.queue(completion(tool_calls=[("lookup_order", {"order_number": "A-1001"})]),
                   error(429, "Slow down", retry_after=1),
                   completion("Done."))
        client = OpenAICompatibleClient(ProviderConfig(kind="openai_compatible", base_url=fake.base_url))
        ...
        fake.requests[0].body["messages"]

Queued replies are used in order; when the queue is empty, `handler(body)` answers if given, else
an echo of the last user message. A reply is a Chat Completions dict (sent with 200) or a `Reply`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any

_ids = count(1)


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: a dict body is sent as JSON, a str or bytes as it is (e.g. malformed JSON)."""

    status: int = 200
    body: dict[str, Any] | str | bytes = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait first, on top of the server's latency


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # the decoded JSON, or None


Handler = Callable[[dict[str, Any]], dict[str, Any] | Reply]


def completion(
    content: str | None = None,
    *,
    tool_calls: list[tuple[str, dict[str, Any] | str]] | None = None,
    model: str = "fake-model-2024-01-01",
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """A Chat Completions response in OpenAI's shape. Tool-call arguments given as a str are sent
    verbatim (to script malformed JSON); dicts are encoded."""
    n = next(_ids)
    calls = [
        {
            "id": f"call_fake{n}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for i, (name, args) in enumerate(tool_calls or [])
    ]
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-fake{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": 20,
            "completion_tokens": 10,
            "total_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def error(
    status: int, message: str, *, type_: str | None = None, retry_after: float | None = None, code: str | None = None
) -> Reply:
    """An error in OpenAI's shape, e.g. error(429, "Rate limit reached", retry_after=1)."""
    default_type = {
        429: "requests",
        401: "invalid_request_error",
        400: "invalid_request_error",
        404: "invalid_request_error",
    }
    body = {
        "error": {
            "message": message,
            "type": type_ or default_type.get(status, "server_error"),
            "param": None,
            "code": code or ("rate_limit_exceeded" if status == 429 else None),
        }
    }
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    return Reply(status=status, body=body, headers=headers)


class FakeOpenAI:
    """The server, started on a free loopback port by `start()` or `with`; `base_url` ends in /v1.
    `latency` delays every answer; `api_key`, when set, is required as the Bearer token (else 401)."""

    def __init__(
        self,
        *,
        handler: Handler | None = None,
        latency: float = 0.0,
        api_key: str | None = None,
        models: tuple[str, ...] = ("fake-model-2024-01-01",),
    ) -> None:
        self.handler = handler
        self.latency = latency
        self.api_key = api_key
        self.models = models
        self.requests: list[RecordedRequest] = []
        self._replies: deque[dict[str, Any] | Reply] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def queue(self, *replies: dict[str, Any] | Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def fail(self, status: int, *, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` chat requests with `status` (429 and 5xx exercise retries)."""
        self.queue(*[error(status, f"Fake error {status}", retry_after=retry_after)] * times)

    def start(self) -> FakeOpenAI:
        self._server = _Server(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _chat_reply(self, body: dict[str, Any]) -> dict[str, Any] | Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        if self.handler is not None:
            return self.handler(body)
        users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
        text = users[-1].get("content") if users else ""
        return completion(f"echo: {text}", model=str(body.get("model") or self.models[0]))

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body))
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return error(401, "Incorrect API key provided.", code="invalid_api_key")
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
            return Reply(body={"object": "list", "data": data})
        if method == "POST" and path == "/v1/chat/completions":
            if not isinstance(body, dict):
                return error(400, "We could not parse the JSON body of your request.")
            reply = self._chat_reply(body)
            return reply if isinstance(reply, Reply) else Reply(body=reply)
        return error(404, f"Invalid URL ({method} {path})", type_="invalid_request_error")


def _encode(body: dict[str, Any] | str | bytes) -> bytes:
    if isinstance(body, bytes):
        return body
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has gone away before its answer: expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server
        # Headers and body go out in separate small writes; with Nagle's algorithm the body would
        # wait for the client's delayed ACK (~40 ms a call on Linux), which no real server adds.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._respond("GET")

        def do_POST(self) -> None:
            self._respond("POST")

        def _respond(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = fake._answer(method, self.path.split("?")[0], headers, raw)
            if fake.latency + reply.delay > 0:
                time.sleep(fake.latency + reply.delay)
            payload = _encode(reply.body)
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and benchmarks read stdout
            pass

    return RequestHandler
