"""Budgets, their counters per period and scope value, reservations, the append-only ledger and
threshold alerts. Amounts are integers in the budget's unit: micro-USD or tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.timezone import now

from tenants.ids import new_id
from tenants.models import ApiKey, AppendOnly, TenantOwned


def default_thresholds() -> list[int]:
    return [70, 80, 100]


class Budget(TenantOwned):
    """A cap on spend or tokens per period, counted per scope value (tenant, agent, key, end user, session)."""

    class Scope(models.TextChoices):
        TENANT = "tenant", "Tenant"
        AGENT = "agent", "Each agent"
        API_KEY = "api_key", "Each API key"
        END_USER = "end_user", "Each end user"
        SESSION = "session", "Each session"

    class Period(models.TextChoices):
        DAY = "day", "Day"
        MONTH = "month", "Month"
        TOTAL = "total", "Total"

    class Unit(models.TextChoices):
        USD_MICROS = "usd_micros", "micro-USD"
        TOKENS = "tokens", "Tokens"

    class OnExceed(models.TextChoices):
        BLOCK = "block", "Block"
        ALERT_ONLY = "alert_only", "Alert only"
        # A run of the engine that finds the budget full waits for a reviewer, who may let that
        # one call through; everything else is refused as with `block`.
        REQUIRE_APPROVAL = "require_approval", "Ask a reviewer"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.TENANT)
    # Narrowing: when set, the budget counts only requests made for this agent.
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets")
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTH)
    unit = models.CharField(max_length=16, choices=Unit.choices, default=Unit.USD_MICROS)
    limit = models.PositiveBigIntegerField()
    thresholds = ArrayField(models.PositiveSmallIntegerField(), default=default_thresholds, blank=True)
    on_exceed = models.CharField(max_length=16, choices=OnExceed.choices, default=OnExceed.BLOCK)
    enabled = models.BooleanField(default=True)
    # A per-end-user or per-session budget counts only calls that name an end user (a session);
    # with this on, calls without one are counted too, together, under one anonymous bucket ("").
    meter_anonymous = models.BooleanField(
        default=False,
        help_text="A per-end-user or per-session budget also counts calls that name none, together in one bucket.",
    )
    # Who is emailed when a threshold is crossed (besides the console banner and the audit log).
    notify_emails = ArrayField(models.EmailField(), default=list, blank=True)
    # Where alerts are POSTed as signed JSON (retried), and the signing secret (Fernet-encrypted;
    # write-only through the API and the console).
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="budget_unique_name"),
            models.CheckConstraint(condition=models.Q(limit__gt=0), name="budget_limit_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def per_member(self) -> bool:
        """Whether each member of its scope (agent, API key, end user, session) has its own
        counter, each against the whole limit."""
        return self.scope != self.Scope.TENANT

    @property
    def blocks(self) -> bool:
        """Whether it refuses calls past its limit (require_approval: unless a reviewer lets one through)."""
        return self.on_exceed != self.OnExceed.ALERT_ONLY


class BudgetCounter(TenantOwned):
    """What one budget has settled and holds reserved in one period for one scope value.

    The period start is part of the key, so a new period starts from a fresh zero row."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="counters")
    period_start = models.DateTimeField()
    # "" for a tenant budget; otherwise the agent id, API key id, end user id or session id.
    scope_value = models.CharField(max_length=200, blank=True)
    settled = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["budget", "-period_start", "scope_value"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start", "scope_value"], name="budgetcounter_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.period_start:%Y-%m-%d} {self.scope_value!r}"

    @property
    def used(self) -> int:
        return self.settled + self.reserved


