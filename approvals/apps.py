from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        # The run engine asks before every tool call whether a human must approve it, and hands
        # the paused call over to become a request.
        from agents import hooks as agent_hooks
        from approvals.events import ApprovalChanged
        from approvals.hooks import ApprovalHooks
        from approvals.models import ApprovalRule
        from tenants import cache, registry

        agent_hooks.register(ApprovalHooks.instance)
        cache.watch(ApprovalRule)  # approvals.policy.rule_for reads the rules through the cache
        registry.register_live_events(ApprovalChanged)
        registry.register_cross_tenant_task(
            "approvals.tasks.expire_due", reason="expire every tenant's undecided approvals"
        )
        registry.register_cross_tenant_task(
            "approvals.tasks.escalate_due", reason="escalate every tenant's slow approvals"
        )
