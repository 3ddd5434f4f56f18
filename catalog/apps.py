from typing import Any

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Model control"

    def ready(self) -> None:
        from catalog.events import CatalogChanged, PinsChanged
        from catalog.models import LanguageModel, ModelPin, Provider
        from tenants import cache, registry

        # Pins are resolved on every model call (agents.pipeline.resolve_model).
        cache.watch(ModelPin, LanguageModel, Provider)
        registry.register_live_events(CatalogChanged, PinsChanged)
        registry.register_demo_seeder(seed_demo, order=10)


def seed_demo(tenant: Any, *, queue_work: bool) -> None:
    """The demo provider, model and pins (first: the agents' and evals' seeds use them)."""
    from catalog.demo import seed_catalog

    seed_catalog(tenant)
