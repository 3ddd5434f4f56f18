"""Django admin for platform staff: a read-only view of model control. Changes go through the
console or the API, whose services validate, review pin changes and write the audit log."""

from django.contrib import admin

from catalog.models import LanguageModel, ModelPin, PinChange, Provider
from tenants.admin import ReadOnlyAdmin


@admin.register(Provider)
class ProviderAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "kind", "base_url", "has_api_key", "enabled"]
    list_filter = ["kind", "enabled", "tenant"]
    # The encrypted key is not shown, not even as ciphertext.
    exclude = ["api_key_encrypted"]


@admin.register(LanguageModel)
class LanguageModelAdmin(ReadOnlyAdmin):
    list_display = ["model_id", "revision", "provider", "tenant", "input_price", "output_price", "deprecation_date"]
    list_filter = ["tenant"]
    search_fields = ["model_id"]


@admin.register(ModelPin)
class ModelPinAdmin(ReadOnlyAdmin):
    list_display = ["alias", "model", "tenant", "updated_at"]
    list_filter = ["tenant"]


@admin.register(PinChange)
class PinChangeAdmin(ReadOnlyAdmin):
    list_display = ["alias", "from_model", "to_model", "status", "requested_by_label", "decided_by_label", "created_at"]
    list_filter = ["status", "tenant"]
