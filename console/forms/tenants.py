"""The tenant's own forms: signing in, members and invitations, API keys, the audit filter, new tenants."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from tenants import services
from tenants.filters import StrictFilterForm
from tenants.models import Role, Scope, Tenant


class EmailLoginForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        """The scopes offered: the built-in ones, then those the tenant's tools require."""
        super().__init__(*args, **kwargs)
        labels = dict(Scope.choices)
        field = self.fields["scopes"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [
            (scope, labels.get(scope, f"{scope}: call the tools that require it"))
            for scope in services.grantable_scopes(tenant)
        ]

    expires_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Optional.")
    max_tokens_per_request = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=10_000_000,
        label="Token cap per request",
        help_text="Optional: refuse a model call whose input + max output exceeds this many tokens.",
    )

    def clean_expires_on(self) -> Any:
        day = self.cleaned_data.get("expires_on")
        if day is not None and day <= timezone.localdate():
            raise forms.ValidationError("The expiry must be a future date.")
        return day

    def expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        return timezone.make_aware(datetime.combine(day, time.min)) if day else None


class AuditFilterForm(StrictFilterForm):
    """The audit log's filters: a bad value or a name that is not a filter is an error shown
    above the list (400), never ignored."""

    passthrough = frozenset({"page"})

    actor = forms.CharField(required=False)
    action = forms.CharField(required=False)
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("“From” must be before “until”.")
        return data


class TenantForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=50, required=False, help_text="Defaults to the name, slugified.")
    timezone = forms.ChoiceField(choices=[], initial="UTC")
    admin_email = forms.EmailField(required=False, help_text="Invited as the tenant's first admin.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["timezone"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(z, z) for z in sorted(zoneinfo.available_timezones())]


class JoinForm(forms.Form):
    """Accepting an invitation while signed in: the button alone (the account exists)."""


class AcceptInvitationForm(forms.Form):
    name = forms.CharField(max_length=200)
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password_again = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password") and data.get("password") != data.get("password_again"):
            raise forms.ValidationError("The two passwords differ.")
        return data
