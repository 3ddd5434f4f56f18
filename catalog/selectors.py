"""Reads of model control. Each returns a queryset scoped to one tenant, or one row of it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import django_filters
from django.db.models import Count, QuerySet
from django.utils import timezone

from catalog.clients import ProviderConfig
from catalog.models import LanguageModel, ModelPin, PinChange, Provider
from tenants import cache as config_cache
from tenants.filters import StrictFilterSet
from tenants.models import Tenant
from tenants.selectors import get_for_tenant


class PinNotFoundError(LookupError):
    """No pin for this alias in this tenant."""


def pins_of(*, tenant: Tenant) -> QuerySet[ModelPin]:
    """The tenant's pins by alias, each with its model and provider (one query)."""
    return ModelPin.objects.for_tenant(tenant).select_related("model__provider").order_by("alias")


def pinned_model(*, tenant: Tenant, alias: str) -> LanguageModel:
    """The exact model `alias` is pinned to (with its provider), or PinNotFoundError. From the
    configuration cache (tenants.cache), else one query. The model is shared: read it, never save it."""
    pin = config_cache.cached(
        "pinned_model", (tenant.pk, alias), lambda: pins_of(tenant=tenant).filter(alias=alias).first()
    )
    if pin is None:
        raise PinNotFoundError(f"No model is pinned as {alias!r} in {tenant.name}.")
    return pin.model


def provider_config(provider: Provider) -> ProviderConfig:
    """What a client needs to call `provider` (decrypts its API key)."""
    return ProviderConfig(
        kind=provider.kind,  # type: ignore[arg-type]
        base_url=provider.effective_base_url,
        api_key=provider.api_key,
        timeout_seconds=provider.timeout_seconds,
        max_retries=provider.max_retries,
        check_address=bool(provider.base_url),
    )


def providers_of(*, tenant: Tenant) -> QuerySet[Provider]:
    """The tenant's providers by name, each annotated with `model_count` (one query)."""
    return Provider.objects.for_tenant(tenant).annotate(model_count=Count("language_models")).order_by("name")


def models_of(*, tenant: Tenant) -> QuerySet[LanguageModel]:
    """The tenant's models with their providers (one query), by provider then model id."""
    return LanguageModel.objects.for_tenant(tenant).select_related("provider").order_by("provider__name", "model_id")


def usable_models_of(*, tenant: Tenant) -> QuerySet[LanguageModel]:
    """Models a pin may point at: priced, served by an enabled provider."""
    return models_of(tenant=tenant).filter(
        input_price__isnull=False, output_price__isnull=False, provider__enabled=True
    )


def pin_changes_of(*, tenant: Tenant) -> QuerySet[PinChange]:
    """Every pin change of the tenant, newest first, with both models and the target's provider."""
    return (
        PinChange.objects.for_tenant(tenant)
        .select_related("from_model__provider", "to_model__provider")
        .order_by("-created_at", "-id")
    )


def pin_changes_open(*, tenant: Tenant) -> QuerySet[PinChange]:
    """Pending pin change requests, oldest first (the order to review them in)."""
    return pin_changes_of(tenant=tenant).filter(status=PinChange.Status.PENDING).order_by("created_at", "id")


def pin_history(*, tenant: Tenant, alias: str | None = None) -> QuerySet[PinChange]:
    """Applied changes (what each alias pointed at, and since when), newest first; all aliases
    unless `alias` is given."""
    qs = pin_changes_of(tenant=tenant).filter(status=PinChange.Status.APPLIED).order_by("-decided_at", "-id")
    return qs.filter(alias=alias) if alias is not None else qs


def pinned_models_deprecating(*, tenant: Tenant, days: int = 30, today: date | None = None) -> QuerySet[ModelPin]:
    """Pins whose model's deprecation date falls within `days` of `today` (or has passed),
    soonest first, with model and provider (one query)."""
    today = today or timezone.localdate()
    return (
        pins_of(tenant=tenant)
        .filter(model__deprecation_date__isnull=False, model__deprecation_date__lte=today + timedelta(days=days))
        .order_by("model__deprecation_date", "alias")
    )


def get_provider_for_tenant(tenant: Tenant, pk: Any) -> Provider:
    return get_for_tenant(Provider.objects.for_tenant(tenant), tenant, pk=pk)


def get_model_for_tenant(tenant: Tenant, pk: Any) -> LanguageModel:
    return get_for_tenant(LanguageModel.objects.for_tenant(tenant).select_related("provider"), tenant, pk=pk)


def get_pin_for_tenant(tenant: Tenant, alias: str) -> ModelPin:
    return get_for_tenant(ModelPin.objects.for_tenant(tenant).select_related("model__provider"), tenant, alias=alias)


def get_pin_change_for_tenant(tenant: Tenant, pk: Any) -> PinChange:
    return get_for_tenant(
        PinChange.objects.for_tenant(tenant).select_related("tenant", "from_model__provider", "to_model__provider"),
        tenant,
        pk=pk,
    )


class PinChangeFilterSet(StrictFilterSet):
    """The pin changes list's filters: `status`, `alias`."""

    status = django_filters.ChoiceFilter(choices=PinChange.Status.choices)
    alias = django_filters.CharFilter(max_length=100)

    class Meta:
        model = PinChange
        fields: list[str] = []
