"""The forms of budgets: they parse input; the services validate and decide."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.db.models import Q

from agents.models import Agent
from budgets.models import Budget, LedgerEntry
from tenants.filters import StrictFilterForm
from tenants.models import Tenant


class BudgetForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=Budget.Scope.choices, help_text="What is counted separately.")
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.none(), required=False, empty_label="Every agent", help_text="Count only this agent."
    )
    period = forms.ChoiceField(choices=Budget.Period.choices, help_text="In the tenant's time zone.")
    unit = forms.ChoiceField(choices=[("usd_micros", "USD"), ("tokens", "Tokens")])
    limit = forms.CharField(max_length=30, help_text="In USD (e.g. 25.00) or in tokens, per the unit.")
    thresholds = forms.CharField(
        max_length=100, required=False, initial="70, 80, 100", help_text="Alert at these percentages of the limit."
    )
    on_exceed = forms.ChoiceField(
        choices=Budget.OnExceed.choices,
        label="When exceeded",
        help_text="Alert only: a soft budget that never refuses.",
    )
    meter_anonymous = forms.BooleanField(
        required=False,
        label="Meter calls without an end user or session",
        help_text="Off: a per-end-user or per-session budget applies only to calls that name one. "
        "On: calls that name none count together as one “(none given)” member.",
    )
    notify_emails = forms.CharField(
        max_length=2000,
        required=False,
        label="Alert emails",
        help_text="Who is emailed when a threshold is crossed, separated by commas; may be empty.",
    )
    webhook_url = forms.CharField(
        max_length=500,
        required=False,
        label="Alert webhook",
        help_text="Alerts are POSTed here as signed JSON (https; retried while it fails); may be empty.",
    )
    webhook_secret = forms.CharField(
        max_length=200,
        required=False,
        label="Webhook signing secret",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs each webhook (X-AOC-Signature). Leave empty to keep the current one.",
    )
    remove_webhook_secret = forms.BooleanField(required=False, label="Remove the signing secret")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, tenant: Tenant, budget: Budget | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        agent_field = self.fields["agent"]
        assert isinstance(agent_field, forms.ModelChoiceField)
        # Archived agents are offered only to the budget already narrowed to one, so it stays valid.
        offered = Q(archived=False) | Q(pk=budget.agent_id) if budget and budget.agent_id else Q(archived=False)
        agent_field.queryset = Agent.objects.for_tenant(tenant).filter(offered).order_by("name")

    def clean_notify_emails(self) -> list[str]:
        # The service validates each address and names a bad one beside this field.
        return [e for e in self.cleaned_data["notify_emails"].replace(",", " ").split() if e]

    def clean_thresholds(self) -> list[int]:
        raw = self.cleaned_data["thresholds"].replace(",", " ").split()
        try:
            values = sorted({int(v.rstrip("%")) for v in raw})
        except ValueError:
            raise forms.ValidationError("Whole percentages separated by commas, e.g. 70, 80, 100.") from None
        if any(not 1 <= v <= 100 for v in values):
            raise forms.ValidationError("Each threshold is a percentage from 1 to 100.")
        return values

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # The service's webhook_secret: None keeps it, "" removes it, anything else replaces it.
        secret = data.pop("webhook_secret", "") or None
        data["webhook_secret"] = "" if data.pop("remove_webhook_secret", False) else secret
        raw, unit = str(data.get("limit", "")).strip().replace(",", "").lstrip("$"), data.get("unit")
        if raw and unit:
            try:
                value = Decimal(raw)
            except InvalidOperation:
                self.add_error("limit", "Enter a number, e.g. 25.00 (USD) or 100000 (tokens).")
                return data
            amount = value * 1_000_000 if unit == Budget.Unit.USD_MICROS else value
            if amount != amount.to_integral_value():
                self.add_error(
                    "limit", "USD limits have at most 6 decimals." if unit == "usd_micros" else "Tokens are whole."
                )
            elif amount <= 0:
                self.add_error("limit", "The limit must be more than zero.")
            elif amount >= 2**63:
                self.add_error("limit", "That limit is too large.")
            else:
                data["limit"] = int(amount)
        return data

    @classmethod
    def initial_for(cls, budget: Budget) -> dict[str, Any]:
        limit: Any = budget.limit
        if budget.unit == Budget.Unit.USD_MICROS:
            limit = str((Decimal(budget.limit) / 1_000_000).normalize())
        return {
            "name": budget.name,
            "scope": budget.scope,
            "agent": budget.agent_id,
            "period": budget.period,
            "unit": budget.unit,
            "limit": limit,
            "thresholds": ", ".join(str(t) for t in budget.thresholds),
            "on_exceed": budget.on_exceed,
            "notify_emails": ", ".join(budget.notify_emails),
            "webhook_url": budget.webhook_url,
            "enabled": budget.enabled,
            "meter_anonymous": budget.meter_anonymous,
        }


class LedgerFilterForm(StrictFilterForm):
    """The ledger's filters; a name that is none of them is refused (tenants.filters)."""

    budget = forms.ModelChoiceField(queryset=Budget.objects.none(), required=False, empty_label="Every budget")
    kind = forms.ChoiceField(choices=[("", "Every kind"), *LedgerEntry.Kind.choices], required=False)
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    # The next page: entries older than this id (ids follow the order entries were written).
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        budget_field = self.fields["budget"]
        assert isinstance(budget_field, forms.ModelChoiceField)
        budget_field.queryset = Budget.objects.for_tenant(tenant).order_by("name")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "Until must be after since.")
        return data
