"""Provider clients against recorded-shape payloads (respx, no network): request and response
mapping, usage, retries and errors; and the offline demo provider's script."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from catalog.clients import (
    AnthropicClient,
    ChatRequest,
    DemoClient,
    Message,
    OpenAICompatibleClient,
    ProviderConfig,
    ProviderError,
    ToolSpec,
    client_for,
)
from catalog.clients.openai_compatible import message_to_openai, messages_from_openai
from catalog.clients.transport import RETRY_AFTER_MAX_SECONDS, backoff_seconds

OPENAI_URL = "https://api.openai.com/v1"
LOCAL_URL = "http://vllm.internal:8000/v1"
ANTHROPIC_URL = "https://api.anthropic.com"
KEY = "sk-test-secret-key-123"

LOOKUP = ToolSpec(
    name="lookup_order",
    description="Look up an order by its number.",
    parameters={"type": "object", "properties": {"order_number": {"type": "string"}}, "required": ["order_number"]},
)

# A conversation after one tool round trip with two parallel calls, as the run engine persists it.
CONVERSATION: list[Message] = [
    {"role": "system", "content": "You are Acme's support agent."},
    {"role": "user", "content": "Where are orders A-1001 and A-1002?"},
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "call_1", "name": "lookup_order", "arguments": {"order_number": "A-1001"}},
            {"id": "call_2", "name": "lookup_order", "arguments": {"order_number": "A-1002"}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "lookup_order", "content": '{"status": "paid"}'},
    {"role": "tool", "tool_call_id": "call_2", "name": "lookup_order", "content": '{"error": "not found"}'},
]

# OpenAI's chat completion with a tool call (gpt-4o-2024-08-06), as the API returns it.
OPENAI_TOOL_CALL = {
    "id": "chatcmpl-AKn4tB2zKJ5gVJjwMNNjYlMHUS1hM",
    "object": "chat.completion",
    "created": 1729542815,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_62136354",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_number":"A-1001"}'},
                    }
                ],
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_45c6de4934",
}

OPENAI_ANSWER = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "o3-mini-2025-01-31",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Order A-1001 is paid.", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 300,
        "completion_tokens": 250,
        "total_tokens": 550,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0},
    },
    "service_tier": "default",
}

# Anthropic's Messages API answer with text and a tool_use block.
ANTHROPIC_TOOL_USE = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "text", "text": "I'll look up that order."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "lookup_order",
            "input": {"order_number": "A-1001"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 472,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1024,
        "output_tokens": 89,
        "service_tier": "standard",
    },
}


def openai_error(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def anthropic_error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


@pytest.fixture
def sleeps() -> list[float]:
    return []


def openai(sleeps: list[float], *, base_url: str = OPENAI_URL, max_retries: int = 2) -> OpenAICompatibleClient:
    config = ProviderConfig(kind="openai_compatible", base_url=base_url, api_key=KEY, max_retries=max_retries)
    return OpenAICompatibleClient(config, http=httpx.Client(), sleep=sleeps.append)


def anthropic(sleeps: list[float]) -> AnthropicClient:
    config = ProviderConfig(kind="anthropic", base_url=ANTHROPIC_URL, api_key=KEY)
    return AnthropicClient(config, http=httpx.Client(), sleep=sleeps.append)


def request(messages: list[Message] | None = None, **kwargs: Any) -> ChatRequest:
    return ChatRequest(
        model_id=kwargs.pop("model_id", "gpt-4o-2024-08-06"),
        messages=messages if messages is not None else [{"role": "user", "content": "Where is A-1001?"}],
        **kwargs,
    )


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    return json.loads(route.calls[index].request.content)


# --- OpenAI-compatible ------------------------------------------------------------------------


@respx.mock
def test_it_sends_the_conversation_and_tools_in_openai_shape(sleeps):
    route = respx.post(f"{LOCAL_URL}/chat/completions").respond(200, json=OPENAI_ANSWER)

    openai(sleeps, base_url=LOCAL_URL + "/").chat(
        request(CONVERSATION, tools=[LOOKUP], max_output_tokens=300, temperature=0.2)
    )

    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    assert sent(route) == {
        "model": "gpt-4o-2024-08-06",
        "max_tokens": 300,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are Acme's support agent."},
            {"role": "user", "content": "Where are orders A-1001 and A-1002?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_number": "A-1001"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"order_number": "A-1002"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "paid"}'},
            {"role": "tool", "tool_call_id": "call_2", "content": '{"error": "not found"}'},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "description": "Look up an order by its number.",
                    "parameters": LOOKUP.parameters,
                },
            }
        ],
    }


@respx.mock
def test_it_asks_openai_itself_for_max_completion_tokens(sleeps):
    route = respx.post(f"{OPENAI_URL}/chat/completions").respond(200, json=OPENAI_ANSWER)

    openai(sleeps).chat(request(max_output_tokens=500))

    body = sent(route)
    assert body["max_completion_tokens"] == 500 and "max_tokens" not in body and "tools" not in body


def test_it_sends_an_assistant_turn_with_only_tool_calls_with_null_content():
    message: Message = {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "name": "t", "arguments": {}}]}

    assert message_to_openai(message)["content"] is None


@respx.mock
def test_it_reads_tool_calls_usage_and_the_model_that_answered(sleeps):
    respx.post(f"{OPENAI_URL}/chat/completions").respond(200, json=OPENAI_TOOL_CALL)

    response = openai(sleeps).chat(request(tools=[LOOKUP]))

    assert response.content == ""
    assert [call.as_dict() for call in response.tool_calls] == [
        {"id": "call_62136354", "name": "lookup_order", "arguments": {"order_number": "A-1001"}}
    ]
    assert response.finish_reason == "tool_calls"
    assert response.model_id == "gpt-4o-2024-08-06"
    assert response.usage.input_tokens == 1117 and response.usage.output_tokens == 46
    assert response.usage.cached_input_tokens == 1024 and not response.usage.estimated
    assert response.raw["id"] == "chatcmpl-AKn4tB2zKJ5gVJjwMNNjYlMHUS1hM"
    assert response.as_message() == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_62136354", "name": "lookup_order", "arguments": {"order_number": "A-1001"}}],
    }


@respx.mock
def test_it_reads_reasoning_tokens(sleeps):
    respx.post(f"{OPENAI_URL}/chat/completions").respond(200, json=OPENAI_ANSWER)

    response = openai(sleeps).chat(request(model_id="o3-mini-2025-01-31"))

    assert response.content == "Order A-1001 is paid." and response.finish_reason == "stop"
    assert response.usage.output_tokens == 250 and response.usage.reasoning_tokens == 192


@respx.mock
def test_it_estimates_usage_when_a_server_reports_none(sleeps):
    answer = {**OPENAI_ANSWER, "usage": None}
    respx.post(f"{LOCAL_URL}/chat/completions").respond(200, json=answer)

    usage = openai(sleeps, base_url=LOCAL_URL).chat(request()).usage

    assert usage.estimated and usage.input_tokens >= 1 and usage.output_tokens >= 1


@respx.mock
def test_it_takes_empty_arguments_as_none(sleeps):
    answer = json.loads(json.dumps(OPENAI_TOOL_CALL))
    answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = ""
    respx.post(f"{OPENAI_URL}/chat/completions").respond(200, json=answer)

    assert openai(sleeps).chat(request()).tool_calls[0].arguments == {}


@pytest.mark.parametrize("arguments", ['{"order_number": "A-10', '["A-1001"]', "null"])
@respx.mock
def test_it_refuses_malformed_tool_arguments_naming_the_tool(sleeps, arguments):
    answer = json.loads(json.dumps(OPENAI_TOOL_CALL))
    answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = arguments
    route = respx.post(f"{OPENAI_URL}/chat/completions").respond(200, json=answer)

    with pytest.raises(ProviderError) as caught:
        openai(sleeps).chat(request())

    assert caught.value.type == "bad_response" and "'lookup_order'" in caught.value.message
    assert route.call_count == 1 and not caught.value.retryable


@pytest.mark.parametrize(
    ("content", "expected"),
    [("<html>Bad Gateway</html>", "not a JSON object"), ('{"object": "list"}', "unexpected shape")],
)
@respx.mock
def test_it_refuses_a_body_it_cannot_read(sleeps, content, expected):
    respx.post(f"{OPENAI_URL}/chat/completions").respond(200, content=content)

    with pytest.raises(ProviderError) as caught:
        openai(sleeps).chat(request())

    assert caught.value.type == "bad_response" and expected in caught.value.message


@respx.mock
def test_it_retries_a_429_after_the_delay_the_provider_asks_for(sleeps):
    rate_limited = openai_error(
        "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000.",
        "tokens",
        "rate_limit_exceeded",
    )
    route = respx.post(f"{OPENAI_URL}/chat/completions")
    route.side_effect = [
        httpx.Response(429, json=rate_limited, headers={"retry-after": "2"}),
        httpx.Response(200, json=OPENAI_ANSWER),
    ]

    response = openai(sleeps).chat(request())

    assert response.content == "Order A-1001 is paid."
    assert route.call_count == 2 and sleeps == [2.0]


@respx.mock
def test_it_gives_up_on_429_after_max_retries_with_the_providers_message(sleeps):
    body = openai_error("Rate limit reached for gpt-4o.", "requests", "rate_limit_exceeded")
    route = respx.post(f"{OPENAI_URL}/chat/completions").respond(429, json=body, headers={"retry-after-ms": "1500"})

    with pytest.raises(ProviderError) as caught:
        openai(sleeps, max_retries=2).chat(request())

    error = caught.value
    assert (error.type, error.status, error.retryable) == ("rate_limited", 429, True)
    assert "429" in error.message and "Rate limit reached for gpt-4o." in error.message
    assert "rate_limit_exceeded" in error.message and "3 attempts" in error.message
    assert route.call_count == 3 and sleeps == [1.5, 1.5]


@respx.mock
def test_it_retries_5xx_with_exponential_backoff_and_jitter(sleeps):
    body = openai_error("The server had an error while processing your request. Sorry about that!", "server_error")
    route = respx.post(f"{OPENAI_URL}/chat/completions")
    route.side_effect = [httpx.Response(503, json=body), httpx.Response(500, json=body), httpx.Response(502, text="")]

    with pytest.raises(ProviderError) as caught:
        openai(sleeps, max_retries=2).chat(request())

    assert caught.value.type == "server_error" and caught.value.status == 502 and caught.value.retryable
    assert "Bad Gateway" in caught.value.message
    assert route.call_count == 3
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


@respx.mock
def test_it_retries_a_timeout_then_succeeds(sleeps):
    route = respx.post(f"{OPENAI_URL}/chat/completions")
    route.side_effect = [httpx.ReadTimeout("timed out"), httpx.Response(200, json=OPENAI_ANSWER)]

    assert openai(sleeps).chat(request()).content == "Order A-1001 is paid."
    assert route.call_count == 2 and len(sleeps) == 1


@respx.mock
def test_it_reports_a_timeout_after_its_retries(sleeps):
    respx.post(f"{OPENAI_URL}/chat/completions").side_effect = httpx.ConnectTimeout("timed out")

    with pytest.raises(ProviderError) as caught:
        openai(sleeps, max_retries=1).chat(request())

    assert caught.value.type == "timeout" and "60 s" in caught.value.message and "2 attempts" in caught.value.message


@respx.mock
def test_it_reports_a_connection_error_after_its_retries(sleeps):
    route = respx.post(f"{LOCAL_URL}/chat/completions")
    route.side_effect = httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(ProviderError) as caught:
        openai(sleeps, base_url=LOCAL_URL).chat(request())

    assert caught.value.type == "connection" and "vllm.internal" in caught.value.message
    assert route.call_count == 3 and len(sleeps) == 2


@respx.mock
def test_it_does_not_retry_a_bad_request(sleeps):
    body = openai_error(
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
        "invalid_request_error",
        "context_length_exceeded",
    )
    route = respx.post(f"{OPENAI_URL}/chat/completions").respond(400, json=body)

    with pytest.raises(ProviderError) as caught:
        openai(sleeps).chat(request())

    assert (caught.value.type, caught.value.status, caught.value.retryable) == ("bad_request", 400, False)
    assert "maximum context length is 128000 tokens" in caught.value.message
    assert route.call_count == 1 and sleeps == []


@pytest.mark.parametrize("status", [401, 403])
@respx.mock
def test_it_does_not_retry_an_authentication_error_and_never_shows_the_key(sleeps, status):
    body = openai_error(f"Incorrect API key provided: {KEY}.", "invalid_request_error", "invalid_api_key")
    route = respx.post(f"{OPENAI_URL}/chat/completions").respond(status, json=body)

    with pytest.raises(ProviderError) as caught:
        openai(sleeps).chat(request())

    assert caught.value.type == "authentication" and caught.value.status == status
    assert "Incorrect API key provided" in caught.value.message and KEY not in str(caught.value)
    assert route.call_count == 1


def test_it_refuses_an_unusable_url_without_retrying(sleeps):
    with pytest.raises(ProviderError) as caught:
        openai(sleeps, base_url="").chat(request())

    assert caught.value.type == "connection" and not caught.value.retryable and sleeps == []


def test_backoff_honours_retry_after_up_to_a_cap():
    assert backoff_seconds(0, retry_after=3.0) == 3.0
    assert backoff_seconds(0, retry_after=3600.0) == RETRY_AFTER_MAX_SECONDS
    assert all(4.0 <= backoff_seconds(10) <= 8.0 for _ in range(20))


@respx.mock
def test_it_reads_retry_after_as_an_http_date(sleeps):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    route = respx.post(f"{OPENAI_URL}/chat/completions")
    route.side_effect = [httpx.Response(429, headers={"retry-after": when}), httpx.Response(200, json=OPENAI_ANSWER)]

    openai(sleeps).chat(request())

    assert 3.0 < sleeps[0] <= 5.0


def test_it_maps_openai_messages_to_neutral_ones_and_back():
    wire = [message_to_openai(message) for message in CONVERSATION]

    neutral = messages_from_openai(wire)

    assert neutral == CONVERSATION


def test_it_refuses_openai_messages_it_cannot_carry():
    with pytest.raises(ValueError, match=r"messages\[1\]"):
        messages_from_openai(
            [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "t", "arguments": "{"}}]},
            ]
        )
    with pytest.raises(ValueError, match="only text content"):
        messages_from_openai([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])


# --- Anthropic --------------------------------------------------------------------------------


@respx.mock
def test_it_sends_the_conversation_and_tools_in_anthropic_shape(sleeps):
    route = respx.post(f"{ANTHROPIC_URL}/v1/messages").respond(200, json=ANTHROPIC_TOOL_USE)

    anthropic(sleeps).chat(
        request(CONVERSATION, model_id="claude-sonnet-4-5-20250929", tools=[LOOKUP], max_output_tokens=700)
    )

    headers = route.calls.last.request.headers
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert sent(route) == {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 700,
        "temperature": 0.0,
        "system": "You are Acme's support agent.",
        "tools": [
            {
                "name": "lookup_order",
                "description": "Look up an order by its number.",
                "input_schema": LOOKUP.parameters,
            }
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Where are orders A-1001 and A-1002?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "lookup_order", "input": {"order_number": "A-1001"}},
                    {"type": "tool_use", "id": "call_2", "name": "lookup_order", "input": {"order_number": "A-1002"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": '{"status": "paid"}'},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": '{"error": "not found"}'},
                ],
            },
        ],
    }


@respx.mock
def test_it_reads_tool_use_usage_and_stop_reason(sleeps):
    respx.post(f"{ANTHROPIC_URL}/v1/messages").respond(200, json=ANTHROPIC_TOOL_USE)

    response = anthropic(sleeps).chat(request(model_id="claude-sonnet-4-5-20250929", tools=[LOOKUP]))

    assert response.content == "I'll look up that order."
    assert [call.as_dict() for call in response.tool_calls] == [
        {"id": "toolu_01A09q90qw90lq917835lq9", "name": "lookup_order", "arguments": {"order_number": "A-1001"}}
    ]
    assert response.finish_reason == "tool_calls" and response.raw["stop_reason"] == "tool_use"
    assert response.model_id == "claude-sonnet-4-5-20250929"
    # Anthropic counts cache reads and writes apart from input_tokens; the console counts them all.
    assert response.usage.input_tokens == 472 + 100 + 1024
    assert response.usage.cached_input_tokens == 1024 and response.usage.output_tokens == 89


@respx.mock
def test_it_maps_anthropic_stop_reasons(sleeps):
    answer = {**ANTHROPIC_TOOL_USE, "content": [{"type": "text", "text": "Partial"}], "stop_reason": "max_tokens"}
    respx.post(f"{ANTHROPIC_URL}/v1/messages").respond(200, json=answer)

    response = anthropic(sleeps).chat(request())

    assert response.finish_reason == "length" and response.tool_calls == []


@respx.mock
def test_it_retries_anthropic_overload_and_rate_limits(sleeps):
    route = respx.post(f"{ANTHROPIC_URL}/v1/messages")
    route.side_effect = [
        httpx.Response(529, json=anthropic_error("overloaded_error", "Overloaded")),
        httpx.Response(
            429,
            json=anthropic_error(
                "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"
            ),
            headers={"retry-after": "7"},
        ),
        httpx.Response(200, json=ANTHROPIC_TOOL_USE),
    ]

    response = anthropic(sleeps).chat(request())

    assert response.tool_calls and route.call_count == 3
    assert 0.25 <= sleeps[0] <= 0.5 and sleeps[1] == 7.0


@respx.mock
def test_it_reports_anthropic_errors_with_their_type(sleeps):
    body = anthropic_error("invalid_request_error", "messages: roles must alternate between user and assistant")
    respx.post(f"{ANTHROPIC_URL}/v1/messages").respond(400, json=body)

    with pytest.raises(ProviderError) as caught:
        anthropic(sleeps).chat(request())

    assert caught.value.type == "bad_request"
    assert "roles must alternate" in caught.value.message and "invalid_request_error" in caught.value.message


@respx.mock
def test_it_refuses_tool_input_that_is_not_an_object(sleeps):
    answer = json.loads(json.dumps(ANTHROPIC_TOOL_USE))
    answer["content"][1]["input"] = "A-1001"
    respx.post(f"{ANTHROPIC_URL}/v1/messages").respond(200, json=answer)

    with pytest.raises(ProviderError) as caught:
        anthropic(sleeps).chat(request())

    assert caught.value.type == "bad_response" and "'lookup_order'" in caught.value.message


# --- client_for -------------------------------------------------------------------------------


def test_client_for_picks_the_client_of_the_providers_kind():
    http = httpx.Client()

    assert isinstance(client_for(ProviderConfig(kind="demo", base_url="")), DemoClient)
    openai_client = client_for(ProviderConfig(kind="openai_compatible", base_url=OPENAI_URL), http=http)
    assert isinstance(openai_client, OpenAICompatibleClient) and openai_client.http is http
    assert isinstance(client_for(ProviderConfig(kind="anthropic", base_url=ANTHROPIC_URL)), AnthropicClient)


# --- demo -------------------------------------------------------------------------------------

DEMO_TOOLS = [
    LOOKUP,
    ToolSpec("refund_order", "Refund an order.", {"type": "object", "properties": {}}),
    ToolSpec("send_email", "Email someone.", {"type": "object", "properties": {}}),
]
ORDER = {"number": "A-1001", "customer_email": "dana@example.com", "item": "Blue mug", "status": "paid"}


def demo_turn(messages: list[Message], tools: list[ToolSpec] = DEMO_TOOLS, **kwargs: Any):
    return DemoClient().chat(ChatRequest(model_id="demo-2025-01-01", messages=messages, tools=tools, **kwargs))


def run_demo(text: str, results: dict[str, Any], tools: list[ToolSpec] = DEMO_TOOLS) -> list[Message]:
    """Drive the demo model like the run engine: execute each tool call with the canned result."""
    messages: list[Message] = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": text},
    ]
    for _ in range(10):
        response = demo_turn(messages, tools)
        messages.append(response.as_message())
        if not response.tool_calls:
            return messages
        for call in response.tool_calls:
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": json.dumps(results[call.name])}
            )
    raise AssertionError("the demo model did not finish")


def calls(messages: list[Message]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c["id"], c["name"], c["arguments"]) for m in messages for c in m.get("tool_calls", [])]


def test_the_demo_looks_up_refunds_and_emails_then_summarises():
    text = "Please refund order A-1001, the mug arrived broken, and email me a confirmation."
    results = {"lookup_order": ORDER, "refund_order": {"refunded": True}, "send_email": {"sent": True}}

    messages = run_demo(text, results)

    assert calls(messages) == [
        ("call_1_1", "lookup_order", {"order_number": "A-1001"}),
        ("call_2_1", "refund_order", {"order_number": "A-1001", "reason": f"Customer request: {text}"}),
        (
            "call_3_1",
            "send_email",
            {
                "to": "dana@example.com",
                "subject": "Your order A-1001",
                "body": "Hello,\n\nyour order A-1001 has been refunded.\n\nDemo Support",
            },
        ),
    ]
    answer = messages[-1]["content"]
    assert "I refunded order A-1001." in answer and "I emailed the customer." in answer and "Blue mug" in answer


def test_the_demo_only_looks_up_when_asked_where_an_order_is():
    lookup = {"order_number": "A-1001", "status": "paid", "customer_email": "dana@example.com", "refunded_at": None}

    messages = run_demo("Where is order 1001?", {"lookup_order": lookup})

    assert calls(messages) == [("call_1_1", "lookup_order", {"order_number": "A-1001"})]
    assert (
        messages[-1]["content"] == "Order A-1001: order number: A-1001; status: paid; customer email: dana@example.com"
    )


def test_the_demo_says_when_the_lookup_failed_and_does_not_refund():
    messages = run_demo("Refund A-9999 please", {"lookup_order": {"error": "No order A-9999."}})

    assert [name for _, name, _ in calls(messages)] == ["lookup_order"]
    assert messages[-1]["content"] == "I could not find order A-9999: No order A-9999."


def test_the_demo_reports_a_refused_refund():
    results = {"lookup_order": ORDER, "refund_order": {"error": "The reviewer rejected the refund."}}

    messages = run_demo("refund A-1001", results)

    assert "The refund was not made: The reviewer rejected the refund." in messages[-1]["content"]


def test_the_demo_answers_without_tools_or_order_number():
    no_order = demo_turn([{"role": "user", "content": "Hi there"}])
    no_tools = demo_turn([{"role": "user", "content": "Where is A-1001?"}], tools=[])

    assert no_order.tool_calls == [] and 'You wrote: "Hi there"' in no_order.content
    assert no_tools.tool_calls == [] and "no tool to look orders up" in no_tools.content


def test_the_demo_is_deterministic_and_reports_its_usage():
    messages: list[Message] = [{"role": "user", "content": "Where is A-1001?"}]

    first, second = demo_turn(messages), demo_turn(messages)

    assert first == second
    assert first.usage.input_tokens >= 1 and first.usage.output_tokens >= 1 and not first.usage.estimated
    assert first.model_id == "demo-2025-01-01" and first.finish_reason == "tool_calls"


def test_the_demo_stops_at_max_output_tokens():
    response = demo_turn([{"role": "user", "content": "Tell me about your shop " * 20}], tools=[], max_output_tokens=5)

    assert len(response.content) == 20 and response.finish_reason == "length" and response.usage.output_tokens == 5


def test_the_demo_judges_in_json_when_asked_for_a_score():
    system: Message = {"role": "system", "content": 'Grade the answer. Reply in JSON: {"score": 0..1, "reason": "..."}'}

    good = demo_turn([system, {"role": "user", "content": "Answer: Order A-1001 is paid."}], tools=[])
    bad = demo_turn([system, {"role": "user", "content": "Answer: Sorry, I could not find it."}], tools=[])

    assert json.loads(good.content)["score"] == 1.0 and good.tool_calls == []
    assert json.loads(bad.content)["score"] == 0.0
