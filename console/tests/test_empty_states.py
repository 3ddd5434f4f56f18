"""Empty pages say what they are for and the one action that fills them, with the API or command
line that does the same (issue 19, item 5): the approvals queue (also when a live update empties
it), its history, tools and API keys, in a tenant that has none yet."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from approvals import services
from console.views.approvals import LiveQueue
from tenants.audit import Actor
from tenants.models import Membership, Role, Tenant
from tenants.testing import Cast


@pytest.fixture
def initech(cast: Cast) -> Tenant:
    """A new tenant without tools, keys or requests; alice is its admin, bob its reviewer."""
    tenant = Tenant.objects.create(slug="initech", name="Initech")
    Membership.objects.create(tenant=tenant, user=cast.alice, role=Role.ADMIN)
    Membership.objects.create(tenant=tenant, user=cast.bob, role=Role.REVIEWER)
    return tenant


def empty_state(client: Client, url_name: str, slug: str = "initech", **params: str) -> str:
    response = client.get(reverse(f"console:{url_name}", args=[slug]), params)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('data-testid="empty-state"') == 1, page
    return page[page.index('data-testid="empty-state"') :].split("</details>")[0]


@pytest.mark.django_db
def test_an_empty_queue_says_what_waits_there_and_how_a_request_arrives(
    client: Client, cast: Cast, initech: Tenant
) -> None:
    client.force_login(cast.bob)
    empty = empty_state(client, "approvals")
    assert "Nothing waiting for a decision." in empty and "wait here for a reviewer" in empty
    assert f'href="{reverse("console:agents", args=["initech"])}"' in empty
    assert (
        "curl -X POST http://testserver/api/v1/approvals" in empty and "&quot;risk&quot;: &quot;irreversible" in empty
    )


@pytest.mark.django_db
def test_the_queue_emptied_live_shows_the_same_empty_state(cast: Cast, settings: Any) -> None:
    settings.CONSOLE_BASE_URL = "https://console.example.com"
    approval = services.approval_request_create(
        actor=Actor.system_actor("client"),
        tenant=cast.acme,
        action="refund_order",
        arguments={"order_number": "A-1004"},
        risk="irreversible",
        reason="irreversible",
    ).approval
    membership = Membership.objects.get(tenant=cast.acme, user=cast.bob)
    page = LiveQueue(cast.acme, membership, {"page": "approvals"})
    services.approval_decide(approval=approval, actor=Actor(user=cast.alice), decision="approve")

    pushed = page.render(membership, {"approval_id": str(approval.pk)})

    empty = pushed[pushed.index('<div id="queue-empty"') :]
    assert empty.startswith('<div id="queue-empty" hx-swap-oob="true">') and "Nothing waiting for a decision." in empty
    # No request behind a live update: the snippet names the console's configured address.
    assert "curl -X POST https://console.example.com/api/v1/approvals" in empty
    assert f'href="{reverse("console:agents", args=["acme"])}"' in empty


@pytest.mark.django_db
def test_an_empty_history_says_what_it_keeps_and_a_filtered_one_says_the_filters_match_nothing(
    client: Client, cast: Cast, initech: Tenant
) -> None:
    client.force_login(cast.bob)
    assert "No approval requests yet." in empty_state(client, "approvals_history")
    filtered = empty_state(client, "approvals_history", status="rejected")
    assert "No approval requests match these filters." in filtered and "curl" not in filtered


@pytest.mark.django_db
def test_an_empty_tools_page_shows_the_admin_how_to_add_one(client: Client, cast: Cast, initech: Tenant) -> None:
    client.force_login(cast.alice)
    empty = empty_state(client, "tools")
    assert "No tools yet." in empty and "what agents may call" in empty
    assert f'href="{reverse("console:tool_new", args=["initech"])}"' in empty and "/api/v1/tools" in empty
    assert 'id="tools"' not in client.get(reverse("console:tools", args=["initech"])).content.decode()

    client.force_login(cast.bob)  # a reviewer cannot create one: no button, the API call only
    empty = empty_state(client, "tools")
    assert reverse("console:tool_new", args=["initech"]) not in empty and "/api/v1/tools" in empty


@pytest.mark.django_db
def test_an_empty_api_keys_page_points_at_its_form_and_the_command(client: Client, cast: Cast, initech: Tenant) -> None:
    client.force_login(cast.alice)
    empty = empty_state(client, "api_keys")
    assert "No API keys yet." in empty and 'href="#key-form"' in empty
    assert "python manage.py apikey create --tenant initech" in empty


@pytest.mark.django_db
def test_empty_agents_and_models_pages_show_how_to_add_the_first(client: Client, cast: Cast, initech: Tenant) -> None:
    client.force_login(cast.alice)
    agents = empty_state(client, "agents")
    assert "No agents yet." in agents and f'href="{reverse("console:agent_new", args=["initech"])}"' in agents
    assert "/api/v1/agents" in agents

    page = client.get(reverse("console:catalog", args=["initech"])).content.decode()
    assert page.count('data-testid="empty-state"') == 2
    assert "No providers yet." in page and f'href="{reverse("console:provider_create", args=["initech"])}"' in page
    assert "No models yet." in page and f'href="{reverse("console:model_create", args=["initech"])}"' in page
    assert "/api/v1/providers" in page and "/api/v1/models" in page
