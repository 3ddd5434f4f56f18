"""Streamed Chat Completions through the gateway, with the openai SDK against the live ASGI
server: chunks relayed as they come, usage recorded whether or not the client asked for it,
output guardrails holding back a window, and a provider that breaks off ending in an error event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from catalog.fake_openai import FakeOpenAI, Reply
from gateway.tests.setup import EXACT, Gateway, gateway_tenant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake(settings) -> Iterator[FakeOpenAI]:
    settings.PROVIDER_ALLOWED_HOSTS = ["127.0.0.1"]
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def gw(fake: FakeOpenAI) -> Gateway:
    return gateway_tenant(fake.base_url)


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
