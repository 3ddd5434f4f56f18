"""The live websocket: membership is checked on connect, and changes arrive as rendered partials."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from config.asgi import application
from console.consumers import LiveConsumer
from tenants.testing import Cast, make_key

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(slug: str, user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), f"/ws/t/{slug}/live/")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"args": (), "kwargs": {"tenant_slug": slug}}
    return communicator


async def test_it_refuses_anonymous_visitors_and_other_tenants(cast: Cast) -> None:
    for slug, user in (("acme", AnonymousUser()), ("acme", cast.charlie), ("nope", cast.alice)):
        connected, _ = await _communicator(slug, user).connect()
        assert connected is False, (slug, user)


async def test_a_member_receives_the_dashboard_when_a_key_is_created(cast: Cast) -> None:
    communicator = _communicator("acme", cast.alice)
    connected, _ = await communicator.connect()
    assert connected
    await sync_to_async(make_key)(cast.acme, "read", "fresh")
    html = await communicator.receive_from(timeout=5)
    assert 'id="dashboard-stats"' in html and 'hx-swap-oob="true"' in html
    assert 'data-testid="key-count">1<' in html
    assert "api_key.create" in html  # alice is an admin: the activity feed comes too
    await communicator.disconnect()


async def test_a_viewer_gets_the_counters_but_not_the_audit_feed(cast: Cast) -> None:
    communicator = _communicator("acme", cast.vera)
    assert (await communicator.connect())[0]
    await sync_to_async(make_key)(cast.acme, "read", "fresh")
    html = await communicator.receive_from(timeout=5)
    assert 'data-testid="key-count">1<' in html
    assert "dashboard-activity" not in html
    await communicator.disconnect()


async def test_another_tenants_changes_do_not_arrive(cast: Cast) -> None:
    communicator = _communicator("acme", cast.alice)
    assert (await communicator.connect())[0]
    await sync_to_async(make_key)(cast.globex, "read", "globex key")
    assert await communicator.receive_nothing(timeout=1)
    await communicator.disconnect()


async def test_the_asgi_router_serves_the_socket_behind_session_auth(cast: Cast) -> None:
    """Through the real ASGI stack (origin check and session auth), without a session: refused."""
    communicator = WebsocketCommunicator(application, "/ws/t/acme/live/", headers=[(b"origin", b"http://127.0.0.1")])
    connected, _ = await communicator.connect()
    assert connected is False
