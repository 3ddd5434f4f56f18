"""Model control in the console: providers and models, pins with their history and change
requests. Every member reads; admins change. Writes are one service call each."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from catalog import selectors, services
from catalog.models import LanguageModel, PinChange, Provider
from catalog.services import micros_to_usd
from console.access import ConsoleRequest, render_page, role_required
from console.views.evals import gate_context
from evals.selectors import gate_report, gated_aliases
from tenants.audit import Actor
from tenants.errors import FieldError, ServiceError
from tenants.models import Role, Tenant

# --- Forms: they parse input; the services validate and decide ---------------------------------


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


def _service_error_into(form: forms.Form, exc: ServiceError) -> None:
    """Show a service's refusal beside the field it names, or above the form."""
    if isinstance(exc, FieldError) and exc.field in form.fields:
        form.add_error(exc.field, exc.detail)
    else:
        form.add_error(None, exc.message)


def _require_admin(request: ConsoleRequest) -> None:
    if not request.membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only tenant admins can change model control.")


# --- Providers and models ----------------------------------------------------------------------


def _catalog_context(request: ConsoleRequest, **extra: Any) -> dict[str, Any]:
    tenant = request.tenant
    models = list(selectors.models_of(tenant=tenant))
    aliases: dict[Any, list[str]] = defaultdict(list)
    for pin in selectors.pins_of(tenant=tenant).only("alias", "model_id"):
        aliases[pin.model_id].append(pin.alias)
    for m in models:
        m.pinned_as = aliases.get(m.pk, [])  # type: ignore[attr-defined]
        m.prices_usd = {  # type: ignore[attr-defined]
            "input": micros_to_usd(m.input_price),
            "cached": micros_to_usd(m.cached_input_price),
            "output": micros_to_usd(m.output_price),
        }
    return {
        "providers": selectors.providers_of(tenant=tenant),
        "models": models,
        "provider_form": ProviderForm(),
        "model_form": ModelCreateForm(tenant=tenant),
        **extra,
    }


@role_required(Role.VIEWER)
def catalog(request: ConsoleRequest) -> HttpResponse:
    """Providers and models: every member reads; admins see the forms to add more."""
    return render_page(request, "catalog/index.html", _catalog_context(request), fragment="catalog")


@role_required(Role.ADMIN)
@require_POST
def provider_create(request: ConsoleRequest) -> HttpResponse:
    form = ProviderForm(request.POST)
    if form.is_valid():
        try:
            provider = services.provider_create(
                actor=Actor.from_request(request), tenant=request.tenant, **form.cleaned_data
            )
        except ServiceError as exc:
            _service_error_into(form, exc)
        else:
            messages.success(request, f"Provider {provider.name} was added.")
            if not request.htmx:
                return redirect("console:catalog", tenant_slug=request.tenant.slug)
            form = ProviderForm()
            return render_page(
                request, "catalog/index.html", _catalog_context(request, provider_form=form), fragment="catalog"
            )
    return render_page(
        request, "catalog/index.html", _catalog_context(request, provider_form=form), fragment="catalog", status=400
    )


