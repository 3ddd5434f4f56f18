"""Live pages survive a broken Redis: the consumer's channel-layer calls are retried (a killed
connection does not end the socket), and when Redis stays away the socket is closed with 1011 (the
page reconnects) instead of an "Exception in ASGI application"."""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis
import redis.exceptions
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from console import live
from console.consumers import LiveConsumer
from tenants.testing import Cast, make_key

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/t/acme/live/?page=dashboard")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"args": (), "kwargs": {"tenant_slug": "acme"}}
    return communicator


async def test_with_retries_tries_again_after_a_redis_timeout() -> None:
    failures = [redis.exceptions.TimeoutError("Timeout reading from socket"), redis.exceptions.ConnectionError("x")]

    async def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "answer"

    assert await live.with_retries(flaky, what="test") == "answer"
    assert failures == []


async def test_a_killed_redis_connection_does_not_end_the_live_socket(cast: Cast) -> None:
    communicator = _communicator(cast.alice)
    assert (await communicator.connect())[0]
    # Kill the channel layer's blocking read in this test's Redis database (what a read timeout or
    # a dropped connection does to it); other databases' clients are left alone.
    url = os.environ["REDIS_URL"]
    admin = redis.Redis.from_url(url)
    db = admin.connection_pool.connection_kwargs.get("db", 0)
    mine = admin.client_id()
    killed = 0
    for client in admin.client_list():
        blocked = client.get("cmd", "") in ("bzpopmin", "blpop", "brpop")
        if int(client.get("db", -1)) == int(db) and int(client["id"]) != mine and blocked:
            admin.client_kill_filter(_id=client["id"])
            killed += 1
    assert killed >= 1
    await sync_to_async(make_key)(cast.acme, "read", "after the cut")
    html = await communicator.receive_from(timeout=10)
    assert 'data-testid="key-count">1<' in html
    await communicator.disconnect()


async def test_a_socket_whose_redis_is_gone_is_closed_for_the_page_to_reconnect(cast: Cast, settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    channel_layers.backends.clear()
    try:
        connected, code = await _communicator(cast.alice).connect(timeout=10)
    finally:
        channel_layers.backends.clear()
    assert connected is False and code == 1011
