from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from tenants import cache, events, registry, rls
        from tenants.models import ApiKey, Tenant

        registry.register_live_events(events.MembersChanged, events.ApiKeysChanged, events.TenantChanged)

        # Read on every API call (tenants.authentication): a revoked key or a suspended tenant is
        # refused on the next call, in every process.
        cache.watch(ApiKey, ignore=["last_used_at"])
        cache.watch(Tenant)
        # Row-level security: the policies and the app role after every migrate (sent once per app
        # after all migrations ran; this app's is enough), the tenant of each Celery task.
        post_migrate.connect(rls.install_after_migrate, sender=self, dispatch_uid="tenants.rls.install")
        rls.connect_celery()
