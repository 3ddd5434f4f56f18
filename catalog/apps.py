from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Model control"

    def ready(self) -> None:
        from catalog.models import LanguageModel, ModelPin, Provider
        from tenants import cache

        # Pins are resolved on every model call (agents.pipeline.resolve_model).
        cache.watch(ModelPin, LanguageModel, Provider)
