"""API keys: create with scopes (the key is revealed once), list, revoke. Admins only."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from console.access import ConsoleRequest, render_page, role_required
from console.forms import submit
from console.forms.tenants import ApiKeyForm
from tenants import selectors, services
from tenants.audit import Actor
from tenants.models import Role


def _context(request: ConsoleRequest, **extra: Any) -> dict[str, Any]:
    return {
        "api_keys": selectors.api_keys_of(tenant=request.tenant),
        "form": ApiKeyForm(tenant=request.tenant),
        **extra,
    }


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def api_keys(request: ConsoleRequest) -> HttpResponse:
    """GET lists keys; POST creates one and shows it once, in this response only.

    The plaintext is rendered into the response and never stored, so creation answers with the
    page (not a redirect): a reload shows only the prefix.
    """
    if request.method == "GET":
        return render_page(request, "api_keys/index.html", _context(request))
    form = ApiKeyForm(request.POST, tenant=request.tenant)
    submitted = submit(
        form,
        lambda data: services.api_key_create(
            actor=Actor.from_request(request),
            tenant=request.tenant,
            name=data["name"],
            scopes=data["scopes"],
            expires_at=form.expires_at(),
            max_tokens_per_request=data["max_tokens_per_request"],
        ),
    )
    if submitted.value is None:
        return render_page(
            request, "api_keys/index.html", _context(request, form=form), fragment="keys", status=submitted.status
        )
    key, plaintext = submitted.value
    context = _context(request, created_key=key, plaintext=plaintext)
    response = render_page(request, "api_keys/index.html", context, fragment="keys", status=201)
    response["Cache-Control"] = "no-store"
    return response


@role_required(Role.ADMIN)
@require_POST
def revoke(request: ConsoleRequest, pk: str) -> HttpResponse:
    key = selectors.get_api_key_for_tenant(request.tenant, pk)
    services.api_key_revoke(actor=Actor.from_request(request), api_key=key)
    messages.success(request, f"Key {key.name} was revoked; requests with it are now refused.")
    if request.htmx:
        return render_page(request, "api_keys/index.html", _context(request), fragment="keys")
    return redirect("console:api_keys", tenant_slug=request.tenant.slug)
