"""The real OpenAICompatibleClient over real HTTP against the local fake server, end to end."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from catalog.clients import ChatRequest, Message, OpenAICompatibleClient, ProviderConfig, ProviderError, ToolSpec
from catalog.fake_openai import FakeOpenAI, Reply, completion, error

LOOKUP = ToolSpec(
    "lookup_order", "Look up an order.", {"type": "object", "properties": {"order_number": {"type": "string"}}}
)


def client(fake: FakeOpenAI, sleeps: list[float], **config) -> OpenAICompatibleClient:
    config = {"api_key": "sk-fake", **config}
    return OpenAICompatibleClient(
        ProviderConfig(kind="openai_compatible", base_url=fake.base_url, **config),
        http=httpx.Client(),
        sleep=sleeps.append,
    )


def ask(text: str = "Where is A-1001?", **kwargs) -> ChatRequest:
    return ChatRequest(model_id="fake-model-2024-01-01", messages=[{"role": "user", "content": text}], **kwargs)


def test_a_tool_call_round_trip_over_real_http():
    sleeps: list[float] = []
    with FakeOpenAI(api_key="sk-fake") as fake:
        fake.queue(completion(tool_calls=[("lookup_order", {"order_number": "A-1001"})]), completion("It is paid."))
        chat = client(fake, sleeps)

        first = chat.chat(ask(tools=[LOOKUP]))
        call = first.tool_calls[0]
        messages: list[Message] = [
            *ask().messages,
            first.as_message(),
            {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": '{"status": "paid"}'},
        ]
        second = chat.chat(ChatRequest(model_id="fake-model-2024-01-01", messages=messages))

    assert call.name == "lookup_order" and call.arguments == {"order_number": "A-1001"}
    assert second.content == "It is paid." and second.usage.input_tokens == 20
    assert [r.path for r in fake.requests] == ["/v1/chat/completions"] * 2
    assert fake.requests[0].headers["authorization"] == "Bearer sk-fake"
    assert fake.requests[0].body["tools"][0]["function"]["name"] == "lookup_order"
    assert fake.requests[1].body["messages"][2] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": '{"status": "paid"}',
    }
    assert sleeps == []


def test_it_retries_after_a_429_and_after_a_500():
    sleeps: list[float] = []
    with FakeOpenAI() as fake:
        fake.fail(429, retry_after=0)
        fake.fail(500)
        fake.queue(completion("Finally."))

        response = client(fake, sleeps).chat(ask())

    assert response.content == "Finally."
    assert len(fake.requests) == 3 and sleeps[0] == 0 and 0.5 <= sleeps[1] <= 1.0


def test_it_gives_up_when_the_server_keeps_failing():
    with FakeOpenAI() as fake:
        fake.fail(503, times=5)

        with pytest.raises(ProviderError) as caught:
            client(fake, [], max_retries=1).chat(ask())

    assert caught.value.type == "server_error" and "Fake error 503" in caught.value.message
    assert len(fake.requests) == 2


def test_a_wrong_key_is_an_authentication_error():
    with FakeOpenAI(api_key="sk-right") as fake, pytest.raises(ProviderError) as caught:
        client(fake, [], api_key="sk-wrong").chat(ask())

    assert caught.value.type == "authentication" and caught.value.status == 401 and len(fake.requests) == 1


def test_a_slow_server_is_a_timeout():
    with FakeOpenAI(latency=1.0) as fake:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            client(fake, [], timeout_seconds=0.2, max_retries=0).chat(ask())

    assert caught.value.type == "timeout" and time.monotonic() - started < 1.0


def test_malformed_json_and_arguments_are_bad_responses():
    with FakeOpenAI() as fake:
        fake.queue(Reply(body="{not json"), completion(tool_calls=[("lookup_order", '{"order_number": ')]))
        chat = client(fake, [])

        with pytest.raises(ProviderError) as body_error:
            chat.chat(ask())
        with pytest.raises(ProviderError) as arguments_error:
            chat.chat(ask())

    assert body_error.value.type == "bad_response" and arguments_error.value.type == "bad_response"
    assert "'lookup_order'" in arguments_error.value.message


def test_a_handler_answers_when_nothing_is_queued_and_the_default_echoes():
    with FakeOpenAI(handler=lambda body: completion(f"{len(body['messages'])} message(s)")) as scripted:
        assert client(scripted, []).chat(ask()).content == "1 message(s)"
    with FakeOpenAI() as echo:
        assert client(echo, []).chat(ask("ping")).content == "echo: ping"
        echo.queue(error(400, "Unsupported parameter: 'max_tokens'."))
        with pytest.raises(ProviderError, match="Unsupported parameter"):
            client(echo, []).chat(ask())


def test_it_lists_models_and_answers_404_elsewhere():
    with FakeOpenAI(models=("a-2024-01-01", "b-2024-01-01")) as fake:
        models = httpx.get(f"{fake.base_url}/models").json()
        missing = httpx.post(f"{fake.base_url}/embeddings", json={})

    assert [m["id"] for m in models["data"]] == ["a-2024-01-01", "b-2024-01-01"] and models["object"] == "list"
    assert missing.status_code == 404 and "error" in missing.json()


def test_it_serves_concurrent_requests():
    with FakeOpenAI(latency=0.2) as fake:
        chat = client(fake, [])
        results: list[str] = []
        threads = [threading.Thread(target=lambda: results.append(chat.chat(ask("hi")).content)) for _ in range(8)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.monotonic() - started

    assert results == ["echo: hi"] * 8 and took < 1.0
