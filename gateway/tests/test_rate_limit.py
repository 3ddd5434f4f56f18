"""A key's own rate limit on the gateway (tenants.throttling, shared with every API view), and its
count sent in the configuration version's Redis round trip once the process knows the key
(gateway.calls.snapshot)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from redis.connection import AbstractConnection

from catalog.fake_openai import FakeOpenAI, completion
from config.redis_pool import client as redis_client
from gateway import calls
from gateway.errors import GatewayError
from gateway.models import GatewayRequest
from gateway.tests.setup import Gateway, recorded
from tenants import cache as config_cache
from tenants import rls
from tenants.models import ApiKey
from tenants.throttling import ApiKeyRateThrottle, key_window

pytestmark = pytest.mark.django_db(transaction=True)

BODY: dict[str, Any] = {"model": "default", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}


@pytest.fixture
def three_a_minute() -> Iterator[None]:
    from rest_framework.settings import api_settings

    original = ApiKeyRateThrottle.THROTTLE_RATES
    rates: dict[str, Any] = {**api_settings.DEFAULT_THROTTLE_RATES, "api_key": "3/min"}
    ApiKeyRateThrottle.THROTTLE_RATES = rates
    try:
        yield
    finally:
        ApiKeyRateThrottle.THROTTLE_RATES = original


def headers(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}", "content-type": "application/json"}


def admit(secret: str) -> calls.Call:
    """An admission in process, concluded at once so nothing stays held."""
    body = {**BODY, "messages": [dict(m) for m in BODY["messages"]]}
    call = calls.admit(headers(secret), body, "/v1/chat/completions")
    calls.conclude(call, calls.Result(error=GatewayError(499, "client_disconnected", "gone"), status=499))
    return call


def known(gw: Gateway) -> None:
    """Admit the key's first two calls: the tenant's first call creates its default policy and
    guardrail settings (a configuration change, which empties the process's cache); after the
    second the process holds the key, as in steady use."""
    for _ in range(2):
        admit(gw.secret)
        recorded()
    assert config_cache.peek("api_key", gw.key.prefix) is not None


def used(key: ApiKey) -> int:
    """What the key's counters hold, this window's and the last one's together (a test may cross
    the minute between two windows; a new key's counts are all in those two)."""
    window = key_window(key)
    assert window is not None
    return sum(int(redis_client().get(name) or 0) for name in (window.current, window.previous))


def ask(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}], max_tokens=16)


def test_a_keys_rate_limit_is_a_429_the_sdk_raises_with_retry_after(
    live_asgi: str, fake: FakeOpenAI, gw: Gateway, three_a_minute: None
) -> None:
    client = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=gw.secret, max_retries=0)
    for _ in range(3):
        fake.queue(completion("Fine."))
        assert ask(client).choices[0].message.content == "Fine."
    with pytest.raises(openai.RateLimitError) as raised:
        ask(client)
    error = raised.value.body
    assert isinstance(error, dict) and error["code"] == "rate_limited"
    assert "rate limit" in error["message"]
    assert float(raised.value.response.headers["retry-after"]) > 0
    assert len(fake.requests) == 3, "the refused call never reached the provider"
    recorded()
    with rls.tenant_context(gw.tenant.pk):
        statuses = sorted(GatewayRequest.objects.for_tenant(gw.tenant).values_list("status", flat=True))
    assert statuses == [200, 200, 200, 429]


def test_once_the_key_is_known_its_count_rides_with_the_version_read(
    gw: Gateway, three_a_minute: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    known(gw)
    sent: list[bytes] = []
    real = AbstractConnection.send_packed_command

    def spy(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(command if isinstance(command, bytes) else b"".join(bytes(part) for part in command))
        real(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", spy)
    admit(gw.secret)
    monkeypatch.undo()
    assert len(sent) == 1, f"one Redis round trip for the version and the rate limit, not {len(sent)}"
    assert b"config-version" in sent[0] and b"INCRBY" in sent[0]
    assert used(gw.key) == 3
    with pytest.raises(GatewayError) as raised:
        admit(gw.secret)
    assert raised.value.status == 429 and raised.value.code == "rate_limited"
    assert used(gw.key) == 3, "a refused request is not counted"


def test_a_wrong_secret_with_a_known_prefix_spends_none_of_the_keys_allowance(
    gw: Gateway, three_a_minute: None
) -> None:
    known(gw)
    forged = gw.secret[: gw.secret.rindex("_") + 1] + "x" * 20
    for _ in range(5):
        with pytest.raises(GatewayError) as raised:
            admit(forged)
        assert raised.value.status == 401
    assert used(gw.key) == 2
    admit(gw.secret)
    assert used(gw.key) == 3


def test_a_key_revoked_elsewhere_is_refused_and_its_count_taken_back(gw: Gateway, three_a_minute: None) -> None:
    """Another process revokes the key: this one still holds the key as it last loaded it, counts
    the request on that guess, learns from the version read in the same round trip that the
    configuration changed, reloads the key, refuses it, and takes the count back."""
    from django.db import connection
    from django.utils import timezone

    known(gw)
    held = config_cache.peek("api_key", gw.key.prefix)
    with rls.tenant_context(gw.tenant.pk), connection.cursor() as cursor:  # behind this process's back
        cursor.execute("UPDATE tenants_apikey SET revoked_at = %s WHERE id = %s", [timezone.now(), gw.key.pk])
    config_cache._bump()  # the other process's commit bumps the version ...
    config_cache._entries[("api_key", gw.key.prefix)] = (0, held)  # ... and this one still holds the key
    with pytest.raises(GatewayError) as raised:
        admit(gw.secret)
    assert raised.value.status == 401 and "revoked" in raised.value.message
    assert used(gw.key) == 2, "the revoked key's request was counted on the guess and taken back"
