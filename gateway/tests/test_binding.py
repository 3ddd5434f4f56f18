"""A gateway key bound to an agent and an end user: every call made with it is for them, whatever
its request says; admins bind and unbind keys on the Gateway page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Agent
from agents.services import agent_create
from catalog.fake_upstream import FakeUpstream, Scripted
from gateway.models import GatewayRequest, KeyBinding
from gateway.services import key_binding_set
from gateway.tests.setup import Gateway, gateway_tenant, recorded
from tenants.audit import Actor
from tenants.models import AuditEvent, Role, Scope
from tenants.testing import Cast, ConsolePageContract, make_key


class TestKeyBinding(ConsolePageContract):
    url_name = "console:gateway_key_binding"
    method = "post"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        key = getattr(self, "_key", None)
        if key is None:
            key, _ = make_key(cast.acme, [Scope.GATEWAY], name="bound bot")
            self._key = key
        return reverse(self.url_name, args=[slug, key.pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"agent": "", "end_user_id": "customer-1"}


@pytest.mark.django_db
def test_an_admin_binds_a_key_to_an_agent_and_an_end_user_and_unbinds_it(client: Client, cast: Cast) -> None:
    key, _ = make_key(cast.acme, [Scope.GATEWAY], name="support bot")
    agent = Agent.objects.for_tenant(cast.acme).filter(archived=False).first()
    assert agent is not None
    client.force_login(cast.alice)
    url = reverse("console:gateway_key_binding", args=["acme", key.pk])
    response = client.post(url, {"agent": str(agent.pk), "end_user_id": "customer-7"})
    assert response.status_code == 302
    binding = KeyBinding.objects.for_tenant(cast.acme).get(api_key=key)
    assert (binding.agent_id, binding.end_user_id) == (agent.pk, "customer-7")
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="gateway.key_binding_set").count() == 1
    page = client.get(reverse("console:gateway", args=["acme"])).content.decode()
    assert "support bot" in page and "customer-7" in page and agent.name in page
    assert client.post(url, {"agent": "", "end_user_id": ""}).status_code == 302
    assert not KeyBinding.objects.for_tenant(cast.acme).filter(api_key=key).exists()


@pytest.mark.django_db
def test_a_bad_end_user_or_another_tenants_agent_is_a_400_that_binds_nothing(client: Client, cast: Cast) -> None:
    key, _ = make_key(cast.acme, [Scope.GATEWAY], name="support bot")
    client.force_login(cast.alice)
    url = reverse("console:gateway_key_binding", args=["acme", key.pk])
    response = client.post(url, {"agent": "", "end_user_id": "two words"})
    assert response.status_code == 400
    assert "printable characters without spaces" in response.content.decode()
    foreign = Agent.objects.for_tenant(cast.globex).first()
    assert foreign is not None
    assert client.post(url, {"agent": str(foreign.pk), "end_user_id": ""}).status_code == 400
    assert not KeyBinding.objects.for_tenant(cast.acme).exists()


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeUpstream]:
    settings.PROVIDER_ALLOWED_HOSTS = ["127.0.0.1"]
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def gw(fake: FakeUpstream) -> Gateway:
    return gateway_tenant(fake.base_url)


@pytest.mark.django_db(transaction=True)
def test_a_bound_keys_agent_and_end_user_win_over_what_the_request_says(
    live_asgi: str, fake: FakeUpstream, gw: Gateway
) -> None:
    bound = agent_create(actor=Actor.system_actor("test"), tenant=gw.tenant, name="Support")
    agent_create(actor=Actor.system_actor("test"), tenant=gw.tenant, name="Other")
    key_binding_set(actor=Actor.system_actor("test"), api_key=gw.key, agent=bound, end_user_id="customer-7")
    fake.queue(Scripted("Hello."))
    client = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=gw.secret, max_retries=0)
    client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Hi"}],
        user="someone-else",
        extra_headers={"X-AOC-Agent": "Other", "X-AOC-End-User": "someone-else"},
    )
    recorded()
    (logged,) = GatewayRequest.objects.for_tenant(gw.tenant)
    assert (logged.end_user_id, logged.agent_id) == ("customer-7", str(bound.pk))
    # No max_tokens from the client: the gateway bounded the output to fit the agent's cap of
    # 1,024 tokens a request (input included), as the run engine does, rather than refuse.
    sent = fake.requests[-1].body
    assert 1000 < sent["max_completion_tokens" if "max_completion_tokens" in sent else "max_tokens"] < 1024


@pytest.mark.django_db(transaction=True)
def test_a_key_bound_to_an_archived_agent_is_refused(live_asgi: str, gw: Gateway) -> None:
    bound = agent_create(actor=Actor.system_actor("test"), tenant=gw.tenant, name="Support")
    key_binding_set(actor=Actor.system_actor("test"), api_key=gw.key, agent=bound)
    bound.archived = True
    bound.save(update_fields=["archived"])
    client = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=gw.secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}])
    assert "archived" in raised.value.message
