"""The forms of model control (providers, models, pins): they parse input; the services validate and decide."""

from __future__ import annotations

from typing import Any

from django import forms

from catalog import selectors, services
from catalog.models import LanguageModel, Provider
from tenants.models import Tenant


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Provider.Kind.choices)
    base_url = forms.CharField(
        max_length=200, required=False, label="Base URL", help_text="Empty for the vendor's default endpoint."
    )
    api_key = forms.CharField(
        required=False,
        label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted and never shown again.",
    )
    timeout_seconds = forms.FloatField(initial=60.0, label="Timeout (seconds)")
    max_retries = forms.IntegerField(initial=2, label="Retries")
    enabled = forms.BooleanField(required=False, initial=True)


class ProviderEditForm(ProviderForm):
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored API key")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["api_key"].help_text = "Leave empty to keep the stored key; a new value replaces it."


class PriceField(forms.CharField):
    """USD per million tokens as typed ("2.50"); converted exactly by the service."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "USD per 1M tokens, e.g. 2.50")
        super().__init__(max_length=40, **kwargs)


class ModelEditForm(forms.Form):
    display_name = forms.CharField(max_length=200, required=False)
    input_price = PriceField(label="Input price")
    cached_input_price = PriceField(label="Cached input price")
    output_price = PriceField(label="Output price")
    context_window = forms.IntegerField(min_value=1, max_value=2**31 - 1, label="Context window (tokens)")
    max_output_tokens = forms.IntegerField(min_value=1, max_value=2**31 - 1, label="Max output tokens")
    deprecation_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def prices(self) -> dict[str, int | None]:
        """The three prices in micro-USD (raises FieldError naming a bad one)."""
        return {
            f: services.usd_to_micros(self.cleaned_data.get(f) or "", field=f)
            for f in ("input_price", "cached_input_price", "output_price")
        }


class ModelCreateForm(ModelEditForm):
    provider = forms.ModelChoiceField(queryset=Provider.objects.none())
    model_id = forms.CharField(max_length=200, label="Model id", help_text="Exact and dated, e.g. gpt-4o-2024-08-06.")
    revision = forms.CharField(max_length=200, required=False, help_text="Weights tag or digest (self-hosted).")

    field_order = ["provider", "model_id", "revision", "display_name"]

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        provider_field = self.fields["provider"]
        assert isinstance(provider_field, forms.ModelChoiceField)
        provider_field.queryset = Provider.objects.for_tenant(tenant).order_by("name")


class ModelWithProviderField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj} ({obj.provider.name})"


class PinChangeForm(forms.Form):
    alias = forms.SlugField(max_length=64, help_text="An existing alias, or a new one such as planner.")
    model = ModelWithProviderField(queryset=LanguageModel.objects.none(), label="Pin to model")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model_field = self.fields["model"]
        assert isinstance(model_field, forms.ModelChoiceField)
        model_field.queryset = selectors.usable_models_of(tenant=tenant)


class DecisionForm(forms.Form):
    approve = forms.TypedChoiceField(choices=[("1", "approve"), ("0", "reject")], coerce=lambda v: v == "1")
    note = forms.CharField(max_length=2000, required=False)
