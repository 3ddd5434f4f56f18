"""Django admin for platform staff: a read-only view of agents, tools and runs. Changes go through
the console or the API, whose services validate, version agents and write the audit log."""

from django.contrib import admin

from agents.models import Agent, AgentVersion, DemoEmail, DemoOrder, Run, Step, Tool, ToolExecution
from tenants.admin import ReadOnlyAdmin


@admin.register(Tool)
class ToolAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "risk", "required_scope", "executor", "builtin", "webhook_url"]
    list_filter = ["risk", "executor", "tenant"]
    search_fields = ["name"]
    # The encrypted signing secret is not shown, not even as ciphertext.
    exclude = ["webhook_secret_encrypted"]


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "current_version", "archived", "created_at"]
    list_filter = ["archived", "tenant"]
    search_fields = ["name"]


@admin.register(AgentVersion)
class AgentVersionAdmin(ReadOnlyAdmin):
    list_display = ["agent", "number", "tenant", "model_alias", "max_steps", "created_by", "created_at"]
    list_filter = ["tenant"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "agent", "status", "end_user_id", "step_count", "cost_micros", "created_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["id", "end_user_id", "session_id"]
    date_hierarchy = "created_at"


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = ["run", "index", "kind", "model_id", "tool_name", "latency_ms", "created_at"]
    list_filter = ["kind", "tenant"]


@admin.register(ToolExecution)
class ToolExecutionAdmin(ReadOnlyAdmin):
    list_display = ["run", "step_index", "call_id", "tool", "status", "started_at", "finished_at"]
    list_filter = ["status", "tenant"]


@admin.register(DemoOrder)
class DemoOrderAdmin(ReadOnlyAdmin):
    list_display = ["number", "tenant", "customer_email", "amount_cents", "status", "refund_count"]
    list_filter = ["status", "tenant"]


@admin.register(DemoEmail)
class DemoEmailAdmin(ReadOnlyAdmin):
    list_display = ["to", "subject", "tenant", "created_at"]
    list_filter = ["tenant"]
