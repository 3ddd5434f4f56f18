"""Agents, tools and runs services: validation names the field, every edit makes a version,
runs bind their version, cancel works in every state, and configuration changes are audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from agents import services
from agents.demo import SUPPORT_AGENT, seed_agents
from agents.models import Agent, AgentVersionTool, Run, Step, Tool
from catalog import crypto
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldConflictError, FieldError
from tenants.models import AuditEvent, Tenant
from tenants.testing import Cast

ACTOR = Actor.system_actor("tests")
OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


# --- Helpers shared with the API and console tests ----------------------------------------------


def support_agent(tenant: Tenant) -> Agent:
    """The demo Support agent of `tenant` (seeded if the kernel's seed has not done it yet)."""
    return seed_agents(tenant)


def make_tool(tenant: Tenant, name: str = "search", **extra: Any) -> Tool:
    fields: dict[str, Any] = {
        "description": "Search the docs.",
        "parameters": OBJECT_SCHEMA,
        "executor": Tool.Executor.BUILTIN,
        "builtin": "lookup_order",
    }
    fields.update(extra)
    return services.tool_create(actor=ACTOR, tenant=tenant, name=name, **fields).tool


def make_run(tenant: Tenant, status: str = Run.Status.QUEUED, **extra: Any) -> Run:
    agent = support_agent(tenant)
    run = services.run_create(actor=ACTOR, tenant=tenant, agent=agent, input="Where is order A-1001?", **extra)
    if status != Run.Status.QUEUED:
        fields: dict[str, Any] = {"status": status}
        if status in Run.FINAL_STATUSES:
            fields["finished_at"] = timezone.now()
        Run.objects.filter(pk=run.pk).update(**fields)
        run.refresh_from_db()
    return run


def field_of(excinfo: pytest.ExceptionInfo[Any]) -> str:
    return excinfo.value.field


# --- Tools -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_a_builtin_tool_and_audits_it(cast: Cast) -> None:
    tool = make_tool(cast.acme, "search")
    assert tool.parameters == OBJECT_SCHEMA and tool.webhook_secret_encrypted == ""
    event = AuditEvent.objects.get(tenant=cast.acme, action="tool.create", target_id=str(tool.pk))
    assert event.after is not None and event.after["name"] == "search"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "has space"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"description": "  "}, "description"),
        ({"parameters": {"type": "nonsense"}}, "parameters"),
        ({"parameters": {"type": "string"}}, "parameters"),
        ({"parameters": "not a schema"}, "parameters"),
        ({"risk": "catastrophic"}, "risk"),
        ({"required_scope": "Orders Refund"}, "required_scope"),
        ({"builtin": "format_disk"}, "builtin"),
        ({"executor": "carrier-pigeon"}, "executor"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"executor": "webhook", "webhook_url": ""}, "webhook_url"),
    ],
)
def test_it_refuses_an_invalid_tool_naming_the_field(cast: Cast, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as excinfo:
        make_tool(cast.acme, **changes)
    assert field_of(excinfo) == field
    assert excinfo.value.message.startswith(f"{field}: ")


@pytest.mark.django_db
def test_an_invalid_schema_error_says_what_is_wrong(cast: Cast) -> None:
    with pytest.raises(FieldError) as excinfo:
        make_tool(cast.acme, parameters={"type": "object", "properties": {"q": {"type": 5}}})
    assert "not a valid JSON Schema" in excinfo.value.message and "properties/q/type" in excinfo.value.message


@pytest.mark.django_db
def test_it_refuses_webhooks_to_internal_addresses(cast: Cast, settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = []
    for url in ("https://127.0.0.1/hook", "https://10.0.0.8/hook", "http://example.com/hook"):
        with pytest.raises(FieldError) as excinfo:
            make_tool(cast.acme, executor="webhook", webhook_url=url)
        assert field_of(excinfo) == "webhook_url", url


@pytest.mark.django_db
def test_a_webhook_tool_gets_a_signing_secret_shown_once_and_stored_encrypted(cast: Cast, settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    saved = services.tool_create(
        actor=ACTOR,
        tenant=cast.acme,
        name="crm",
        description="Update the CRM.",
        parameters=OBJECT_SCHEMA,
        executor="webhook",
        webhook_url="http://127.0.0.1:9/hook",
    )
    assert saved.signing_secret.startswith("whsec_")
    stored = Tool.objects.get(pk=saved.tool.pk).webhook_secret_encrypted
    assert saved.signing_secret not in stored
    assert crypto.decrypt(stored) == saved.signing_secret
    event = AuditEvent.objects.get(tenant=cast.acme, action="tool.create", target_id=str(saved.tool.pk))
    assert saved.signing_secret not in str(event.after)

    unchanged = services.tool_update(actor=ACTOR, tool=saved.tool, description="Update the CRM record.")
    assert unchanged.signing_secret == ""
    rotated = services.tool_update(actor=ACTOR, tool=saved.tool, rotate_secret=True)
    assert rotated.signing_secret.startswith("whsec_") and rotated.signing_secret != saved.signing_secret


@pytest.mark.django_db
def test_tool_names_are_unique_per_tenant_only(cast: Cast) -> None:
    make_tool(cast.acme, "search")
    with pytest.raises(FieldConflictError) as excinfo:
        make_tool(cast.acme, "search")
    assert excinfo.value.field == "name" and excinfo.value.status_code == 409
    assert make_tool(cast.globex, "search").tenant == cast.globex


@pytest.mark.django_db
def test_an_update_that_changes_nothing_writes_nothing(cast: Cast) -> None:
    tool = make_tool(cast.acme, "search")
    services.tool_update(actor=ACTOR, tool=tool, description="Search the docs.")
    assert not AuditEvent.objects.filter(tenant=cast.acme, action="tool.update").exists()
    services.tool_update(actor=ACTOR, tool=tool, risk="write")
    event = AuditEvent.objects.get(tenant=cast.acme, action="tool.update")
    assert event.before is not None and event.after is not None
    assert (event.before["risk"], event.after["risk"]) == ("read", "write")


@pytest.mark.django_db
def test_a_tool_in_an_agents_history_cannot_be_deleted(cast: Cast) -> None:
    tool = make_tool(cast.acme, "search")
    agent = services.agent_create(actor=ACTOR, tenant=cast.acme, name="Helper", tools=[tool])
    services.agent_update(actor=ACTOR, agent=agent, tools=[])
    with pytest.raises(ConflictError, match="Helper"):
        services.tool_delete(actor=ACTOR, tool=tool)
    unused = make_tool(cast.acme, "unused")
    unused_id = unused.pk
    services.tool_delete(actor=ACTOR, tool=unused)
    assert not Tool.objects.filter(pk=unused_id).exists()
    assert AuditEvent.objects.filter(tenant=cast.acme, action="tool.delete", target_id=str(unused_id)).exists()


# --- Agents ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_edit_makes_a_new_immutable_version(cast: Cast) -> None:
    search = make_tool(cast.acme, "search")
    agent = services.agent_create(
        actor=ACTOR, tenant=cast.acme, name="Helper", instructions="Be brief.", tools=["search"], scopes=["docs:read"]
    )
    first = agent.current_version
    assert first is not None and first.number == 1
    assert list(first.tools.all()) == [search]
    assert AgentVersionTool.objects.get(agent_version=first).tenant == cast.acme

    agent = services.agent_update(actor=ACTOR, agent=agent, instructions="Be very brief.", temperature=0.5)
    second = agent.current_version
    assert second is not None and second.number == 2 and second.pk != first.pk
    assert (second.instructions, second.temperature, list(second.tools.all())) == ("Be very brief.", 0.5, [search])
    first.refresh_from_db()
    assert (first.instructions, first.temperature) == ("Be brief.", 0.0)
    assert [e.action for e in AuditEvent.objects.filter(tenant=cast.acme, target_id=str(agent.pk))] == [
        "agent.update",
        "agent.create",
    ]


@pytest.mark.django_db
def test_a_rename_or_a_no_op_edit_makes_no_new_version(cast: Cast) -> None:
    agent = services.agent_create(actor=ACTOR, tenant=cast.acme, name="Helper")
    agent = services.agent_update(actor=ACTOR, agent=agent, name="Helper", max_steps=8)
    assert agent.current_version.number == 1  # type: ignore[union-attr]
    agent = services.agent_update(actor=ACTOR, agent=agent, name="Assistant")
    assert agent.name == "Assistant" and agent.current_version.number == 1  # type: ignore[union-attr]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": " "}, "name"),
        ({"model_alias": "not an alias!"}, "model_alias"),
        ({"tools": ["no_such_tool"]}, "tools"),
        ({"scopes": ["Refund Everything"]}, "scopes"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 51}, "max_steps"),
        ({"max_tokens_per_request": 0}, "max_tokens_per_request"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
    ],
)
def test_it_refuses_an_invalid_agent_naming_the_field(cast: Cast, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as excinfo:
        services.agent_create(actor=ACTOR, tenant=cast.acme, **{"name": "Helper", **changes})
    assert field_of(excinfo) == field
    assert not Agent.objects.filter(tenant=cast.acme, name="Helper").exists()


@pytest.mark.django_db
def test_an_agent_cannot_be_granted_another_tenants_tool(cast: Cast) -> None:
    theirs = make_tool(cast.globex, "globex_only")
    for ref in (theirs, "globex_only", str(theirs.pk)):
        with pytest.raises(FieldError) as excinfo:
            services.agent_create(actor=ACTOR, tenant=cast.acme, name="Helper", tools=[ref])
        assert field_of(excinfo) == "tools"


@pytest.mark.django_db
def test_an_alias_without_a_pin_is_allowed(cast: Cast) -> None:
    agent = services.agent_create(actor=ACTOR, tenant=cast.acme, name="Planner", model_alias="planner")
    assert agent.current_version.model_alias == "planner"  # type: ignore[union-attr]


@pytest.mark.django_db
def test_agent_names_are_unique_per_tenant(cast: Cast) -> None:
    services.agent_create(actor=ACTOR, tenant=cast.acme, name="Helper")
    with pytest.raises(FieldConflictError):
        services.agent_create(actor=ACTOR, tenant=cast.acme, name="Helper")


@pytest.mark.django_db
def test_the_demo_seed_is_idempotent(cast: Cast) -> None:
    first = seed_agents(cast.acme)
    again = seed_agents(cast.acme)
    assert first == again and first.name == SUPPORT_AGENT
    assert Tool.objects.filter(tenant=cast.acme).count() == 3
    assert Agent.objects.filter(tenant=cast.acme).count() == 1
    version = first.current_version
    assert version is not None and version.model_alias == "default" and "orders:refund" in version.scopes
    refund = Tool.objects.get(tenant=cast.acme, name="refund_order")
    assert (refund.risk, refund.required_scope) == ("irreversible", "orders:refund")


# --- Runs --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_keeps_the_version_it_started_with(cast: Cast) -> None:
    agent = support_agent(cast.acme)
    run = services.run_create(actor=ACTOR, tenant=cast.acme, agent=agent, input="Hello", end_user_id="u1")
    services.agent_update(actor=ACTOR, agent=agent, instructions="Something else.")
    run.refresh_from_db()
    assert run.status == "queued" and run.agent_version.number == 1
    agent.refresh_from_db()
    assert agent.current_version.number == 2  # type: ignore[union-attr]


@pytest.mark.django_db
def test_it_refuses_runs_of_archived_agents(cast: Cast) -> None:
    agent = services.agent_archive(actor=ACTOR, agent=support_agent(cast.acme))
    with pytest.raises(ConflictError, match="archived"):
        services.run_create(actor=ACTOR, tenant=cast.acme, agent=agent, input="Hello")
    agent = services.agent_restore(actor=ACTOR, agent=agent)
    assert services.run_create(actor=ACTOR, tenant=cast.acme, agent=agent, input="Hello").status == "queued"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"input": "  "}, "input"),
        ({"end_user_id": "u" * 201}, "end_user_id"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": {"blob": "x" * 20_000}}, "metadata"),
    ],
)
def test_it_refuses_an_invalid_run_naming_the_field(cast: Cast, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as excinfo:
        services.run_create(
            **{"actor": ACTOR, "tenant": cast.acme, "agent": support_agent(cast.acme), "input": "x", **changes}
        )
    assert field_of(excinfo) == field


@pytest.mark.django_db
def test_it_refuses_a_run_of_another_tenants_agent(cast: Cast) -> None:
    with pytest.raises(FieldError) as excinfo:
        services.run_create(actor=ACTOR, tenant=cast.acme, agent=support_agent(cast.globex), input="x")
    assert field_of(excinfo) == "agent"


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["queued", "awaiting_approval"])
def test_cancel_ends_a_run_nobody_is_stepping_at_once(cast: Cast, status: str) -> None:
    run = services.run_cancel(actor=ACTOR, run=make_run(cast.acme, status))
    assert run.status == "cancelled" and run.finished_at is not None and run.cancel_requested_at is not None
    assert "tests" in run.error_message


@pytest.mark.django_db
def test_cancel_asks_a_running_run_to_stop_before_its_next_step(cast: Cast) -> None:
    run = services.run_cancel(actor=ACTOR, run=make_run(cast.acme, "running"))
    assert run.status == "running" and run.cancel_requested_at is not None
    again = services.run_cancel(actor=ACTOR, run=run)
    assert again.cancel_requested_at == run.cancel_requested_at


@pytest.mark.django_db
@pytest.mark.parametrize("status", sorted(Run.FINAL_STATUSES))
def test_cancel_refuses_a_finished_run(cast: Cast, status: str) -> None:
    run = make_run(cast.acme, status)
    with pytest.raises(ConflictError, match="already finished"):
        services.run_cancel(actor=ACTOR, run=run)
    run.refresh_from_db()
    assert run.status == status and run.cancel_requested_at is None


@pytest.mark.django_db
def test_steps_of_a_run_are_listed_in_order(cast: Cast) -> None:
    from agents.selectors import steps_of

    run = make_run(cast.acme)
    for index in (1, 0):
        Step.objects.create(tenant=cast.acme, run=run, index=index, kind="model", model_id="demo-support-2025-06-01")
    assert [s.index for s in steps_of(run=run)] == [0, 1]