class Reservation(TenantOwned):
    """The worst-case cost of one model call, held against every applicable budget until settled."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    model = models.ForeignKey("catalog.LanguageModel", on_delete=models.PROTECT, related_name="+")
    input_tokens = models.PositiveBigIntegerField()
    input_tokens_estimated = models.BooleanField(default=False)
    max_output_tokens = models.PositiveBigIntegerField()
    worst_case_micros = models.PositiveBigIntegerField()
    worst_case_tokens = models.PositiveBigIntegerField()
    # The model's prices when reserved (micro-USD per million tokens): the call is settled at the
    # price it was admitted at, even if the catalog's price changes (or is removed) meanwhile.
    input_price = models.PositiveBigIntegerField(null=True)
    cached_input_price = models.PositiveBigIntegerField(null=True)
    output_price = models.PositiveBigIntegerField(null=True)
    end_user_id = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey("agents.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # What the call really used, on settle (`usage_estimated` when the provider reported none).
    actual_input_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    actual_output_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    actual_micros = models.PositiveBigIntegerField(null=True, blank=True)
    usage_estimated = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Not stored: set by budget_reserve on the reservation it admits, the tightest budget that
    # applied after this hold (budgets.services.tightest), or None.
    tightest: dict[str, Any] | None = None

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"reservation {self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    def cost_micros(self, *, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> int:
        """What the call cost at the prices it was reserved at (the model's current prices for a
        reservation made before prices were recorded on it)."""
        from catalog.models import LanguageModel

        if self.input_price is None or self.output_price is None:
            return self.model.cost_micros(
                input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached_input_tokens
            )
        prices = LanguageModel(
            input_price=self.input_price, cached_input_price=self.cached_input_price, output_price=self.output_price
        )
        return prices.cost_micros(
            input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached_input_tokens
        )


class ReservationLine(TenantOwned):
    """One counter a reservation holds, with the amount held in that counter's unit."""

    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="lines")
    counter = models.ForeignKey(BudgetCounter, on_delete=models.CASCADE, related_name="+")
    amount = models.PositiveBigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["reservation", "counter"], name="reservationline_unique")]

    def __str__(self) -> str:
        return f"{self.amount} on {self.counter_id}"


class LedgerEntry(AppendOnly):
    """One append-only change to a counter; every counter equals the sum of its entries."""

    class Kind(models.TextChoices):
        RESERVE = "reserve", "Reserve"
        SETTLE = "settle", "Settle"
        RELEASE = "release", "Release"
        EXPIRE = "expire", "Expire"
        ADJUST = "adjust", "Adjust"

    # A sequence, so entries read in the order they were written.
    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    counter = models.ForeignKey(BudgetCounter, on_delete=models.PROTECT, related_name="entries")
    reservation = models.ForeignKey(
        Reservation, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    reserved_delta = models.BigIntegerField(default=0)
    settled_delta = models.BigIntegerField(default=0)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.reserved_delta:+}/{self.settled_delta:+} on {self.counter_id}"


class BudgetAlert(TenantOwned):
    """A threshold crossed, once per budget, period, scope value and threshold."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    scope_value = models.CharField(max_length=200, blank=True)
    threshold = models.PositiveSmallIntegerField()
    # The counter when it fired: settled + reserved against the limit, in the budget's unit.
    used = models.BigIntegerField()
    limit = models.BigIntegerField()
    created_at = models.DateTimeField(default=now, db_index=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    # Webhook delivery: attempts so far, the last failure, and when a 2xx answer came.
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_error = models.CharField(max_length=500, blank=True)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "scope_value", "threshold"], name="budgetalert_unique_crossing"
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget_id} reached {self.threshold}%"


def period_bounds(period: str, moment: datetime, tz: Any) -> tuple[datetime, datetime | None]:
    """The start of the period containing `moment` in time zone `tz`, and the next period's start
    (None for `total`, which never resets)."""
    local = moment.astimezone(tz)
    if period == Budget.Period.TOTAL:
        return datetime(1970, 1, 1, tzinfo=UTC), None
    if period == Budget.Period.DAY:
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        following = (start.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=tz)
        # Re-anchor both through the zone so a DST change inside the day is honoured.
        return _anchor(start, tz), _anchor(following, tz)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return _anchor(start, tz), _anchor(start.replace(year=year, month=month), tz)


def _anchor(value: datetime, tz: Any) -> datetime:
    return value.replace(tzinfo=None).replace(tzinfo=tz)
