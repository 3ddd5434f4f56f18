"""Model control in the console: providers and models, pins with their history and change
requests. Every member reads; admins change. Writes are one service call each."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from catalog import selectors, services
from catalog.models import PinChange
from catalog.services import micros_to_usd
from console.access import ConsoleRequest, render_page, role_required
from console.forms import act, done, submit
from console.forms.catalog import (
    DecisionForm,
    ModelCreateForm,
    ModelEditForm,
    PinChangeForm,
    ProviderEditForm,
    ProviderForm,
)
from console.views.evals import gate_context
from evals.selectors import gate_report, gated_aliases
from tenants.audit import Actor
from tenants.models import Role


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


def _catalog_url(request: ConsoleRequest) -> str:
    return reverse("console:catalog", kwargs={"tenant_slug": request.tenant.slug})


def _catalog_page(request: ConsoleRequest, *, status: int = 200, **extra: Any) -> Callable[[], HttpResponse]:
    """The catalog's fragment as an htmx request gets it (the whole page otherwise), rendered when called."""
    return lambda: render_page(
        request, "catalog/index.html", _catalog_context(request, **extra), fragment="catalog", status=status
    )


@role_required(Role.VIEWER)
def catalog(request: ConsoleRequest) -> HttpResponse:
    """Providers and models: every member reads; admins see the forms to add more."""
    return render_page(request, "catalog/index.html", _catalog_context(request), fragment="catalog")


@role_required(Role.ADMIN)
@require_POST
def provider_create(request: ConsoleRequest) -> HttpResponse:
    form = ProviderForm(request.POST)
    submitted = submit(
        form, lambda data: services.provider_create(actor=Actor.from_request(request), tenant=request.tenant, **data)
    )
    if (provider := submitted.value) is not None:
        return done(
            request, f"Provider {provider.name} was added.", to=_catalog_url(request), fragment=_catalog_page(request)
        )
    return _catalog_page(request, provider_form=form, status=submitted.status)()


@role_required(Role.ADMIN)
@require_POST
def model_create(request: ConsoleRequest) -> HttpResponse:
    form = ModelCreateForm(request.POST, tenant=request.tenant)
    submitted = submit(
        form,
        lambda data: services.model_create(
            actor=Actor.from_request(request),
            tenant=request.tenant,
            provider=data["provider"],
            model_id=data["model_id"],
            revision=data["revision"],
            display_name=data["display_name"],
            context_window=data["context_window"],
            max_output_tokens=data["max_output_tokens"],
            deprecation_date=data["deprecation_date"],
            **form.prices(),
        ),
    )
    if (model := submitted.value) is not None:
        return done(request, f"Model {model} was added.", to=_catalog_url(request), fragment=_catalog_page(request))
    return _catalog_page(request, model_form=form, status=submitted.status)()


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def provider_edit(request: ConsoleRequest, pk: str) -> HttpResponse:
    provider = selectors.get_provider_for_tenant(request.tenant, pk)
    status = 200
    if request.method == "POST":
        form = ProviderEditForm(request.POST)
        submitted = submit(
            form,
            lambda data: services.provider_update(
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
            ),
        )
        if submitted.ok:
            return done(request, f"Provider {form.cleaned_data['name']} was saved.", to=_catalog_url(request))
        status = submitted.status
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
        submitted = submit(
            form,
            lambda data: services.model_update(
                actor=Actor.from_request(request),
                model=model,
                display_name=data["display_name"],
                context_window=data["context_window"],
                max_output_tokens=data["max_output_tokens"],
                deprecation_date=data["deprecation_date"],
                **form.prices(),
            ),
        )
        if submitted.ok:
            return done(request, f"Model {model} was saved.", to=_catalog_url(request))
        status = submitted.status
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
    submitted = submit(
        form,
        lambda data: services.pin_change_request(
            actor=Actor.from_request(request),
            tenant=request.tenant,
            alias=data["alias"],
            to_model=data["model"],
            reason=data["reason"],
        ),
    )
    if (change := submitted.value) is not None:
        return done(
            request,
            f"Change of {change.alias} to {change.to_model} requested; an admin decides it.",
            to=reverse("console:pins", kwargs={"tenant_slug": request.tenant.slug}),
            fragment=lambda: render_page(request, "catalog/pins.html", _pins_context(request), fragment="pins"),
        )
    return render_page(
        request, "catalog/pins.html", _pins_context(request, change_form=form), fragment="pins", status=submitted.status
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
    decided = act(
        request,
        lambda: services.pin_change_decide(
            actor=Actor.from_request(request), change=change, approve=approve, note=form.cleaned_data["note"]
        ),
        success=lambda c: (
            f"Approved: {c.alias} now points at {c.to_model}." if approve else f"Rejected: {c.alias} stays as it was."
        ),
    )
    return _after_pin_action(request, decided.value or change, decided.status)


@role_required(Role.ADMIN)
@require_POST
def pin_change_cancel(request: ConsoleRequest, pk: str) -> HttpResponse:
    change = selectors.get_pin_change_for_tenant(request.tenant, pk)
    cancelled = act(
        request,
        lambda: services.pin_change_cancel(actor=Actor.from_request(request), change=change),
        success=f"The request to change {change.alias} was cancelled.",
    )
    return _after_pin_action(request, cancelled.value or change, cancelled.status)
