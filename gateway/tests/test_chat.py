"""`POST /v1/chat/completions` through the openai SDK against the live ASGI server, relayed to a
local fake provider."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from catalog.fake_openai import FakeOpenAI, completion
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


def test_a_chat_completion_goes_through_to_the_pinned_model(live_asgi: str, fake: FakeOpenAI, gw: Gateway) -> None:
    fake.queue(completion("Hello there.", usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}))
    raw = sdk(live_asgi, gw.secret).chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "Hi"}]
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello there."
    sent = fake.requests[-1].body
    assert sent["model"] == EXACT and sent["messages"] == [{"role": "user", "content": "Hi"}]
    assert sent["max_tokens"] == 4096, "an output bound is always set upstream"
    assert raw.headers["x-aoc-cost-usd"] == f"{(12 * 2.5 + 3 * 10) / 1_000_000:.6f}"
    assert len(raw.headers["x-aoc-trace-id"]) == 32 and raw.headers["x-request-id"].startswith("req_")
