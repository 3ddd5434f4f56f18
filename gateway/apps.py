from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from gateway.models import KeyBinding
        from tenants import cache

        # Read on every call (gateway.services.binding_of).
        cache.watch(KeyBinding)
