"""Reads of model control."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from catalog.clients import ProviderConfig
from catalog.models import LanguageModel, ModelPin, Provider
from tenants.models import Tenant
from tenants.selectors import get_for_tenant


class PinNotFoundError(LookupError):
    """No pin for this alias in this tenant."""


def pins_of(*, tenant: Tenant) -> QuerySet[ModelPin]:
    return ModelPin.objects.for_tenant(tenant).select_related("model__provider").order_by("alias")


def pinned_model(*, tenant: Tenant, alias: str) -> LanguageModel:
    """The exact model `alias` is pinned to (with its provider), or PinNotFoundError. One query."""
    pin = pins_of(tenant=tenant).filter(alias=alias).first()
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
    )


def get_provider_for_tenant(tenant: Tenant, pk: Any) -> Provider:
    return get_for_tenant(Provider.objects.all(), tenant, pk=pk)


def get_model_for_tenant(tenant: Tenant, pk: Any) -> LanguageModel:
    return get_for_tenant(LanguageModel.objects.select_related("provider"), tenant, pk=pk)
