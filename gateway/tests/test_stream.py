"""Streamed Chat Completions through the gateway, with the openai SDK against the live ASGI
server: chunks relayed as they come, usage recorded whether or not the client asked for it,
output guardrails holding back a window, and a provider that breaks off ending in an error event."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from catalog.fake_openai import FakeOpenAI, Reply
from gateway.tests.setup import EXACT, Gateway, gateway_tenant, recorded

pytestmark = pytest.mark.django_db(transaction=True)


def sdk(live_asgi: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=key, max_retries=0)


def sse(
    pieces: list[str], *, usage: tuple[int, int] = (20, 5), done: bool = True, tool: tuple[str, str] | None = None
) -> Reply:
    """A provider's stream: a role chunk, the text in `pieces`, a finish chunk, the usage chunk, [DONE]."""
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": EXACT}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return "data: " + json.dumps({**base, "choices": [choice], "usage": None}) + "\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    if tool is not None:
        name, arguments = tool
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
                    ]
                }
            )
        )
        for half in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": half}}]}))
    events.append(chunk({}, "tool_calls" if tool else "stop"))
    if done:
        total = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
        events.append("data: " + json.dumps({**base, "choices": [], "usage": total}) + "\n\n")
        events.append("data: [DONE]\n\n")
    return Reply(body="".join(events), headers={"content-type": "text/event-stream"})


def _budget(gw: Gateway) -> None:
    from budgets.models import Budget

    Budget.objects.create(tenant=gw.tenant, name="Daily", period=Budget.Period.DAY, limit=1_000_000)


