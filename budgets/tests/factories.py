"""Test helpers for budgets: a budget through the service, and the demo model."""

from __future__ import annotations

from typing import Any

from budgets import services
from budgets.models import Budget
from catalog.demo import DEMO_MODEL_ID
from catalog.models import LanguageModel
from tenants.audit import Actor
from tenants.models import Tenant

SYSTEM = Actor.system_actor("tests")
_counter = 0


def make_budget(tenant: Tenant, *, limit: int, name: str = "", **kwargs: Any) -> Budget:
    """A budget created through the service (so audited and validated), named uniquely."""
    global _counter
    _counter += 1
    return services.budget_create(actor=SYSTEM, tenant=tenant, name=name or f"budget {_counter}", limit=limit, **kwargs)


def demo_model(tenant: Tenant) -> LanguageModel:
    """The demo model seed_demo pins as `default` (0.50 / 1.50 USD per million tokens)."""
    return LanguageModel.objects.for_tenant(tenant).get(model_id=DEMO_MODEL_ID)
