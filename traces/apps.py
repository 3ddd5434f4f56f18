from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "traces"
    verbose_name = "Traces"

    def ready(self) -> None:
        # The run engine writes its trace through its hook points; Celery carries W3C trace context.
        from celery import signals

        from agents import hooks as agent_hooks
        from traces import context
        from traces.hooks import TraceHooks

        agent_hooks.register(TraceHooks.instance)
        signals.before_task_publish.connect(context.inject_headers, weak=False, dispatch_uid="traces.inject")
        signals.task_prerun.connect(context.extract_headers, weak=False, dispatch_uid="traces.extract")
