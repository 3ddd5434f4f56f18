from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "budgets"
    verbose_name = "Budgets"

    def ready(self) -> None:
        # The run engine reserves before every model call and settles after, through its hook points.
        from agents import hooks as agent_hooks
        from budgets.events import BudgetAlertEvent, BudgetsChanged
        from budgets.hooks import BudgetHooks
        from tenants import registry

        agent_hooks.register(BudgetHooks.instance)
        registry.register_live_events(BudgetAlertEvent, BudgetsChanged)
        registry.register_cross_tenant_task(
            "budgets.tasks.expire_stale_reservations", reason="release every tenant's reservations past their TTL"
        )
