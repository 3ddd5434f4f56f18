from django.contrib import admin

from guardrails.models import GuardrailEvent, GuardrailSettings, Policy
from tenants.admin import ReadOnlyAdmin


@admin.register(Policy)
class PolicyAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "agent", "updated_at"]
    list_select_related = ["tenant", "agent"]


@admin.register(GuardrailSettings)
class GuardrailSettingsAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "redact_traces", "updated_at"]
    list_select_related = ["tenant"]


@admin.register(GuardrailEvent)
class GuardrailEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "stage", "action", "reason", "source"]
    list_filter = ["action", "stage", "source"]
    list_select_related = ["tenant"]