@role_required(Role.ADMIN)
@require_POST
def model_create(request: ConsoleRequest) -> HttpResponse:
    form = ModelCreateForm(request.POST, tenant=request.tenant)
    if form.is_valid():
        data = dict(form.cleaned_data)
        try:
            prices = form.prices()
            model = services.model_create(
                actor=Actor.from_request(request),
                tenant=request.tenant,
                provider=data["provider"],
                model_id=data["model_id"],
                revision=data["revision"],
                display_name=data["display_name"],
                context_window=data["context_window"],
                max_output_tokens=data["max_output_tokens"],
                deprecation_date=data["deprecation_date"],
                **prices,
            )
        except ServiceError as exc:
            _service_error_into(form, exc)
        else:
            messages.success(request, f"Model {model} was added.")
            if not request.htmx:
                return redirect("console:catalog", tenant_slug=request.tenant.slug)
            return render_page(request, "catalog/index.html", _catalog_context(request), fragment="catalog")
    return render_page(
        request, "catalog/index.html", _catalog_context(request, model_form=form), fragment="catalog", status=400
    )


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def provider_edit(request: ConsoleRequest, pk: str) -> HttpResponse:
    provider = selectors.get_provider_for_tenant(request.tenant, pk)
    status = 200
    if request.method == "POST":
        form = ProviderEditForm(request.POST)
        if form.is_valid():
            data = dict(form.cleaned_data)
            try:
                services.provider_update(
                    actor=Actor.from_request(request),
                    provider=provider,
                    name=data["name"],
                    kind=data["kind"],
                    base_url=data["base_url"],
                    api_key=data["api_key"] or None,
                    clear_api_key=data["clear_api_key"],
                    timeout_seconds=data["timeout_seconds"],
                    max_retries=data["max_retries"],
                    enabled=data["enabled"],
                )
            except ServiceError as exc:
                _service_error_into(form, exc)
            else:
                messages.success(request, f"Provider {data['name']} was saved.")
                return redirect("console:catalog", tenant_slug=request.tenant.slug)
        status = 400
    else:
        form = ProviderEditForm(
            initial={
                "name": provider.name,
                "kind": provider.kind,
                "base_url": provider.base_url,
                "timeout_seconds": provider.timeout_seconds,
                "max_retries": provider.max_retries,
                "enabled": provider.enabled,
            }
        )
    return render_page(request, "catalog/provider_edit.html", {"provider": provider, "form": form}, status=status)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def model_edit(request: ConsoleRequest, pk: str) -> HttpResponse:
    model = selectors.get_model_for_tenant(request.tenant, pk)
    status = 200
    if request.method == "POST":
        form = ModelEditForm(request.POST)
        if form.is_valid():
            data = dict(form.cleaned_data)
            try:
                services.model_update(
                    actor=Actor.from_request(request),
                    model=model,
                    display_name=data["display_name"],
                    context_window=data["context_window"],
                    max_output_tokens=data["max_output_tokens"],
                    deprecation_date=data["deprecation_date"],
                    **form.prices(),
                )
            except ServiceError as exc:
                _service_error_into(form, exc)
            else:
                messages.success(request, f"Model {model} was saved.")
                return redirect("console:catalog", tenant_slug=request.tenant.slug)
        status = 400
    else:
        form = ModelEditForm(
            initial={
                "display_name": model.display_name,
                "input_price": micros_to_usd(model.input_price),
                "cached_input_price": micros_to_usd(model.cached_input_price),
                "output_price": micros_to_usd(model.output_price),
                "context_window": model.context_window,
                "max_output_tokens": model.max_output_tokens,
                "deprecation_date": model.deprecation_date,
            }
        )
    return render_page(request, "catalog/model_edit.html", {"model": model, "form": form}, status=status)


# --- Pins --------------------------------------------------------------------------------------

HISTORY_LIMIT = 200  # applied changes shown on the pins page, across aliases; the API pages the rest


def _pins_context(request: ConsoleRequest, **extra: Any) -> dict[str, Any]:
    tenant = request.tenant
    pins = list(selectors.pins_of(tenant=tenant))
    open_changes = list(selectors.pin_changes_open(tenant=tenant))
    history: dict[str, list[PinChange]] = defaultdict(list)
    for change in selectors.pin_history(tenant=tenant)[:HISTORY_LIMIT]:
        history[change.alias].append(change)
    open_by_alias = {c.alias: c for c in open_changes}
    # What each change's page says of the eval gate, so this list never offers an approval the
    # gate would refuse (the server refuses it anyway, naming why): one query for the aliases that
    # suites gate, then the gate's report only for changes of those.
    gated = gated_aliases(tenant=tenant) if open_changes else set()
    for change in open_changes:
        report = gate_report(change) if change.alias in gated else None
        change.gate_refuses = "; ".join(report.problems) if report and not report.passes else ""  # type: ignore[attr-defined]
    for pin in pins:
        pin.history = history.get(pin.alias, [])  # type: ignore[attr-defined]
        pin.open_change = open_by_alias.get(pin.alias)  # type: ignore[attr-defined]
        pin.prices_usd = {  # type: ignore[attr-defined]
            "input": micros_to_usd(pin.model.input_price),
            "output": micros_to_usd(pin.model.output_price),
        }
    return {
        "pins": pins,
        "open_changes": open_changes,
        "change_form": PinChangeForm(tenant=tenant),
        **extra,
    }


