"""A gateway call that outlives the reservation TTL keeps its budget hold until it is settled
(gateway.keeper), and a call whose endpoint fails unexpectedly is concluded, not left held."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from budgets.models import Budget, Reservation
from budgets.services import budget_expire_stale
from catalog.fake_upstream import FakeUpstream, Scripted
from gateway import keeper
from gateway.tests.setup import Gateway, gateway_tenant, recorded

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeUpstream]:
    settings.PROVIDER_ALLOWED_HOSTS = ["127.0.0.1"]
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def gw(fake: FakeUpstream) -> Gateway:
    gw = gateway_tenant(fake.base_url)
    Budget.objects.create(tenant=gw.tenant, name="Daily", period=Budget.Period.DAY, limit=1_000_000)
    return gw


def test_a_stream_longer_than_the_ttl_keeps_its_hold_until_it_is_settled(
    live_asgi: str, fake: FakeUpstream, gw: Gateway, settings: Any
) -> None:
    settings.BUDGET_RESERVATION_TTL_SECONDS = 1
    fake.queue(Scripted("one two three four five six seven eight nine ten eleven twelve", chunks=12, chunk_delay=0.25))
    client = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=gw.secret, max_retries=0)
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Count."}], max_tokens=50, stream=True
    )
    started, expired_midway = time.monotonic(), []
    for _ in stream:
        if time.monotonic() - started > 2:  # twice the TTL into the stream
            expired_midway.append(budget_expire_stale())
            (held,) = Reservation.objects.for_tenant(gw.tenant)
            assert held.status == Reservation.Status.OPEN
    assert expired_midway and set(expired_midway) == {0}
    recorded()
    (reservation,) = Reservation.objects.for_tenant(gw.tenant)
    assert reservation.status == Reservation.Status.SETTLED
    assert keeper.running() == 0


def test_a_call_whose_endpoint_fails_unexpectedly_is_concluded_and_its_hold_released(
    live_asgi: str, gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import upstream

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the gateway")

    monkeypatch.setattr(upstream, "post", broken)
    client = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=gw.secret, max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}])
    recorded()
    (reservation,) = Reservation.objects.for_tenant(gw.tenant)
    assert reservation.status == Reservation.Status.RELEASED
    assert keeper.running() == 0
