"""The agents, tools and runs REST API: a contract for every route, and what each call does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from agents import services
from agents.models import Agent, Run, Step, Tool
from agents.tests.test_services import ACTOR, OBJECT_SCHEMA, make_run, make_tool, support_agent
from tenants.models import Scope
from tenants.testing import ApiClient, ApiContract, Cast, assert_error

# --- Contracts: 401 / 403 / 404 for every endpoint ---------------------------------------------


class TestToolList(ApiContract):
    url_name = "tool-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        support_agent(cast.acme)
        return reverse(self.url_name)


class TestToolCreate(ApiContract):
    url_name = "tool-list"
    method = "post"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return {
            "name": f"tool_{timezone.now().timestamp():.0f}_{id(self)}",
            "description": "A tool.",
            "parameters": OBJECT_SCHEMA,
            "executor": "builtin",
            "builtin": "lookup_order",
        }

    def _call(self, client: Any, key: str | None, cast: Cast) -> Any:
        # Each call creates a tool; a fresh name keeps the allowed call from colliding.
        api = ApiClient(client, key)
        body = self.body(cast)
        body["name"] += f"_{Tool.objects.count()}"
        return api.post(self.path(cast), body)


class TestToolDetail(ApiContract):
    url_name = "tool-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        support_agent(cast.acme)
        return reverse(self.url_name, args=[Tool.objects.get(tenant=cast.acme, name="lookup_order").pk])


class TestToolUpdate(ApiContract):
    url_name = "tool-detail"
    method = "patch"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        support_agent(cast.acme)
        return reverse(self.url_name, args=[Tool.objects.get(tenant=cast.acme, name="lookup_order").pk])

    def body(self, cast: Cast) -> Any:
        return {"description": "Find an order."}


class TestToolDelete(ApiContract):
    url_name = "tool-detail"
    method = "delete"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        tool = Tool.objects.filter(tenant=cast.acme, name="disposable").first() or make_tool(cast.acme, "disposable")
        return reverse(self.url_name, args=[tool.pk])


class TestAgentList(ApiContract):
    url_name = "agent-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        support_agent(cast.acme)
        return reverse(self.url_name)


class TestAgentCreate(ApiContract):
    url_name = "agent-list"
    method = "post"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def _call(self, client: Any, key: str | None, cast: Cast) -> Any:
        name = f"Agent {Agent.objects.count()}"
        return ApiClient(client, key).post(self.path(cast), {"name": name, "instructions": "Help."})


class TestAgentDetail(ApiContract):
    url_name = "agent-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[support_agent(cast.acme).pk])


class TestAgentUpdate(ApiContract):
    url_name = "agent-detail"
    method = "patch"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[support_agent(cast.acme).pk])

    def body(self, cast: Cast) -> Any:
        return {"instructions": "Be kind."}


class TestAgentArchive(ApiContract):
    url_name = "agent-detail"
    method = "delete"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[support_agent(cast.acme).pk])


class TestAgentVersions(ApiContract):
    url_name = "agent-versions"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[support_agent(cast.acme).pk])


class TestRunList(ApiContract):
    url_name = "run-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        make_run(cast.acme)
        return reverse(self.url_name)


class TestRunCreate(ApiContract):
    url_name = "run-list"
    method = "post"
    scope = Scope.RUNS_WRITE

    def path(self, cast: Cast) -> str:
        support_agent(cast.acme)
        support_agent(cast.globex)
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return {"agent": "Support agent", "input": "Where is order A-1002?"}


class TestRunDetail(ApiContract):
    url_name = "run-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[make_run(cast.acme).pk])


class TestRunCancel(ApiContract):
    url_name = "run-cancel"
    method = "post"
    scope = Scope.RUNS_WRITE
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[make_run(cast.acme).pk])


# --- Tools -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_and_reads_tools_with_a_read_key(api: Callable[..., ApiClient], cast: Cast) -> None:
    support_agent(cast.acme)
    reader = api(Scope.READ)
    body = reader.get("/api/v1/tools").json()
    assert [t["name"] for t in body["results"]] == ["lookup_order", "refund_order", "send_email"]
    refund = next(t for t in body["results"] if t["name"] == "refund_order")
    assert (refund["risk"], refund["required_scope"], refund["executor"]) == (
        "irreversible",
        "orders:refund",
        "builtin",
    )
    assert "signing_secret" not in refund and "webhook_secret_encrypted" not in refund
    assert reader.get(f"/api/v1/tools/{refund['id']}/").json()["parameters"]["required"] == ["order_number"]


@pytest.mark.django_db
def test_an_invalid_json_schema_is_refused_naming_parameters(acme_admin_api: ApiClient) -> None:
    response = acme_admin_api.post(
        "/api/v1/tools",
        {
            "name": "bad",
            "description": "x",
            "parameters": {"type": "obj"},
            "executor": "builtin",
            "builtin": "send_email",
        },
    )
    error = assert_error(response, 400, "validation_error")
    assert error["message"].startswith("parameters: is not a valid JSON Schema")
    assert list(error["fields"]) == ["parameters"]


@pytest.mark.django_db
def test_a_missing_field_is_refused_naming_it(acme_admin_api: ApiClient) -> None:
    error = assert_error(acme_admin_api.post("/api/v1/tools", {"name": "x"}), 400, "validation_error")
    assert {"description", "parameters", "executor"} <= set(error["fields"])


@pytest.mark.django_db
def test_a_webhook_to_a_private_address_is_refused_naming_webhook_url(acme_admin_api: ApiClient, settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = []
    body = {
        "name": "crm",
        "description": "CRM",
        "parameters": OBJECT_SCHEMA,
        "executor": "webhook",
        "webhook_url": "https://169.254.169.254/latest",
    }
    error = assert_error(acme_admin_api.post("/api/v1/tools", body), 400, "validation_error")
    assert error["message"].startswith("webhook_url: ") and "internal address" in error["message"]


@pytest.mark.django_db
def test_a_webhook_tools_secret_is_returned_once(acme_admin_api: ApiClient, settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    body = {
        "name": "crm",
        "description": "CRM",
        "parameters": OBJECT_SCHEMA,
        "executor": "webhook",
        "webhook_url": "http://127.0.0.1:9/hook",
        "risk": "write",
    }
    created = acme_admin_api.post("/api/v1/tools", body)
    assert created.status_code == 201, created.content
    secret = created.json()["signing_secret"]
    assert secret.startswith("whsec_") and created.json()["has_signing_secret"] is True
    again = acme_admin_api.get(f"/api/v1/tools/{created.json()['id']}")
    assert secret not in again.content.decode() and again.json()["has_signing_secret"] is True
    rotated = acme_admin_api.patch(f"/api/v1/tools/{created.json()['id']}", {"rotate_secret": True})
    assert rotated.json()["signing_secret"] not in ("", secret)


@pytest.mark.django_db
def test_a_duplicate_tool_name_is_a_conflict(acme_admin_api: ApiClient, cast: Cast) -> None:
    support_agent(cast.acme)
    body = {
        "name": "lookup_order",
        "description": "x",
        "parameters": OBJECT_SCHEMA,
        "executor": "builtin",
        "builtin": "lookup_order",
    }
    error = assert_error(acme_admin_api.post("/api/v1/tools", body), 409, "conflict")
    assert error["fields"] == {"name": ["a tool called 'lookup_order' already exists."]}


@pytest.mark.django_db
def test_a_tool_an_agent_has_cannot_be_deleted(acme_admin_api: ApiClient, cast: Cast) -> None:
    support_agent(cast.acme)
    tool = Tool.objects.get(tenant=cast.acme, name="refund_order")
    error = assert_error(acme_admin_api.delete(f"/api/v1/tools/{tool.pk}"), 409, "conflict")
    assert "Support agent" in error["message"]


# --- Agents ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_agent_is_created_with_tools_by_name_or_id_and_versioned_on_edit(
    acme_admin_api: ApiClient, cast: Cast
) -> None:
    support_agent(cast.acme)
    lookup = Tool.objects.get(tenant=cast.acme, name="lookup_order")
    created = acme_admin_api.post(
        "/api/v1/agents",
        {
            "name": "Triage",
            "instructions": "Sort tickets.",
            "model_alias": "classifier",
            "tools": [str(lookup.pk), "send_email"],
            "scopes": ["tickets:write"],
            "max_steps": 4,
            "max_tokens_per_request": 256,
            "temperature": 0.2,
        },
    )
    assert created.status_code == 201, created.content
    agent = created.json()
    assert (agent["version"], agent["tools"], agent["model_alias"]) == (1, ["lookup_order", "send_email"], "classifier")
    assert agent["versions_url"] == f"/api/v1/agents/{agent['id']}/versions"

    edited = acme_admin_api.patch(f"/api/v1/agents/{agent['id']}", {"tools": ["lookup_order"], "max_steps": 6})
    assert edited.status_code == 200, edited.content
    assert (edited.json()["version"], edited.json()["tools"], edited.json()["instructions"]) == (
        2,
        ["lookup_order"],
        "Sort tickets.",
    )
    versions = acme_admin_api.get(agent["versions_url"]).json()["results"]
    assert [(v["version"], v["max_steps"], v["tools"]) for v in versions] == [
        (2, 6, ["lookup_order"]),
        (1, 4, ["lookup_order", "send_email"]),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tools": ["no_such_tool"]}, "tools"),
        ({"max_steps": 51}, "max_steps"),
        ({"max_steps": 0}, "max_steps"),
        ({"temperature": 2.1}, "temperature"),
        ({"max_tokens_per_request": 0}, "max_tokens_per_request"),
        ({"model_alias": "no spaces"}, "model_alias"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_agent_input_is_refused_naming_the_field(
    acme_admin_api: ApiClient, body: dict[str, Any], field: str
) -> None:
    error = assert_error(acme_admin_api.post("/api/v1/agents", {"name": "Triage", **body}), 400, "validation_error")
    assert field in error["fields"], error


@pytest.mark.django_db
def test_another_tenants_tool_is_unknown_to_an_agent(acme_admin_api: ApiClient, cast: Cast) -> None:
    theirs = make_tool(cast.globex, "globex_tool")
    error = assert_error(
        acme_admin_api.post("/api/v1/agents", {"name": "Triage", "tools": [str(theirs.pk)]}), 400, "validation_error"
    )
    assert error["message"].startswith("tools: unknown tool")


@pytest.mark.django_db
def test_delete_archives_an_agent_which_then_starts_no_runs(api: Callable[..., ApiClient], cast: Cast) -> None:
    admin = api(Scope.ADMIN)
    agent = support_agent(cast.acme)
    assert admin.delete(f"/api/v1/agents/{agent.pk}").status_code == 204
    assert admin.get("/api/v1/agents").json()["results"] == []
    listed = admin.get("/api/v1/agents?archived=true").json()["results"]
    assert [(a["name"], a["archived"]) for a in listed] == [("Support agent", True)]
    error = assert_error(
        api(Scope.RUNS_WRITE).post("/api/v1/runs", {"agent": str(agent.pk), "input": "hi"}), 409, "conflict"
    )
    assert "archived" in error["message"]


# --- Runs --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_is_accepted_with_202_and_queued_on_the_current_version(
    api: Callable[..., ApiClient], cast: Cast
) -> None:
    agent = support_agent(cast.acme)
    writer = api(Scope.RUNS_WRITE)
    response = writer.post(
        "/api/v1/runs",
        {
            "agent": "Support agent",
            "input": "Please refund order A-1001",
            "end_user_id": "cust-42",
            "session_id": "s-1",
            "metadata": {"channel": "chat"},
        },
    )
    assert response.status_code == 202, response.content
    run = response.json()
    assert (run["status"], run["agent"]["name"], run["agent_version"]) == ("queued", "Support agent", 1)
    assert (run["end_user_id"], run["session_id"], run["metadata"]) == ("cust-42", "s-1", {"channel": "chat"})
    stored = Run.objects.get(pk=run["id"])
    assert stored.tenant == cast.acme and stored.agent == agent and stored.api_key is not None
    # The writer may follow the run it started.
    assert writer.get(f"/api/v1/runs/{run['id']}").json()["status"] == "queued"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": "Nobody", "input": "hi"}, "agent"),
        ({"agent": "00000000-0000-0000-0000-000000000000", "input": "hi"}, "agent"),
        ({"input": "hi"}, "agent"),
        ({"agent": "Support agent", "input": "   "}, "input"),
        ({"agent": "Support agent"}, "input"),
        ({"agent": "Support agent", "input": "hi", "metadata": [1]}, "metadata"),
        ({"agent": "Support agent", "input": "hi", "end_user_id": "x" * 201}, "end_user_id"),
    ],
)
def test_a_bad_run_request_is_refused_naming_the_field(
    api: Callable[..., ApiClient], cast: Cast, body: dict[str, Any], field: str
) -> None:
    support_agent(cast.acme)
    error = assert_error(api(Scope.RUNS_WRITE).post("/api/v1/runs", body), 400)
    assert field in error["fields"], error


@pytest.mark.django_db
def test_another_tenants_agent_is_unknown_when_starting_a_run(api: Callable[..., ApiClient], cast: Cast) -> None:
    theirs = support_agent(cast.globex)
    error = assert_error(api(Scope.RUNS_WRITE).post("/api/v1/runs", {"agent": str(theirs.pk), "input": "hi"}), 400)
    assert error["message"].startswith("agent: ")
    assert not Run.objects.filter(tenant=cast.acme).exists()


@pytest.mark.django_db
def test_runs_are_filtered_and_cursor_paginated(api: Callable[..., ApiClient], cast: Cast) -> None:
    other = services.agent_create(actor=ACTOR, tenant=cast.acme, name="Other")
    make_run(cast.acme, end_user_id="u1", session_id="s1")
    make_run(cast.acme, "succeeded", end_user_id="u1", session_id="s2")
    make_run(cast.acme, "failed", end_user_id="u2")
    services.run_create(actor=ACTOR, tenant=cast.acme, agent=other, input="hi")
    reader = api(Scope.READ)

    def ids(query: str) -> int:
        response = reader.get(f"/api/v1/runs{query}")
        assert response.status_code == 200, response.content
        return len(response.json()["results"])

    assert ids("") == 4
    assert ids("?agent=Support%20agent") == 3
    assert ids(f"?agent={other.pk}") == 1
    assert ids("?status=succeeded") == 1
    assert ids("?end_user_id=u1") == 2
    assert ids("?end_user_id=u1&session_id=s2") == 1
    page = reader.get("/api/v1/runs?page_size=3").json()
    assert len(page["results"]) == 3 and page["next"]
    rest = reader.get(page["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    assert_error(reader.get("/api/v1/runs?status=sleeping"), 400, "validation_error")
    assert assert_error(reader.get("/api/v1/runs?agent=Nobody"), 400)["message"].startswith("agent: ")


@pytest.mark.django_db
def test_a_run_shows_its_steps_with_exact_model_ids_tools_tokens_and_cost(
    api: Callable[..., ApiClient], cast: Cast
) -> None:
    run = make_run(cast.acme, "succeeded")
    Step.objects.create(
        tenant=cast.acme,
        run=run,
        index=0,
        kind="model",
        model_id="demo-support-2025-06-01",
        input_tokens=120,
        output_tokens=30,
        cost_micros=105,
        latency_ms=12,
        response={"content": "", "tool_calls": [{"id": "c1", "name": "lookup_order"}]},
    )
    Step.objects.create(
        tenant=cast.acme,
        run=run,
        index=1,
        kind="tool",
        tool_name="lookup_order",
        call_id="c1",
        request={"arguments": {"order_number": "A-1001"}},
        response={"result": {"status": "paid"}},
        latency_ms=3,
    )
    body = api(Scope.READ).get(f"/api/v1/runs/{run.pk}").json()
    model, tool = body["steps"]
    assert (model["kind"], model["model_id"], model["input_tokens"], model["cost_usd"]) == (
        "model",
        "demo-support-2025-06-01",
        120,
        "0.000105",
    )
    assert (tool["tool_name"], tool["arguments"], tool["result"], tool["latency_ms"]) == (
        "lookup_order",
        {"order_number": "A-1001"},
        {"status": "paid"},
        3,
    )
    assert "messages" in body


@pytest.mark.django_db
def test_cancel_answers_for_each_state(api: Callable[..., ApiClient], cast: Cast) -> None:
    writer = api(Scope.RUNS_WRITE)
    queued, running, done = make_run(cast.acme), make_run(cast.acme, "running"), make_run(cast.acme, "succeeded")
    assert writer.post(f"/api/v1/runs/{queued.pk}/cancel").json()["status"] == "cancelled"
    body = writer.post(f"/api/v1/runs/{running.pk}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested_at"]
    error = assert_error(writer.post(f"/api/v1/runs/{done.pk}/cancel"), 409, "conflict")
    assert "already finished" in error["message"]


@pytest.mark.django_db
def test_a_read_key_cannot_start_or_cancel_runs(api: Callable[..., ApiClient], cast: Cast) -> None:
    support_agent(cast.acme)
    reader = api(Scope.READ)
    error = assert_error(reader.post("/api/v1/runs", {"agent": "Support agent", "input": "hi"}), 403)
    assert "runs:write" in error["message"]
    assert_error(reader.post(f"/api/v1/runs/{make_run(cast.acme).pk}/cancel"), 403, "permission_denied")
