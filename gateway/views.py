"""The console's Gateway page: how to point an agent at the gateway (snippets filled with this
console's URL and the tenant's aliases), the live request log, usage per key, and what each
gateway key's calls are bound to (an agent, an end user)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from agents.models import Agent
from catalog.selectors import pins_of
from console.access import ConsoleRequest, render_page, role_required
from gateway.models import GatewayRequest, KeyBinding
from gateway.services import key_binding_set
from tenants.audit import Actor
from tenants.errors import FieldError
from tenants.models import ApiKey, Role, Scope
from tenants.selectors import get_api_key_for_tenant


class KeyBindingForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=Agent.objects.none(), required=False, empty_label="— (X-AOC-Agent decides)")
    end_user_id = forms.CharField(required=False, max_length=200, label="End user")

    def __init__(self, *args: Any, tenant: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["agent"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Agent.objects.for_tenant(tenant).filter(archived=False).order_by("name")


LOG_SIZE = 50


@role_required(Role.VIEWER)
def gateway(request: ConsoleRequest) -> HttpResponse:
    return render_page(request, "gateway/index.html", _context(request), fragment="log")


@role_required(Role.ADMIN)
@require_POST
def key_binding(request: ConsoleRequest, pk: str) -> HttpResponse:
    """Bind a gateway key's calls to an agent and an end user (both empty: unbind)."""
    key = get_api_key_for_tenant(request.tenant, pk)
    form = KeyBindingForm(request.POST, tenant=request.tenant)
    if form.is_valid():
        try:
            key_binding_set(
                actor=Actor.from_request(request),
                api_key=key,
                agent=form.cleaned_data["agent"],
                end_user_id=form.cleaned_data["end_user_id"],
            )
        except FieldError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        else:
            messages.success(request, f"Calls with the key {key.name} are now for what its binding says.")
            return redirect("console:gateway", tenant_slug=request.tenant.slug)
    context = _context(request, failed=(str(key.pk), form))
    return render_page(request, "gateway/index.html", context, status=400)


def _context(request: ConsoleRequest, failed: tuple[str, KeyBindingForm] | None = None) -> dict[str, Any]:
    tenant = request.tenant
    requests = GatewayRequest.objects.for_tenant(tenant).select_related("api_key")
    since = timezone.now() - timedelta(days=1)
    usage = (
        requests.filter(created_at__gte=since)
        .values("api_key__name", "api_key__prefix")
        .annotate(
            calls=Count("id"),
            errors=Count("id", filter=Q(status__gte=400)),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost_micros=Sum("cost_micros"),
        )
        .order_by("-cost_micros", "-calls")
    )
    aliases = [pin.alias for pin in pins_of(tenant=tenant)]
    log = list(requests[:LOG_SIZE])
    for row in log:
        row.cost_usd = _usd(row.cost_micros)  # type: ignore[attr-defined]
    per_key = [{**u, "cost_usd": _usd(u["cost_micros"] or 0)} for u in usage]
    bindings = {b.api_key_id: b for b in KeyBinding.objects.for_tenant(tenant).select_related("agent")}
    keys = []
    for key in ApiKey.objects.for_tenant(tenant).filter(revoked_at__isnull=True).order_by("name"):
        if not key.has_scope(Scope.GATEWAY):
            continue
        binding = bindings.get(key.pk)
        initial = {"agent": binding.agent_id, "end_user_id": binding.end_user_id} if binding else {}
        form = failed[1] if failed and failed[0] == str(key.pk) else KeyBindingForm(initial=initial, tenant=tenant)
        keys.append({"key": key, "binding": binding, "form": form})
    context = {
        "base_url": request.build_absolute_uri("/v1").rstrip("/"),
        "root_url": request.build_absolute_uri("/").rstrip("/"),
        "alias": "default" if "default" in aliases or not aliases else aliases[0],
        "aliases": aliases,
        "log": log,
        "usage": per_key,
        "keys": keys,
        "is_admin": request.membership.has_role(Role.ADMIN),
    }
    return context


def _usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"
