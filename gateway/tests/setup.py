"""A tenant for gateway tests: an OpenAI-compatible provider at a local fake, one priced model
pinned as `default`, and a key with the `gateway` scope."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from catalog.models import LanguageModel, ModelPin, Provider
from tenants.models import ApiKey, Scope, Tenant
from tenants.testing import make_key

EXACT = "fake-model-2024-01-01"


@dataclass
class Gateway:
    tenant: Tenant
    provider: Provider
    model: LanguageModel
    key: ApiKey
    secret: str


def gateway_tenant(base_url: str, *, kind: str = Provider.Kind.OPENAI_COMPATIBLE, model_id: str = EXACT) -> Gateway:
    slug = f"gw-{secrets.token_hex(4)}"
    tenant = Tenant.objects.create(slug=slug, name=f"Gateway {slug}")
    provider = Provider.objects.create(tenant=tenant, name="fake", kind=kind, base_url=base_url, max_retries=0)
    model = LanguageModel.objects.create(
        tenant=tenant,
        provider=provider,
        model_id=model_id,
        input_price=2_500_000,  # $2.50 per million input tokens
        output_price=10_000_000,  # $10 per million output tokens
        context_window=128_000,
        max_output_tokens=4096,
    )
    ModelPin.objects.create(tenant=tenant, alias="default", model=model)
    key, secret = make_key(tenant, [Scope.GATEWAY])
    return Gateway(tenant=tenant, provider=provider, model=model, key=key, secret=secret)


def recorded() -> None:
    """Wait until the gateway has written what it keeps of every call answered so far: the
    settlement, spans and request log are written just after the answer (gateway.recorder)."""
    from gateway.recorder import wait_idle

    assert wait_idle(10), "the gateway's recorder did not finish writing within 10 s"
