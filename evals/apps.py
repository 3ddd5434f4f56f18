from typing import Any

from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals"
    verbose_name = "Evals"

    def ready(self) -> None:
        # Eval cases are agent runs with a model, approvals and tool results of their own
        # (evals/hooks.py); pin changes start the suites on the candidate and are gated on them.
        from agents import hooks as agent_hooks
        from agents import tools as agent_tools
        from catalog import services as catalog_services
        from evals import gates, sandbox, services
        from evals.events import EvalRunChanged, QualityAlertEvent
        from evals.hooks import EvalHooks
        from tenants import registry

        agent_hooks.register(EvalHooks.instance)
        registry.register_live_events(EvalRunChanged, QualityAlertEvent)
        registry.register_demo_seeder(seed_demo, order=40)
        registry.register_cross_tenant_task("evals.tasks.sweep", reason="re-send every tenant's lost eval cases")
        registry.register_cross_tenant_task(
            "evals.tasks.online_evals", reason="score every tenant's sampled production runs"
        )
        # The built-in tools of an eval case act on the case's fixture state (evals/sandbox.py).
        if sandbox.sandbox_for not in agent_tools.SANDBOXES:
            agent_tools.SANDBOXES.append(sandbox.sandbox_for)
        if gates.candidate_passed_suites not in catalog_services.PIN_CHANGE_GATES:
            catalog_services.PIN_CHANGE_GATES.append(gates.candidate_passed_suites)
        if services.pin_change_requested not in catalog_services.PIN_CHANGE_REQUEST_HOOKS:
            catalog_services.PIN_CHANGE_REQUEST_HOOKS.append(services.pin_change_requested)


def seed_demo(tenant: Any, *, queue_work: bool) -> None:
    """The demo suite, its cases and the judge pin (last: it uses the agents' and the catalog's
    rows); with `queue_work`, a first eval run when the suite has none."""
    from evals.demo import seed_evals

    seed_evals(tenant, first_run=queue_work)
