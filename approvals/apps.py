from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        # The run engine asks before every tool call whether a human must approve it, and hands
        # the paused call over to become a request.
        from agents import hooks as agent_hooks
        from approvals.hooks import ApprovalHooks
        from approvals.models import ApprovalRule
        from tenants import cache

        agent_hooks.register(ApprovalHooks.instance)
        cache.watch(ApprovalRule)  # approvals.policy.rule_for reads the rules through the cache
