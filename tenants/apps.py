from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from tenants import cache
        from tenants.models import ApiKey, Tenant

        # Read on every API call (tenants.authentication): a revoked key or a suspended tenant is
        # refused on the next call, in every process.
        cache.watch(ApiKey, ignore=["last_used_at"])
        cache.watch(Tenant)
