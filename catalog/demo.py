"""The demo catalog: an offline `demo` provider and one priced, dated model pinned as `default`
and `classifier`, so the first `make run` shows real runs."""

from __future__ import annotations

from django.db import transaction

from catalog import services
from catalog.models import LanguageModel, ModelPin, Provider
from tenants.audit import Actor
from tenants.models import Tenant

DEMO_PROVIDER = "demo"
DEMO_MODEL_ID = "demo-support-2025-06-01"
DEMO_ALIASES = ("default", "classifier")


@transaction.atomic
def seed_catalog(tenant: Tenant) -> LanguageModel:
    """Create the demo provider, model and pins where missing (idempotent: existing rows, and pins
    an admin has since moved elsewhere, are left as they are). Returns the demo model."""
    actor = Actor.system_actor("demo seed")
    provider = Provider.objects.for_tenant(tenant).filter(name=DEMO_PROVIDER).first()
    if provider is None:
        provider = services.provider_create(
            actor=actor, tenant=tenant, name=DEMO_PROVIDER, kind=Provider.Kind.DEMO, timeout_seconds=10.0
        )
    model = LanguageModel.objects.for_tenant(tenant).filter(provider=provider, model_id=DEMO_MODEL_ID).first()
    if model is None:
        model = services.model_create(
            actor=actor,
            tenant=tenant,
            provider=provider,
            model_id=DEMO_MODEL_ID,
            display_name="Demo support model (offline)",
            input_price=services.usd_to_micros("0.50", field="input_price"),
            cached_input_price=services.usd_to_micros("0.05", field="cached_input_price"),
            output_price=services.usd_to_micros("1.50", field="output_price"),
            context_window=32_768,
            max_output_tokens=4_096,
        )
    pinned = set(ModelPin.objects.for_tenant(tenant).values_list("alias", flat=True))
    for alias in DEMO_ALIASES:
        if alias not in pinned:
            services.pin_set_by_system(
                actor=actor, tenant=tenant, alias=alias, model=model, reason="Demo seed: the offline demo model."
            )
    return model
