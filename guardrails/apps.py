from typing import Any

from django.apps import AppConfig


def warm_up(**_: Any) -> None:
    """Build the detectors' shared state (Presidio's analyzer, ~2 s; the confusables table) before
    the first check, so a worker's first run does not pay for it. Forked pool processes inherit it."""
    from guardrails.detectors import normalize, pii

    pii.analyzer()
    pii.anonymizer()
    normalize._confusables()


class GuardrailsConfig(AppConfig):
    name = "guardrails"
    verbose_name = "Guardrails"

    def ready(self) -> None:
        # The run engine checks input, output, tool calls and tool results through its hook points.
        from celery.signals import worker_init

        from agents import hooks as agent_hooks
        from guardrails.hooks import GuardrailHooks

        agent_hooks.register(GuardrailHooks.instance)
        from guardrails.events import GuardrailEventRecorded, GuardrailsChanged
        from guardrails.models import GuardrailFeedback, GuardrailSettings, Policy
        from tenants import cache, registry

        registry.register_live_events(GuardrailEventRecorded, GuardrailsChanged)
        registry.register_demo_seeder(seed_demo, order=30)

        # Read on every check (effective_rules, feedback_set) and every span ingested (trace_redactor).
        cache.watch(Policy, GuardrailSettings)
        # An entry's hit counter changes no verdict: counting a match does not empty every cache.
        cache.watch(GuardrailFeedback, ignore=("hits", "last_matched_at"))
        worker_init.connect(warm_up, weak=False, dispatch_uid="guardrails.warm_up")


def seed_demo(tenant: Any, *, queue_work: bool) -> None:
    """The demo tenant's default policy and settings."""
    from guardrails.demo import seed_guardrails

    seed_guardrails(tenant)