def test_a_stream_is_relayed_and_settled_at_the_providers_usage_the_client_did_not_ask_for(
    live_asgi: str, fake: FakeOpenAI, gw: Gateway
) -> None:
    from budgets.models import Reservation

    _budget(gw)
    fake.queue(sse(["Hel", "lo ", "there."], usage=(20, 5)))
    chunks = list(
        sdk(live_asgi, gw.secret).chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there."
    assert all(c.choices for c in chunks), "the usage chunk goes only to a client that asked for it"
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    recorded()
    (reservation,) = Reservation.objects.for_tenant(gw.tenant)
    assert reservation.status == Reservation.Status.SETTLED
    assert reservation.actual_micros == gw.model.cost_micros(input_tokens=20, output_tokens=5)


def test_a_client_that_asks_for_usage_gets_the_usage_chunk(live_asgi: str, fake: FakeOpenAI, gw: Gateway) -> None:
    fake.queue(sse(["ok"], usage=(7, 1)))
    chunks = list(
        sdk(live_asgi, gw.secret).chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (
        7,
        1,
    )


def test_tool_calls_in_a_stream_arrive_whole(live_asgi: str, fake: FakeOpenAI, gw: Gateway) -> None:
    fake.queue(sse([], tool=("lookup_order", '{"order_number": "A-1001"}')))
    with sdk(live_asgi, gw.secret).chat.completions.stream(
        model="default",
        messages=[{"role": "user", "content": "Where is A-1001?"}],
        tools=[{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}],
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "lookup_order" and json.loads(call.function.arguments) == {"order_number": "A-1001"}


def test_a_secret_split_across_chunks_is_redacted_before_any_of_it_leaves(
    live_asgi: str, fake: FakeOpenAI, gw: Gateway
) -> None:
    # The default policy redacts secrets in answers.
    fake.queue(sse(["Your key: AKIAIOSF", "ODNN7EX", "AMPLE. ", "Keep it safe."]))
    chunks = list(
        sdk(live_asgi, gw.secret).chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "AKIA" not in text and "ODNN7" not in text and "AMPLE" not in text
    assert text.startswith("Your key: [SECRET") and text.endswith("Keep it safe.")


def test_a_stream_an_output_guardrail_blocks_ends_in_an_error_event_with_none_of_it_sent_and_is_settled(
    live_asgi: str, fake: FakeOpenAI, gw: Gateway
) -> None:
    from budgets.models import Reservation
    from guardrails.checks import DEFAULT_RULES
    from guardrails.models import Policy

    rules = [dict(r) for r in DEFAULT_RULES if r["stage"] != "output"]
    rules.append({"stage": "output", "detector": "secrets", "parameters": {}, "action": "block"})
    Policy.objects.update_or_create(tenant=gw.tenant, agent=None, defaults={"rules": rules})
    _budget(gw)
    fake.queue(sse(["Your key: AKIAIOSF", "ODNN7EX", "AMPLE. ", "Keep it safe."]))
    stream = sdk(live_asgi, gw.secret).chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    received: list[str] = []

    def read() -> None:
        for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)

    with pytest.raises(openai.APIError) as raised:
        read()
    assert "A guardrail blocked the model's answer" in raised.value.message
    assert "AKIA" not in "".join(received) and "ODNN7" not in "".join(received)
    recorded()
    (reservation,) = Reservation.objects.for_tenant(gw.tenant)
    assert reservation.status == Reservation.Status.SETTLED and (reservation.actual_micros or 0) > 0


def test_a_stream_the_provider_breaks_off_ends_in_an_error_event_and_is_settled_for_what_came(
    live_asgi: str, fake: FakeOpenAI, gw: Gateway
) -> None:
    from budgets.models import Reservation

    _budget(gw)
    fake.queue(sse(["Partial answer"], done=False))
    stream = sdk(live_asgi, gw.secret).chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pass
    assert "without [DONE]" in raised.value.message
    recorded()
    (reservation,) = Reservation.objects.for_tenant(gw.tenant)
    assert reservation.status == Reservation.Status.SETTLED and (reservation.actual_micros or 0) > 0


def test_a_demo_provider_streams_through_the_same_path(live_asgi: str, settings) -> None:
    from catalog.models import Provider

    demo = gateway_tenant("", kind=Provider.Kind.DEMO, model_id="demo-model-2025-01-01")
    chunks = list(
        sdk(live_asgi, demo.secret).chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_the_async_sdk_streams_too(live_asgi: str, fake: FakeOpenAI, gw: Gateway) -> None:
    import asyncio

    fake.queue(sse(["As", "ync."]))

    async def run() -> str:
        client = openai.AsyncOpenAI(base_url=f"{live_asgi}/v1", api_key=gw.secret, max_retries=0)
        stream = await client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(run()) == "Async."


class SlowStream:
    """A provider that streams one chunk every 50 ms for 10 s, on loopback."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.finished = False

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import time

                self.rfile.read(int(self.headers["content-length"]))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                events = sse([f"word{i} " for i in range(200)], usage=(20, 200)).body
                assert isinstance(events, str)
                try:
                    for event in events.split("\n\n"):
                        self.wfile.write(event.encode() + b"\n\n")
                        self.wfile.flush()
                        time.sleep(0.05)
                    outer.finished = True
                except OSError:
                    pass  # the gateway hung up: what we want

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()


def test_a_client_that_leaves_mid_stream_is_settled_for_what_was_produced(live_asgi: str, settings) -> None:
    import socket
    import time

    from budgets.models import Reservation
    from gateway.models import GatewayRequest

    settings.PROVIDER_ALLOWED_HOSTS = ["127.0.0.1"]
    slow = SlowStream()
    try:
        gw = gateway_tenant(slow.base_url)
        _budget(gw)
        host, port = live_asgi.removeprefix("http://").split(":")
        payload = json.dumps({"model": "default", "stream": True, "messages": [{"role": "user", "content": "Hi"}]})
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {gw.secret}\r\nContent-Length: {len(payload)}\r\n\r\n{payload}".encode()
            )
            received = b""
            while b"word3" not in received:
                received += sock.recv(4096)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not GatewayRequest.objects.for_tenant(gw.tenant).exists():
            time.sleep(0.05)
        logged = GatewayRequest.objects.for_tenant(gw.tenant).get()
        assert logged.error_code == "client_disconnected"
        assert not slow.finished, "the provider's stream was closed when the client left"
        recorded()
        (reservation,) = Reservation.objects.for_tenant(gw.tenant)
        assert reservation.status == Reservation.Status.SETTLED
        # Estimated from the words produced before the client left: more than nothing, far less
        # than the 200 words the provider would have sent.
        assert 0 < logged.output_tokens < 150 and (reservation.actual_micros or 0) > 0
    finally:
        slow.stop()
