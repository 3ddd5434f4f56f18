from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "traces"
    verbose_name = "Traces"

    def ready(self) -> None:
        # The run engine writes its trace through its hook points; Celery carries W3C trace context.
        from celery import signals

        from agents import hooks as agent_hooks
        from tenants import registry
        from traces import context, services
        from traces.events import TracesIngested
        from traces.hooks import TraceHooks

        agent_hooks.register(TraceHooks.instance)
        registry.register_live_events(TracesIngested)
        # Erasing an end user erases its traces, payloads and runs' content (and, from there, the
        # guardrails' texts); budget amounts are pseudonymised.
        registry.register_end_user_eraser(services.end_user_erase)
        registry.register_cross_tenant_task(
            "traces.tasks.expire_traces", reason="delete traces past each tenant's retention"
        )
        signals.before_task_publish.connect(context.inject_headers, weak=False, dispatch_uid="traces.inject")
        signals.task_prerun.connect(context.extract_headers, weak=False, dispatch_uid="traces.extract")
