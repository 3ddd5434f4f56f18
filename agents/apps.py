from typing import Any

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents and runs"

    def ready(self) -> None:
        from agents.events import RunChanged
        from agents.models import Agent, AgentVersion, AgentVersionTool, Tool
        from tenants import cache, registry

        registry.register_scope_source(tool_scopes)
        registry.register_live_events(RunChanged)
        registry.register_demo_seeder(seed_demo, order=20)
        registry.register_cross_tenant_task(
            "agents.tasks.requeue_stuck_runs", reason="re-queue the runs of every tenant whose worker died"
        )

        # The gateway resolves X-AOC-Agent and the tools of tool results on every call.
        cache.watch(Agent, AgentVersion, AgentVersionTool, Tool)


def tool_scopes(tenant: Any) -> list[str]:
    """The scopes the tenant's tools require: an API key may be granted any of them."""
    from agents.models import Tool

    return list(Tool.objects.for_tenant(tenant).exclude(required_scope="").values_list("required_scope", flat=True))


def seed_demo(tenant: Any, *, queue_work: bool) -> None:
    """The demo's tools, orders and Support agent (after the catalog's: it uses its models)."""
    from agents.demo import seed_agents

    seed_agents(tenant)
