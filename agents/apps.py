from typing import Any

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents and runs"

    def ready(self) -> None:
        from tenants.services import register_scope_source

        register_scope_source(tool_scopes)

        from agents.models import Agent, AgentVersion, AgentVersionTool, Tool
        from tenants import cache

        # The gateway resolves X-AOC-Agent and the tools of tool results on every call.
        cache.watch(Agent, AgentVersion, AgentVersionTool, Tool)


def tool_scopes(tenant: Any) -> list[str]:
    """The scopes the tenant's tools require: an API key may be granted any of them."""
    from agents.models import Tool

    return list(Tool.objects.for_tenant(tenant).exclude(required_scope="").values_list("required_scope", flat=True))
