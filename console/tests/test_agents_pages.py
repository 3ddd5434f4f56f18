"""Agents, tools, runs and demo pages: a contract per route, what each page does, escaping of
untrusted run content, bounded queries on lists, and live run updates over the websocket."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse

from agents import services
from agents.models import Run, Step, Tool
from agents.tests.test_services import ACTOR, make_run, make_tool, support_agent
from console.consumers import LiveConsumer
from tenants.models import Role
from tenants.testing import Cast, ConsolePageContract

# --- Contracts ---------------------------------------------------------------------------------


class TestAgentsPage(ConsolePageContract):
    url_name = "console:agents"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        support_agent(cast.acme)
        return reverse(self.url_name, args=[slug])


class TestAgentNewPage(ConsolePageContract):
    url_name = "console:agent_new"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestAgentCreate(ConsolePageContract):
    url_name = "console:agent_new"
    role = Role.ADMIN
    method = "post"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {
            "name": "Helper",
            "model_alias": "default",
            "max_steps": 5,
            "max_tokens_per_request": 300,
            "temperature": 0,
        }


class TestAgentPage(ConsolePageContract):
    url_name = "console:agent"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, support_agent(cast.acme).pk])


class TestAgentEdit(ConsolePageContract):
    url_name = "console:agent"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, support_agent(cast.acme).pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {
            "name": "Support agent",
            "instructions": "Be kind.",
            "model_alias": "default",
            "tools": [str(t.pk) for t in Tool.objects.filter(tenant=cast.acme)],
            "scopes": "orders:refund",
            "max_steps": 8,
            "max_tokens_per_request": 1024,
            "temperature": 0,
        }


class TestAgentArchive(ConsolePageContract):
    url_name = "console:agent_archive"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, support_agent(cast.acme).pk])


class TestAgentTryIt(ConsolePageContract):
    url_name = "console:agent_try"
    role = Role.REVIEWER
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, support_agent(cast.acme).pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"input": "Where is order A-1003?"}


class TestToolsPage(ConsolePageContract):
    url_name = "console:tools"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        support_agent(cast.acme)
        return reverse(self.url_name, args=[slug])


class TestToolNewPage(ConsolePageContract):
    url_name = "console:tool_new"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestToolPage(ConsolePageContract):
    url_name = "console:tool"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        support_agent(cast.acme)
        return reverse(self.url_name, args=[slug, Tool.objects.get(tenant=cast.acme, name="refund_order").pk])


class TestToolEdit(ConsolePageContract):
    url_name = "console:tool"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        support_agent(cast.acme)
        return reverse(self.url_name, args=[slug, Tool.objects.get(tenant=cast.acme, name="send_email").pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {
            "name": "send_email",
            "description": "Send an email.",
            "parameters": '{"type": "object", "properties": {"to": {"type": "string"}}}',
            "risk": "write",
            "executor": "builtin",
            "builtin": "send_email",
            "timeout_seconds": 5,
        }


class TestToolDelete(ConsolePageContract):
    url_name = "console:tool_delete"
    role = Role.ADMIN
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        tool = Tool.objects.filter(tenant=cast.acme, name="disposable").first() or make_tool(cast.acme, "disposable")
        return reverse(self.url_name, args=[slug, tool.pk])


class TestDemoPage(ConsolePageContract):
    url_name = "console:demo"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        support_agent(cast.acme)
        return reverse(self.url_name, args=[slug])


class TestRunsPage(ConsolePageContract):
    url_name = "console:runs"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        make_run(cast.acme)
        return reverse(self.url_name, args=[slug])


class TestRunPage(ConsolePageContract):
    url_name = "console:run"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, make_run(cast.acme).pk])


class TestRunCancel(ConsolePageContract):
    url_name = "console:run_cancel"
    role = Role.REVIEWER
    method = "post"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, make_run(cast.acme).pk])


# --- Agents ------------------------------------------------------------------------------------


def _agent_form(cast: Cast, **changes: Any) -> dict[str, Any]:
    data = TestAgentEdit().data(cast)
    data.update(changes)
    return data


@pytest.mark.django_db
def test_the_agents_list_shows_the_pin_and_tools_in_bounded_queries(
    alice_client: Client, cast: Cast, django_assert_max_num_queries: Any
) -> None:
    support_agent(cast.acme)
    url = reverse("console:agents", args=["acme"])
    with django_assert_max_num_queries(12) as few:
        alice_client.get(url)
    for n in range(5):
        services.agent_create(actor=ACTOR, tenant=cast.acme, name=f"Agent {n}", tools=["lookup_order"])
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = alice_client.get(url)
    html = response.content.decode()
    assert "Agent 4" in html and "<code>lookup_order</code>" in html


@pytest.mark.django_db
def test_an_admin_edits_an_agent_into_a_new_version_shown_in_the_history(alice_client: Client, cast: Cast) -> None:
    agent = support_agent(cast.acme)
    url = reverse("console:agent", args=["acme", agent.pk])
    response = alice_client.post(url, _agent_form(cast, instructions="Answer in French."))
    assert response.status_code == 302
    page = alice_client.get(url).content.decode()
    assert "Saved as version 2" in page and 'data-version="2"' in page and 'data-version="1"' in page
    agent.refresh_from_db()
    assert agent.current_version is not None and agent.current_version.instructions == "Answer in French."


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"max_steps": 99}, "max_steps", "less than or equal to 50"),
        ({"temperature": 7}, "temperature", "less than or equal to 2"),
        ({"model_alias": "no spaces"}, "model_alias", "valid “slug”"),
        ({"scopes": "Not A Scope"}, "scopes", "is not a scope"),
    ],
)
def test_agent_validation_errors_show_inline_next_to_the_field(
    alice_client: Client, cast: Cast, changes: dict[str, Any], field: str, words: str
) -> None:
    agent = support_agent(cast.acme)
    response = alice_client.post(reverse("console:agent", args=["acme", agent.pk]), _agent_form(cast, **changes))
    assert response.status_code == 400
    assert words in response.content.decode()
    assert response.context["form"].errors[field]
    agent.refresh_from_db()
    assert agent.current_version is not None and agent.current_version.number == 1


@pytest.mark.django_db
def test_a_duplicate_agent_name_is_refused_on_the_name_field(alice_client: Client, cast: Cast) -> None:
    support_agent(cast.acme)
    response = alice_client.post(
        reverse("console:agent_new", args=["acme"]), TestAgentCreate().data(cast) | {"name": "Support agent"}
    )
    assert response.status_code == 409
    assert "already exists" in response.context["form"].errors["name"][0]


@pytest.mark.django_db
def test_an_unpinned_alias_is_warned_about(alice_client: Client, cast: Cast) -> None:
    agent = services.agent_create(actor=ACTOR, tenant=cast.acme, name="Planner", model_alias="planner")
    html = alice_client.get(reverse("console:agent", args=["acme", agent.pk])).content.decode()
    assert 'data-testid="pin-warning"' in html


@pytest.mark.django_db
def test_viewers_see_no_editor_and_no_try_it(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    html = client.get(reverse("console:agent", args=["acme", support_agent(cast.acme).pk])).content.decode()
    assert 'id="agent-form"' not in html and 'id="try-form"' not in html and "Version history" in html


@pytest.mark.django_db
def test_a_reviewer_tries_an_agent_and_lands_on_the_queued_run(client: Client, cast: Cast) -> None:
    client.force_login(cast.bob)
    agent = support_agent(cast.acme)
    response = client.post(
        reverse("console:agent_try", args=["acme", agent.pk]),
        {"input": "Please refund order A-1001", "end_user_id": "cust-7"},
    )
    run = Run.objects.get(tenant=cast.acme)
    assert response.status_code == 302 and response["Location"] == reverse("console:run", args=["acme", run.pk])
    assert (run.status, run.created_by, run.end_user_id) == ("queued", cast.bob, "cust-7")
    page = client.get(response["Location"]).content.decode()
    assert 'data-status="queued"' in page and "Cancel run" in page


@pytest.mark.django_db
def test_try_it_on_an_archived_agent_explains_why_not(alice_client: Client, cast: Cast) -> None:
    agent = services.agent_archive(actor=ACTOR, agent=support_agent(cast.acme))
    response = alice_client.post(reverse("console:agent_try", args=["acme", agent.pk]), {"input": "hi"})
    assert response.status_code == 409 and "archived" in response.content.decode()
    assert not Run.objects.filter(tenant=cast.acme).exists()


# --- Tools -------------------------------------------------------------------------------------


def _tool_form(**changes: Any) -> dict[str, Any]:
    data = {
        "name": "crm",
        "description": "Update the CRM.",
        "parameters": '{"type": "object", "properties": {"id": {"type": "string"}}}',
        "risk": "write",
        "executor": "builtin",
        "builtin": "lookup_order",
        "timeout_seconds": 5,
    }
    data.update(changes)
    return data


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"parameters": "{not json"}, "parameters", "not valid JSON"),
        ({"parameters": '{"type": "object", "required": "id"}'}, "parameters", "not a valid JSON Schema"),
        ({"executor": "webhook", "webhook_url": "https://10.1.2.3/hook"}, "webhook_url", "internal address"),
        ({"name": "no spaces please"}, "name", "letters, digits"),
    ],
)
def test_tool_validation_errors_show_inline_next_to_the_field(
    alice_client: Client, cast: Cast, settings: Any, changes: dict[str, Any], field: str, words: str
) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = []
    response = alice_client.post(reverse("console:tool_new", args=["acme"]), _tool_form(**changes))
    assert response.status_code == 400
    assert words in " ".join(response.context["form"].errors[field])
    assert not Tool.objects.filter(tenant=cast.acme, name="crm").exists()


@pytest.mark.django_db
def test_a_webhook_tools_secret_is_shown_once(alice_client: Client, cast: Cast, settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    response = alice_client.post(
        reverse("console:tool_new", args=["acme"]),
        _tool_form(executor="webhook", builtin="", webhook_url="http://127.0.0.1:9/hook"),
    )
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    secret = response.context["secret"]
    assert secret.startswith("whsec_") and secret in response.content.decode()
    tool = Tool.objects.get(tenant=cast.acme, name="crm")
    assert secret not in alice_client.get(reverse("console:tool", args=["acme", tool.pk])).content.decode()


@pytest.mark.django_db
def test_a_tool_an_agent_uses_cannot_be_deleted_from_the_console(alice_client: Client, cast: Cast) -> None:
    support_agent(cast.acme)
    tool = Tool.objects.get(tenant=cast.acme, name="lookup_order")
    response = alice_client.post(reverse("console:tool_delete", args=["acme", tool.pk]), follow=True)
    assert "cannot be deleted" in response.content.decode()
    assert Tool.objects.filter(pk=tool.pk).exists()


# --- Runs --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_runs_list_filters_and_stays_within_bounded_queries(
    alice_client: Client, cast: Cast, django_assert_max_num_queries: Any
) -> None:
    make_run(cast.acme, end_user_id="u1")
    url = reverse("console:runs", args=["acme"])
    with django_assert_max_num_queries(14) as few:
        alice_client.get(url)
    for n in range(8):
        make_run(cast.acme, "succeeded" if n % 2 else "queued", end_user_id=f"u{n}", session_id="s")
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = alice_client.get(url).content.decode()
    assert _rows(html) == 9
    assert _rows(alice_client.get(url + "?status=succeeded").content.decode()) == 4
    assert _rows(alice_client.get(url + "?end_user_id=u1").content.decode()) == 2
    agent = support_agent(cast.acme)
    assert _rows(alice_client.get(url + f"?agent={agent.pk}&session_id=s").content.decode()) == 8


def _rows(html: str) -> int:
    """How many run rows (`<tr id="run-<uuid>">`) a page shows."""
    return len(re.findall(r'<tr id="run-[0-9a-f-]{36}"', html))


@pytest.mark.django_db
def test_the_run_page_shows_steps_and_escapes_untrusted_content(alice_client: Client, cast: Cast) -> None:
    run = make_run(cast.acme, "succeeded")
    Run.objects.filter(pk=run.pk).update(
        output="<img src=x onerror=alert(1)>Done", cost_micros=1234, input_tokens=10, output_tokens=5
    )
    Step.objects.create(
        tenant=cast.acme,
        run=run,
        index=0,
        kind="model",
        model_id="demo-support-2025-06-01",
        response={"content": "<b>bold</b>", "tool_calls": [{"id": "c1", "name": "lookup_order"}]},
        input_tokens=10,
        output_tokens=5,
        cost_micros=1234,
    )
    Step.objects.create(
        tenant=cast.acme,
        run=run,
        index=1,
        kind="tool",
        tool_name="lookup_order",
        call_id="c1",
        request={"arguments": {"order_number": "<script>alert('args')</script>"}},
        response={"result": {"note": "<script>alert('result')</script>"}},
    )
    html = alice_client.get(reverse("console:run", args=["acme", run.pk])).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#x27;result&#x27;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#x27;args&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;Done" in html
    assert 'data-testid="model-id">demo-support-2025-06-01<' in html
    assert "$0.0012" in html  # two significant digits under a cent (console/templatetags/fmt.py)


@pytest.mark.django_db
def test_a_reviewer_cancels_a_queued_run(client: Client, cast: Cast) -> None:
    client.force_login(cast.bob)
    run = make_run(cast.acme)
    response = client.post(reverse("console:run_cancel", args=["acme", run.pk]), follow=True)
    assert "The run was cancelled." in response.content.decode()
    run.refresh_from_db()
    assert run.status == "cancelled"
    again = client.post(reverse("console:run_cancel", args=["acme", run.pk]), follow=True)
    assert "already finished" in again.content.decode()


@pytest.mark.django_db
def test_the_demo_page_shows_orders_and_the_outbox(alice_client: Client, cast: Cast) -> None:
    support_agent(cast.acme)
    html = alice_client.get(reverse("console:demo", args=["acme"])).content.decode()
    assert 'data-order="A-1001"' in html and "maria.lopez@example.com" in html and "$199.00" in html
    assert "The outbox is empty." in html


# --- Live updates ------------------------------------------------------------------------------


def _socket(user: Any, query: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), f"/ws/t/acme/live/?{query}")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"args": (), "kwargs": {"tenant_slug": "acme"}}
    return communicator


@pytest.mark.django_db(transaction=True)
async def test_the_runs_list_gets_new_rows_and_swaps_changed_ones(cast: Cast) -> None:
    existing = await sync_to_async(make_run)(cast.acme)
    communicator = _socket(cast.vera, "page=runs")
    assert (await communicator.connect())[0]

    await sync_to_async(services.run_cancel)(actor=ACTOR, run=existing)
    html = await communicator.receive_from(timeout=5)
    assert f'id="run-{existing.pk}"' in html and 'hx-swap-oob="true"' in html and "Cancelled" in html

    fresh = await sync_to_async(make_run)(cast.acme)
    html = await communicator.receive_from(timeout=5)
    assert 'hx-swap-oob="afterbegin:#run-tbody"' in html and f'id="run-{fresh.pk}"' in html

    await sync_to_async(make_run)(cast.globex)
    assert await communicator.receive_nothing(timeout=1)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_filtered_runs_list_ignores_runs_outside_its_filter(cast: Cast) -> None:
    communicator = _socket(cast.vera, "page=runs&end_user_id=u1")
    assert (await communicator.connect())[0]
    await sync_to_async(make_run)(cast.acme, end_user_id="someone-else")
    assert await communicator.receive_nothing(timeout=1)
    await sync_to_async(make_run)(cast.acme, end_user_id="u1")
    assert "u1" in await communicator.receive_from(timeout=5)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_run_page_gets_its_run_re_rendered_and_nothing_else(cast: Cast) -> None:
    run = await sync_to_async(make_run)(cast.acme)
    communicator = _socket(cast.bob, f"page=run&run={run.pk}")
    assert (await communicator.connect())[0]
    await sync_to_async(make_run)(cast.acme)
    assert await communicator.receive_nothing(timeout=1)
    await sync_to_async(services.run_cancel)(actor=ACTOR, run=run)
    html = await communicator.receive_from(timeout=5)
    assert html.lstrip().startswith('<div id="run-live" hx-swap-oob="true">')
    assert 'data-status="cancelled"' in html and "Cancel run" not in html
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_dashboard_does_not_receive_run_rows(cast: Cast) -> None:
    communicator = _socket(cast.alice, "")
    assert (await communicator.connect())[0]
    await sync_to_async(make_run)(cast.acme)
    assert await communicator.receive_nothing(timeout=1)
    await communicator.disconnect()


@pytest.mark.django_db
def test_the_run_page_links_to_its_trace_session_and_end_user(alice_client: Client, cast: Cast) -> None:
    run = make_run(cast.acme, "succeeded")
    Run.objects.filter(pk=run.pk).update(end_user_id="ann", session_id="s-1", trace_id="ab" * 16)
    run.refresh_from_db()
    html = alice_client.get(reverse("console:run", args=["acme", run.pk])).content.decode()
    assert f'href="/t/acme/traces/{run.trace_id}/"' in html
    assert 'href="/t/acme/traces/end-users/ann/"' in html and 'href="/t/acme/traces/sessions/s-1/"' in html
