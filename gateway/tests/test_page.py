"""The console's Gateway page: snippets with this console's URL and the tenant's aliases, the
request log, usage per key; and in Chromium, a call made with the openai SDK appears in the log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from django.test import Client
from django.urls import reverse

from gateway.models import GatewayRequest
from tenants.models import Scope
from tenants.testing import Cast, ConsolePageContract, make_key


class TestGatewayPage(ConsolePageContract):
    url_name = "console:gateway"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse("console:gateway", args=[slug])


@pytest.mark.django_db
def test_it_shows_the_snippets_the_log_and_usage_per_key(client: Client, cast: Cast) -> None:
    key, _ = make_key(cast.acme, [Scope.GATEWAY], name="support bot")
    GatewayRequest.objects.create(
        tenant=cast.acme,
        api_key=key,
        request_id="req_1",
        endpoint="/v1/chat/completions",
        alias="default",
        model_id="demo-model",
        status=200,
        end_user_id="customer-7",
        input_tokens=12,
        output_tokens=3,
        cost_micros=1234,
        latency_ms=4.2,
        trace_id="a" * 32,
    )
    GatewayRequest.objects.create(
        tenant=cast.acme,
        api_key=key,
        request_id="req_2",
        endpoint="/v1/chat/completions",
        alias="default",
        status=402,
        error_code="budget_exceeded",
        trace_id="b" * 32,
    )
    GatewayRequest.objects.create(
        tenant=cast.globex,
        request_id="req_3",
        endpoint="/v1/chat/completions",
        alias="globex-only",
        status=200,
        trace_id="c" * 32,
    )
    # A request refused before its call was opened (an unknown alias) has no trace to link to.
    GatewayRequest.objects.create(
        tenant=cast.acme,
        api_key=key,
        request_id="req_2",
        endpoint="/v1/chat/completions",
        alias="gpt-4o",
        status=404,
        error_code="model_not_found",
        trace_id="",
    )
    client.force_login(cast.alice)
    response = client.get(reverse("console:gateway", args=["acme"]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "model_not_found" in page
    assert 'base_url="http://testserver/v1"' in page and 'model="default"' in page
    # The Agents SDK snippet never lets the SDK upload its traces to api.openai.com with the key.
    assert "use_for_tracing=False" in page and "set_tracing_disabled(True)" in page
    assert "customer-7" in page and "budget_exceeded" in page and "$0.001234" in page
    assert "support bot" in page and "globex-only" not in page
    assert reverse("console:trace", args=["acme", "a" * 32]) in page
    fragment = client.get(reverse("console:gateway", args=["acme"]), HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<section id="log"') and "customer-7" in fragment


@pytest.mark.browser
def test_a_call_through_the_gateway_appears_in_the_live_log(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    from console.tests.test_browser import sign_in

    alice = page_for()
    sign_in(alice, "alice@acme.test")
    alice.get_by_role("link", name="Gateway").click()
    alice.wait_for_url("**/t/acme/gateway/")
    alice.get_by_text("No requests yet").wait_for()
    assert alice.locator("#gateway-url").inner_text() == f"{live_asgi}/v1"
    _, key = make_key(cast.acme, [Scope.GATEWAY], name="browser bot")
    client = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=key, max_retries=0)
    client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hello"}], extra_headers={"X-AOC-End-User": "customer-9"}
    )
    row = alice.locator("#log tr[data-status='200']")
    row.wait_for(timeout=15_000)  # the log polls every 5 s
    assert "customer-9" in row.inner_text()
    row.get_by_role("link", name="trace").click()
    alice.wait_for_url("**/t/acme/traces/*/")


@pytest.mark.browser
def test_an_admin_binds_a_key_on_the_gateway_page_and_sees_a_bad_end_user_refused(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    from console.tests.test_browser import sign_in
    from gateway.models import KeyBinding

    key, _ = make_key(cast.acme, [Scope.GATEWAY], name="bound bot")
    alice = page_for()
    sign_in(alice, "alice@acme.test")
    alice.goto("/t/acme/gateway/")
    row = alice.locator("#gateway-keys tr", has_text="bound bot")
    row.locator("summary").click()
    row.locator("input[name=end_user_id]").fill("two words")
    row.get_by_role("button", name="Save binding").click()
    # Refused: the form stays open on the row, saying why, and nothing is bound.
    row = alice.locator("#gateway-keys tr", has_text="bound bot")
    row.get_by_text("printable characters without spaces").wait_for()
    assert not KeyBinding.objects.for_tenant(cast.acme).exists()
    row.locator("select[name=agent]").select_option(label="Support agent")
    row.locator("input[name=end_user_id]").fill("customer-42")
    row.get_by_role("button", name="Save binding").click()
    alice.wait_for_url("**/t/acme/gateway/")
    row = alice.locator("#gateway-keys tr", has_text="bound bot")
    assert "Support agent" in row.inner_text() and "customer-42" in row.inner_text()
    binding = KeyBinding.objects.for_tenant(cast.acme).get(api_key=key)
    assert binding.end_user_id == "customer-42" and binding.agent is not None and binding.agent.name == "Support agent"