@role_required(Role.VIEWER)
def pins(request: ConsoleRequest) -> HttpResponse:
    """Each alias → its exact model; open change requests; each pin's history."""
    return render_page(request, "catalog/pins.html", _pins_context(request), fragment="pins")


@role_required(Role.ADMIN)
@require_POST
def pin_change_request(request: ConsoleRequest) -> HttpResponse:
    form = PinChangeForm(request.POST, tenant=request.tenant)
    status = 400
    if form.is_valid():
        try:
            change = services.pin_change_request(
                actor=Actor.from_request(request),
                tenant=request.tenant,
                alias=form.cleaned_data["alias"],
                to_model=form.cleaned_data["model"],
                reason=form.cleaned_data["reason"],
            )
        except ServiceError as exc:
            _service_error_into(form, exc)
            status = exc.status_code
        else:
            messages.success(request, f"Change of {change.alias} to {change.to_model} requested; an admin decides it.")
            if not request.htmx:
                return redirect("console:pins", tenant_slug=request.tenant.slug)
            return render_page(request, "catalog/pins.html", _pins_context(request), fragment="pins")
    return render_page(
        request, "catalog/pins.html", _pins_context(request, change_form=form), fragment="pins", status=status
    )


@role_required(Role.VIEWER)
def pin_change(request: ConsoleRequest, pk: str) -> HttpResponse:
    """One change request: what would change, why, who asked, and its decision."""
    change = selectors.get_pin_change_for_tenant(request.tenant, pk)
    context = {
        "change": change,
        "to_prices": {
            "input": micros_to_usd(change.to_model.input_price),
            "output": micros_to_usd(change.to_model.output_price),
        },
        "decision_form": DecisionForm(),
        # The eval gate: each gating suite's run on the candidate against its baseline (evals).
        **gate_context(change),
    }
    return render_page(request, "catalog/pin_change.html", context)


def _after_pin_action(request: ConsoleRequest, change: PinChange, status: int) -> HttpResponse:
    if request.htmx:
        return render_page(request, "catalog/pins.html", _pins_context(request), fragment="pins", status=status)
    return redirect("console:pin_change", tenant_slug=request.tenant.slug, pk=change.pk)


@role_required(Role.ADMIN)
@require_POST
def pin_change_decide(request: ConsoleRequest, pk: str) -> HttpResponse:
    change = selectors.get_pin_change_for_tenant(request.tenant, pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or reject.")
        return _after_pin_action(request, change, 400)
    approve = form.cleaned_data["approve"]
    try:
        change = services.pin_change_decide(
            actor=Actor.from_request(request), change=change, approve=approve, note=form.cleaned_data["note"]
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
        return _after_pin_action(request, change, exc.status_code)
    if approve:
        messages.success(request, f"Approved: {change.alias} now points at {change.to_model}.")
    else:
        messages.success(request, f"Rejected: {change.alias} stays as it was.")
    return _after_pin_action(request, change, 200)


@role_required(Role.ADMIN)
@require_POST
def pin_change_cancel(request: ConsoleRequest, pk: str) -> HttpResponse:
    change = selectors.get_pin_change_for_tenant(request.tenant, pk)
    try:
        change = services.pin_change_cancel(actor=Actor.from_request(request), change=change)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return _after_pin_action(request, change, exc.status_code)
    messages.success(request, f"The request to change {change.alias} was cancelled.")
    return _after_pin_action(request, change, 200)
