from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "budgets"
    verbose_name = "Budgets"

    def ready(self) -> None:
        # The run engine reserves before every model call and settles after, through its hook points.
        from agents import hooks as agent_hooks
        from budgets.hooks import BudgetHooks

        agent_hooks.register(BudgetHooks.instance)
