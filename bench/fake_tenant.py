"""What the model-calling benchmarks (engine_steps.py, evals.py) share: a bench tenant (reused
across invocations) whose provider is a FakeOpenAI server, one priced model pinned under the given
aliases, and the built-in `lookup_order` tool. Imported by those scripts, not run."""

from __future__ import annotations

from typing import Any


def fake_provider_tenant(*, slug: str, name: str, base_url: str, aliases: tuple[str, ...]) -> tuple[Any, Any, Any]:
    """(tenant, provider, model): the provider points at `base_url`, the model is pinned as each alias."""
    from catalog.models import LanguageModel, ModelPin, Provider
    from tenants.models import Tenant

    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": name})
    provider, _ = Provider.objects.update_or_create(
        tenant=tenant,
        name="fake",
        defaults={"kind": Provider.Kind.OPENAI_COMPATIBLE, "base_url": base_url, "max_retries": 0},
    )
    model, _ = LanguageModel.objects.get_or_create(
        tenant=tenant,
        provider=provider,
        model_id="fake-model-2024-01-01",
        revision="bench",
        defaults={
            "input_price": 1_000_000,
            "output_price": 2_000_000,
            "context_window": 32_000,
            "max_output_tokens": 1024,
        },
    )
    for alias in aliases:
        ModelPin.objects.update_or_create(tenant=tenant, alias=alias, defaults={"model": model})
    return tenant, provider, model


def lookup_tool(tenant: Any) -> Any:
    """The tenant's built-in `lookup_order` tool (created once)."""
    from agents.models import Tool

    tool, _ = Tool.objects.get_or_create(
        tenant=tenant,
        name="lookup_order",
        defaults={
            "description": "Look up an order.",
            "parameters": {
                "type": "object",
                "properties": {"order_number": {"type": "string"}},
                "required": ["order_number"],
            },
            "executor": Tool.Executor.BUILTIN,
            "builtin": "lookup_order",
        },
    )
    return tool
