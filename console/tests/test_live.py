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
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), f"/ws/t/{slug}/live/?page=dashboard")
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


def _page_socket(user: Any, query: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), f"/ws/t/acme/live/?{query}")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"args": (), "kwargs": {"tenant_slug": "acme"}}
    return communicator


def _cross_a_threshold(cast: Cast) -> None:
    from budgets import services
    from budgets.tests.factories import make_budget

    make_budget(cast.acme, name="Live <alerting>", limit=2_500, thresholds=[50])
    services.budget_reserve(tenant=cast.acme, model="default", input_tokens=1000, max_output_tokens=1000)


async def test_a_budget_alert_reaches_every_page_of_the_tenant_as_a_banner(cast: Cast) -> None:
    """Any page (here one with no live part of its own, as a viewer) gets the banner, escaped."""
    communicator = _page_socket(cast.vera, "page=members")
    assert (await communicator.connect())[0]
    await sync_to_async(_cross_a_threshold)(cast)
    html = await communicator.receive_from(timeout=5)
    assert 'id="live-banners" hx-swap-oob="afterbegin"' in html
    assert 'data-testid="budget-alert-banner"' in html
    assert "Live &lt;alerting&gt;" in html and "<alerting>" not in html
    assert "reached 50%" in html and "$0.0020 of $0.0025" in html
    await communicator.disconnect()


async def test_the_budgets_page_redraws_its_bars_and_alerts_when_a_threshold_fires(cast: Cast) -> None:
    communicator = _page_socket(cast.bob, "page=budgets")
    assert (await communicator.connect())[0]
    await sync_to_async(_cross_a_threshold)(cast)
    await communicator.receive_from(timeout=5)  # budgets.changed, from creating the budget
    html = await communicator.receive_from(timeout=5)  # budget.alert
    assert 'id="budgets" hx-swap-oob="true"' in html
    assert 'id="budget-alerts" hx-swap-oob="true"' in html
    assert 'data-alert="Live &lt;alerting&gt;"' in html
    assert 'data-testid="budget-alert-banner"' in html  # the banner comes too, as on every page
    await communicator.disconnect()


async def test_a_page_without_a_live_part_ignores_other_events(cast: Cast) -> None:
    communicator = _page_socket(cast.alice, "page=members")
    assert (await communicator.connect())[0]
    await sync_to_async(make_key)(cast.acme, "read", "fresh")
    assert await communicator.receive_nothing(timeout=1)
    await communicator.disconnect()
