"""Model control: providers, exact model versions with prices, alias pins and their changes."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlsplit

from django.db import models
from django.utils import timezone
from django.utils.timezone import now

from catalog import crypto
from tenants.ids import new_id
from tenants.models import TenantOwned, User

MICROS_PER_USD = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per million tokens


class Provider(TenantOwned):
    """An endpoint that serves models: OpenAI-compatible, Anthropic, or the offline demo."""

    class Kind(models.TextChoices):
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"
        ANTHROPIC = "anthropic", "Anthropic Messages API"
        DEMO = "demo", "Demo (offline, deterministic)"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    base_url = models.URLField(blank=True, help_text="Empty for the vendor's default endpoint.")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    timeout_seconds = models.FloatField(default=60.0)
    max_retries = models.PositiveSmallIntegerField(default=2)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="provider_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    def set_api_key(self, value: str) -> None:
        self.api_key_encrypted = crypto.encrypt(value)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def effective_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return {
            self.Kind.OPENAI_COMPATIBLE: "https://api.openai.com/v1",
            self.Kind.ANTHROPIC: "https://api.anthropic.com",
        }.get(self.Kind(self.kind), "")

    @property
    def hosted_vendor(self) -> str | None:
        """ "openai" or "anthropic" when the vendor hosts the models (dated snapshots required),
        "demo" for the demo provider, None for a self-hosted endpoint (revisions required)."""
        if self.kind == self.Kind.DEMO:
            return "demo"
        host = (urlsplit(self.effective_base_url).hostname or "").lower()
        if self.kind == self.Kind.OPENAI_COMPATIBLE and host.endswith("openai.com"):
            return "openai"
        if self.kind == self.Kind.ANTHROPIC and host.endswith("anthropic.com"):
            return "anthropic"
        return None


class LanguageModel(TenantOwned):
    """One exact model version of a provider, with its prices and limits ("Model" in the API;
    the class is not called Model, which django-stubs confuses with django.db.models.Model)."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    # Not "models": django-stubs would shadow the `models` module inside Provider's class body.
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="language_models")
    model_id = models.CharField(max_length=200, help_text="The provider's exact id, e.g. gpt-4o-2024-08-06.")
    revision = models.CharField(max_length=200, blank=True, help_text="Weights tag or digest (self-hosted).")
    display_name = models.CharField(max_length=200, blank=True)
    # Integer micro-USD per million tokens; null means unpriced, and an unpriced model cannot be used.
    input_price = models.PositiveBigIntegerField(null=True, blank=True)
    cached_input_price = models.PositiveBigIntegerField(null=True, blank=True)
    output_price = models.PositiveBigIntegerField(null=True, blank=True)
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    deprecation_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["model_id"]
        verbose_name = "model"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "provider", "model_id", "revision"], name="model_unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.model_id}@{self.revision}" if self.revision else self.model_id

    @property
    def is_priced(self) -> bool:
        return self.input_price is not None and self.output_price is not None

    def cost_micros(self, *, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> int:
        """Cost in micro-USD, rounded up (never under-charge). Requires a priced model."""
        if not self.is_priced:
            raise ValueError(f"{self} has no prices")
        assert self.input_price is not None and self.output_price is not None
        cached_price = self.cached_input_price if self.cached_input_price is not None else self.input_price
        uncached = max(input_tokens - cached_input_tokens, 0)
        numerator = uncached * self.input_price + cached_input_tokens * cached_price + output_tokens * self.output_price
        return -(-numerator // TOKENS_PER_PRICE_UNIT)

    def deprecates_within(self, days: int, *, today: date | None = None) -> bool:
        today = today or timezone.localdate()
        return self.deprecation_date is not None and self.deprecation_date <= today + timedelta(days=days)


class ModelPin(TenantOwned):
    """An alias (`default`, `classifier`, ...) pinned to one exact model of the tenant."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    alias = models.SlugField(max_length=64)
    model = models.ForeignKey(LanguageModel, on_delete=models.PROTECT, related_name="pins")
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["alias"]
        constraints = [models.UniqueConstraint(fields=["tenant", "alias"], name="pin_unique_alias")]

    def __str__(self) -> str:
        return f"{self.alias} → {self.model}"


class PinChange(TenantOwned):
    """A request to point an alias at another model: reviewed by an admin, then applied; the pin's
    history is the list of its applied changes."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Approved and applied"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    alias = models.SlugField(max_length=64)
    from_model = models.ForeignKey(LanguageModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_model = models.ForeignKey(LanguageModel, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by_label = models.CharField(max_length=200)
    decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by_label = models.CharField(max_length=200, blank=True)
    decision_note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open request per alias at a time: a second one would race the first.
            models.UniqueConstraint(
                fields=["tenant", "alias"], condition=models.Q(status="pending"), name="pinchange_one_pending"
            )
        ]

    def __str__(self) -> str:
        return f"{self.alias}: {self.from_model or '—'} → {self.to_model} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.PENDING
