from django.apps import AppConfig


class GuardrailsConfig(AppConfig):
    name = "guardrails"
    verbose_name = "Guardrails"

    def ready(self) -> None:
        # The run engine checks input, output, tool calls and tool results through its hook points.
        from agents import hooks as agent_hooks
        from guardrails.hooks import GuardrailHooks

        agent_hooks.register(GuardrailHooks.instance)
