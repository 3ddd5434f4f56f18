"""The async fake upstream driven by the real openai and anthropic SDKs: every API it serves, in the
wire format those SDKs parse, streaming and not, its errors and its cut streams. No database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from catalog.fake_upstream import FakeUpstream, Scripted, error

LOOKUP: Any = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order.",
        "parameters": {"type": "object", "properties": {"order_number": {"type": "string"}}},
    },
}
ASK: Any = [{"role": "user", "content": "Where is A-1001?"}]


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key="sk-fake") as server:
        yield server


def sync_client(fake: FakeUpstream) -> Any:  # Any: the SDKs' TypedDict params and event unions
    return openai.OpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0)


def async_client(fake: FakeUpstream) -> Any:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0)


def claude(fake: FakeUpstream) -> Any:
    return anthropic.Anthropic(base_url=fake.root_url, api_key="sk-fake", max_retries=0)


def drain(iterable, into: list) -> None:
    """Consume a stream, keeping what arrived before it broke."""
    for item in iterable:
        into.append(item)


async def adrain(iterable, into: list) -> None:
    async for item in iterable:
        into.append(item)


# --- Chat Completions ---------------------------------------------------------------------------


def test_chat_without_a_script_echoes_and_records_the_request(fake):
    completion = sync_client(fake).chat.completions.create(model="gpt-fake", messages=ASK, user="u-1")

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "echo: Where is A-1001?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-fake"
    assert completion.usage is not None and completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-fake"
    assert request.body["user"] == "u-1" and request.body["messages"] == ASK


def test_chat_scripted_tool_calls_usage_and_model(fake):
    fake.queue(
        Scripted(
            tool_calls=[("lookup_order", {"order_number": "A-1001"}), ("lookup_order", "{not json")],
            usage={"prompt_tokens": 11, "completion_tokens": 7},
            model="fake-model-2024-01-01",
        )
    )
    completion = sync_client(fake).chat.completions.create(
        model="default",
        messages=ASK,
        tools=[LOOKUP],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["lookup_order", "lookup_order"]
    assert json.loads(calls[0].function.arguments) == {"order_number": "A-1001"}
    assert calls[1].function.arguments == "{not json"
    assert calls[0].id != calls[1].id
    assert completion.model == "fake-model-2024-01-01"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 7)


def test_chat_stream_with_usage(fake):
    fake.queue(Scripted("Your order is paid.", chunks=4, usage={"input_tokens": 12, "output_tokens": 5}))
    stream = sync_client(fake).chat.completions.create(
        model="gpt-fake", messages=ASK, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 4 and "".join(pieces) == "Your order is paid."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (12, 5, 17)
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_without_include_usage_sends_no_usage_chunk(fake):
    chunks = list(sync_client(fake).chat.completions.create(model="m", messages=ASK, stream=True))

    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: Where is A-1001?"


async def test_async_chat_stream_of_parallel_tool_calls_in_pieces(fake):
    calls: list[tuple[str, Any]] = [
        ("lookup_order", {"order_number": "A-1001"}),
        ("refund", {"order_number": "A-1002", "cents": 500}),
    ]
    fake.queue(Scripted(tool_calls=calls, chunks=3))
    stream = await async_client(fake).chat.completions.create(
        model="gpt-fake", messages=ASK, tools=[LOOKUP], stream=True, parallel_tool_calls=True
    )
    names: dict[int, str] = {}
    ids: dict[int, str] = {}
    arguments: dict[int, list[str]] = {}
    finish = []
    async for chunk in stream:
        choice = chunk.choices[0]
        finish.append(choice.finish_reason)
        for delta in choice.delta.tool_calls or []:
            if delta.id:
                ids[delta.index] = delta.id
            if delta.function and delta.function.name:
                names[delta.index] = delta.function.name
            if delta.function and delta.function.arguments:
                arguments.setdefault(delta.index, []).append(delta.function.arguments)

    assert names == {0: "lookup_order", 1: "refund"}
    assert len(set(ids.values())) == 2
    assert [len(parts) for parts in arguments.values()] == [3, 3]
    assert {i: json.loads("".join(parts)) for i, parts in arguments.items()} == {0: calls[0][1], 1: calls[1][1]}
    assert [f for f in finish if f] == ["tool_calls"]


async def test_async_chat_non_streaming(fake):
    fake.queue(Scripted("Async hello"))
    completion = await async_client(fake).chat.completions.create(model="m", messages=ASK)

    assert completion.choices[0].message.content == "Async hello"


def test_handler_answers_when_the_queue_is_empty(fake):
    seen: list[str] = []

    def handler(body, path):
        seen.append(path)
        return Scripted(f"{body['model']} via handler") if path.endswith("completions") else "plain text"

    fake.handler = handler
    completion = sync_client(fake).chat.completions.create(model="m1", messages=ASK)
    response = sync_client(fake).responses.create(model="m2", input="hi")

    assert completion.choices[0].message.content == "m1 via handler"
    assert response.output_text == "plain text"
    assert seen == ["/v1/chat/completions", "/v1/responses"]


# --- Responses ----------------------------------------------------------------------------------


def test_responses_non_streaming_with_a_function_call(fake):
    fake.queue(
        Scripted("Looking it up.", tool_calls=[("lookup_order", {"order_number": "A-1001"})], usage={"input_tokens": 9})
    )
    response = sync_client(fake).responses.create(
        model="gpt-fake",
        input=[{"role": "user", "content": "Where is A-1001?"}],
        tools=[{"type": "function", "name": "lookup_order", "parameters": {"type": "object"}, "strict": False}],
    )

    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "Looking it up."
    message, call = response.output
    assert message.type == "message"
    assert call.type == "function_call"
    assert call.name == "lookup_order" and json.loads(call.arguments) == {"order_number": "A-1001"}
    assert call.call_id.startswith("call_")
    assert response.usage is not None and response.usage.input_tokens == 9
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.tools[0].type == "function"


def test_responses_echo_of_a_string_input(fake):
    response = sync_client(fake).responses.create(model="gpt-fake", input="Hello")

    assert response.output_text == "echo: Hello"


def test_responses_stream_with_text_and_a_function_call(fake):
    fake.queue(Scripted("On it.", tool_calls=[("lookup_order", {"order_number": "A-1001"})], chunks=2))
    events = list(sync_client(fake).responses.create(model="gpt-fake", input="Where is A-1001?", stream=True))

    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert kinds.count("response.output_text.delta") == 2
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "On it."
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
    ):
        assert kind in kinds
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"order_number": "A-1001"}
    completed = events[-1].response
    assert completed.output_text == "On it."
    assert [item.type for item in completed.output] == ["message", "function_call"]
    assert completed.usage is not None and completed.usage.output_tokens > 0


async def test_async_responses_stream_helper_accumulates_the_final_response(fake):
    fake.queue(Scripted("Streamed through the helper.", chunks=5))
    async with async_client(fake).responses.stream(model="gpt-fake", input="hi") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()

    assert len(deltas) == 5
    assert final.output_text == "Streamed through the helper."


# --- Embeddings and models ------------------------------------------------------------------


def test_embeddings_are_deterministic_in_both_encodings(fake):
    client = sync_client(fake)
    default = client.embeddings.create(model="embed-fake", input=["alpha", "beta"])  # the SDK asks for base64
    floats = client.embeddings.create(model="embed-fake", input="alpha", encoding_format="float")

    assert [len(d.embedding) for d in default.data] == [8, 8]
    assert default.data[0].embedding != default.data[1].embedding
    assert floats.data[0].embedding == pytest.approx(default.data[0].embedding, rel=1e-6)
    assert sum(x * x for x in floats.data[0].embedding) == pytest.approx(1.0)
    assert default.usage.prompt_tokens == default.usage.total_tokens > 0
    assert fake.requests[0].body["encoding_format"] == "base64"
    wide = client.embeddings.create(model="embed-fake", input="alpha", dimensions=32)
    assert len(wide.data[0].embedding) == 32


def test_embeddings_refuse_an_empty_input(fake):
    with pytest.raises(openai.BadRequestError, match="input"):
        sync_client(fake).embeddings.create(model="embed-fake", input=[])


def test_models_in_each_sdks_shape(fake):
    assert [m.id for m in sync_client(fake).models.list()] == ["fake-model-2024-01-01"]
    assert [m.id for m in claude(fake).models.list()] == ["fake-model-2024-01-01"]


# --- Anthropic Messages -------------------------------------------------------------------------


def test_messages_non_streaming_with_text_and_tool_use(fake):
    fake.queue(Scripted("Checking.", tool_calls=[("lookup_order", {"order_number": "A-1001"})]))
    message = claude(fake).messages.create(
        model="claude-fake",
        max_tokens=100,
        messages=[{"role": "user", "content": "Where is A-1001?"}],
        tools=[{"name": "lookup_order", "input_schema": {"type": "object"}}],
    )

    assert message.type == "message" and message.role == "assistant"
    text, tool = message.content
    assert text.type == "text" and text.text == "Checking."
    assert tool.type == "tool_use" and tool.name == "lookup_order" and tool.input == {"order_number": "A-1001"}
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    request = fake.requests[0]
    # anthropic 2.x sends the key as a Bearer token; older releases as x-api-key (the fake takes both).
    assert "sk-fake" in (request.headers.get("x-api-key"), request.headers.get("authorization", "")[7:])
    assert "anthropic-version" in request.headers


def test_messages_echo(fake):
    message = claude(fake).messages.create(
        model="claude-fake", max_tokens=10, messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    )

    assert message.content[0].type == "text" and message.content[0].text == "echo: Hi"
    assert message.stop_reason == "end_turn"


def test_messages_stream_with_text_and_tool_use(fake):
    fake.queue(
        Scripted(
            "Let me check.",
            tool_calls=[("lookup_order", {"order_number": "A-1001"})],
            chunks=3,
            usage={"output_tokens": 21},
        )
    )
    with claude(fake).messages.stream(
        model="claude-fake", max_tokens=100, messages=[{"role": "user", "content": "Where is A-1001?"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "message_delta" in kinds and "content_block_stop" in kinds
    text_deltas = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    json_deltas = [e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert "".join(text_deltas) == "Let me check." and len(text_deltas) == 3
    assert len(json_deltas) == 3
    text, tool = final.content
    assert text.type == "text" and text.text == "Let me check."
    assert tool.type == "tool_use" and tool.input == {"order_number": "A-1001"}
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 21


def test_messages_raw_stream_has_a_ping(fake):
    response = httpx.post(
        fake.root_url + "/v1/messages",
        headers={"x-api-key": "sk-fake"},
        json={"model": "claude-fake", "max_tokens": 10, "stream": True, "messages": ASK},
    )

    assert response.headers["content-type"] == "text/event-stream"
    assert 'event: ping\ndata: {"type":"ping"}\n\n' in response.text


# --- Errors, cut streams and bad input ------------------------------------------------------


def test_an_error_reply_raises_the_openai_sdks_exception(fake):
    fake.queue(error(429, "Slow down", retry_after=2), error(503, "Overloaded"))
    client = sync_client(fake)

    with pytest.raises(openai.RateLimitError, match="Slow down") as raised:
        client.chat.completions.create(model="m", messages=ASK)
    assert raised.value.response.headers["retry-after"] == "2"
    assert raised.value.body == {
        "message": "Slow down",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="m", input="hi")


def test_an_error_reply_raises_the_anthropic_sdks_exception(fake):
    fake.queue(error(429, "Slow down"), error(529, "Overloaded"))

    with pytest.raises(anthropic.RateLimitError, match="Slow down") as raised:
        claude(fake).messages.create(model="claude-fake", max_tokens=10, messages=ASK)
    assert raised.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude(fake).messages.create(model="claude-fake", max_tokens=10, messages=ASK)
    assert overloaded.value.status_code == 529


def test_a_wrong_key_is_refused_in_each_shape(fake):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=fake.base_url, api_key="wrong", max_retries=0).models.list()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=fake.root_url, api_key="wrong", max_retries=0).messages.create(
            model="claude-fake", max_tokens=10, messages=ASK
        )


def test_bad_input_answers_4xx(fake):
    headers = {"authorization": "Bearer sk-fake"}
    assert httpx.post(fake.base_url + "/chat/completions", content=b"{nope", headers=headers).status_code == 400
    missing = httpx.post(fake.base_url + "/nowhere", json={}, headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(fake.base_url + "/chat/completions", headers=headers).status_code == 404


def test_drop_after_chunks_makes_the_openai_sdk_raise(fake):
    fake.queue(Scripted("This stream is cut half way.", chunks=6, drop_after_chunks=3))
    received: list[Any] = []

    stream = sync_client(fake).chat.completions.create(model="m", messages=ASK, stream=True)
    with pytest.raises(openai.APIConnectionError) as raised:
        drain(stream, received)
    assert len(received) == 3
    assert "incomplete chunked read" in str(raised.value.__cause__)


async def test_drop_after_chunks_makes_the_async_responses_stream_raise(fake):
    fake.queue(Scripted("Cut.", drop_after_chunks=2))
    received: list[Any] = []
    stream = await async_client(fake).responses.create(model="m", input="hi", stream=True)

    with pytest.raises(openai.APIConnectionError):
        await adrain(stream, received)
    assert [event.type for event in received] == ["response.created", "response.in_progress"]


def test_drop_after_chunks_makes_the_anthropic_stream_raise(fake):
    fake.queue(Scripted("Cut.", drop_after_chunks=1))

    with (
        pytest.raises(anthropic.APIConnectionError, match="incomplete chunked read"),
        claude(fake).messages.stream(model="claude-fake", max_tokens=10, messages=ASK) as stream,
    ):
        list(stream)


def test_latency_and_delays_are_honoured_without_timing(fake):
    # No timed assertion (rules): the delayed answers still arrive whole and in order.
    fake.latency = 0.01
    fake.queue(Scripted("slow", delay=0.01, chunk_delay=0.01), error(500, "late"))
    chunks = list(sync_client(fake).chat.completions.create(model="m", messages=ASK, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "slow"
    with pytest.raises(openai.InternalServerError):
        sync_client(fake).chat.completions.create(model="m", messages=ASK)
    assert len(fake.requests) == 2
