"""Agents, tools and the demo tables.

Roles: every member reads agents, tools, versions and the demo tables; reviewers (and admins) may
also start runs with "Try it"; only admins change agents and tools (configuration)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from agents import selectors, services
from agents.models import Agent, Tool
from catalog.selectors import pins_of
from console.access import ConsoleRequest, render_page, role_required
from console.forms import act, done, submit
from console.forms.agents import AgentForm, ToolForm, TryItForm
from tenants.audit import Actor
from tenants.models import Role, Tenant


def _require_admin(request: ConsoleRequest) -> None:
    if not request.membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only tenant admins change agents and tools.")


def _agent_url(request: ConsoleRequest, agent: Agent) -> str:
    return reverse("console:agent", kwargs={"tenant_slug": request.tenant.slug, "pk": agent.pk})


def _tool_url(request: ConsoleRequest, tool: Tool) -> str:
    return reverse("console:tool", kwargs={"tenant_slug": request.tenant.slug, "pk": tool.pk})


# --- Agents ------------------------------------------------------------------------------------


def _pins(tenant: Tenant) -> dict[str, str]:
    """alias → the exact model it is pinned to (one query)."""
    return {pin.alias: str(pin.model) for pin in pins_of(tenant=tenant)}


@role_required(Role.VIEWER)
def agents(request: ConsoleRequest) -> HttpResponse:
    """The agents with their current version, tools and what their alias is pinned to; archived
    ones with `?archived=1` (selectors.AgentFilterSet, as the API: anything else is a 400)."""
    filters = selectors.AgentFilterSet(
        request.GET, selectors.agents_of(tenant=request.tenant, include_archived=True), tenant=request.tenant
    )
    valid = filters.is_valid()
    rows = list(filters.qs) if valid else []
    show_archived = valid and bool(filters.form.cleaned_data.get("archived"))
    context = {"agents": rows, "pins": _pins(request.tenant), "show_archived": show_archived, "form": filters.form}
    return render_page(request, "agents/index.html", context, status=200 if valid else 400)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def agent_new(request: ConsoleRequest) -> HttpResponse:
    form = AgentForm(request.POST or None, tenant=request.tenant, initial={"model_alias": "default"})
    status = 200
    if request.method == "POST":
        submitted = submit(
            form,
            lambda _: services.agent_create(
                actor=Actor.from_request(request), tenant=request.tenant, **form.service_fields()
            ),
        )
        if (agent := submitted.value) is not None:
            return done(request, f"Agent {agent.name} was created (version 1).", to=_agent_url(request, agent))
        status = submitted.status
    context = {"form": form, "pins": _pins(request.tenant)}
    return render_page(request, "agents/new.html", context, status=status)


def _agent_context(request: ConsoleRequest, agent: Agent, **extra: Any) -> dict[str, Any]:
    pins = _pins(request.tenant)
    version = agent.current_version
    tools = list(version.tools.all()) if version is not None else []
    scopes = set(version.scopes) if version is not None else set()
    return {
        "agent": agent,
        "version": version,
        "tools": tools,
        "pins": pins,
        "pinned_to": pins.get(version.model_alias) if version is not None else None,
        "missing_scopes": sorted(
            {t.required_scope for t in tools if t.required_scope and t.required_scope not in scopes}
        ),
        "versions": list(selectors.versions_of(agent=agent)[:50]),
        "recent_runs": list(selectors.runs_of(tenant=request.tenant, agent=agent)[:10]),
        "try_form": TryItForm(),
        "form": AgentForm(tenant=request.tenant, initial=AgentForm.initial_for(agent))
        if request.membership.has_role(Role.ADMIN)
        else None,
        **extra,
    }


@role_required(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def agent(request: ConsoleRequest, pk: str) -> HttpResponse:
    """GET shows the agent (configuration, versions, Try it); POST (admins) saves a new version."""
    agent = selectors.get_agent_for_tenant(request.tenant, pk)
    if request.method == "GET":
        return render_page(request, "agents/detail.html", _agent_context(request, agent))
    _require_admin(request)
    form = AgentForm(request.POST, tenant=request.tenant)
    before = agent.current_version.number if agent.current_version else 0
    submitted = submit(
        form, lambda _: services.agent_update(actor=Actor.from_request(request), agent=agent, **form.service_fields())
    )
    if (saved := submitted.value) is not None:
        after = saved.current_version.number if saved.current_version else 0
        if after == before:
            messages.info(request, "Nothing changed in what runs execute; no new version.")
            return done(request, to=_agent_url(request, saved))
        return done(
            request,
            f"Saved as version {after}; new runs use it, running ones keep theirs.",
            to=_agent_url(request, saved),
        )
    agent = selectors.get_agent_for_tenant(request.tenant, pk)
    return render_page(
        request, "agents/detail.html", _agent_context(request, agent, form=form), status=submitted.status
    )


@role_required(Role.ADMIN)
@require_POST
def agent_archive(request: ConsoleRequest, pk: str) -> HttpResponse:
    """Archive (or, with restore=1, bring back) an agent."""
    agent = selectors.get_agent_for_tenant(request.tenant, pk)
    actor = Actor.from_request(request)
    if request.POST.get("restore") == "1":
        act(
            request,
            lambda: services.agent_restore(actor=actor, agent=agent),
            success=f"Agent {agent.name} was restored.",
        )
    else:
        act(
            request,
            lambda: services.agent_archive(actor=actor, agent=agent),
            success=f"Agent {agent.name} was archived; it starts no new runs.",
        )
    return done(request, to=_agent_url(request, agent))


@role_required(Role.REVIEWER)
@require_POST
def agent_try(request: ConsoleRequest, pk: str) -> HttpResponse:
    """Start a run of the agent's current version and go to its page to watch it live."""
    agent = selectors.get_agent_for_tenant(request.tenant, pk)
    form = TryItForm(request.POST)
    submitted = submit(
        form,
        lambda data: services.run_create(actor=Actor.from_request(request), tenant=request.tenant, agent=agent, **data),
    )
    if (run := submitted.value) is not None:
        return done(request, to=reverse("console:run", kwargs={"tenant_slug": request.tenant.slug, "pk": run.pk}))
    return render_page(
        request, "agents/detail.html", _agent_context(request, agent, try_form=form), status=submitted.status
    )


# --- Tools -------------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def tools(request: ConsoleRequest) -> HttpResponse:
    return render_page(request, "agents/tools.html", {"tools": selectors.tools_of(tenant=request.tenant)})


def _tool_fields(form: ToolForm) -> dict[str, Any]:
    data = dict(form.cleaned_data)
    data.pop("rotate_secret", None)
    return data


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def tool_new(request: ConsoleRequest) -> HttpResponse:
    """Create a tool. A webhook tool's signing secret is shown in this response only."""
    form = ToolForm(request.POST or None)
    status = 200
    if request.method == "POST":
        submitted = submit(
            form,
            lambda _: services.tool_create(
                actor=Actor.from_request(request), tenant=request.tenant, **_tool_fields(form)
            ),
        )
        if (saved := submitted.value) is not None:
            if saved.signing_secret:  # shown in this response only
                return _tool_page(request, saved.tool, secret=saved.signing_secret, status=201)
            return done(request, f"Tool {saved.tool.name} was created.", to=_tool_url(request, saved.tool))
        status = submitted.status
    return render_page(request, "agents/tool.html", {"form": form, "tool": None}, status=status)


def _tool_page(
    request: ConsoleRequest, tool: Tool, *, form: ToolForm | None = None, secret: str = "", status: int = 200
) -> HttpResponse:
    if form is None and request.membership.has_role(Role.ADMIN):
        form = ToolForm(initial=ToolForm.initial_for(tool))
    # Agents whose current version has the tool (history keeps older grants).
    used_by = list(
        Agent.objects.for_tenant(request.tenant)
        .filter(current_version__tools=tool)
        .order_by("name")
        .values_list("name", flat=True)
        .distinct()
    )
    context = {
        "tool": tool,
        "form": form,
        "secret": secret,
        "parameters_json": json.dumps(tool.parameters, indent=2),
        "used_by": used_by,
    }
    response = render_page(request, "agents/tool.html", context, status=status)
    if secret:
        response["Cache-Control"] = "no-store"
    return response


@role_required(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def tool(request: ConsoleRequest, pk: str) -> HttpResponse:
    """GET shows the tool; POST (admins) saves it (a new or rotated secret is shown once)."""
    tool = selectors.get_tool_for_tenant(request.tenant, pk)
    if request.method == "GET":
        return _tool_page(request, tool)
    _require_admin(request)
    form = ToolForm(request.POST)
    submitted = submit(
        form,
        lambda data: services.tool_update(
            actor=Actor.from_request(request), tool=tool, rotate_secret=data["rotate_secret"], **_tool_fields(form)
        ),
    )
    if (saved := submitted.value) is not None:
        if saved.signing_secret:  # a new or rotated secret is shown once
            return _tool_page(request, saved.tool, secret=saved.signing_secret)
        return done(request, f"Tool {saved.tool.name} was saved.", to=_tool_url(request, tool))
    return _tool_page(request, selectors.get_tool_for_tenant(request.tenant, pk), form=form, status=submitted.status)


@role_required(Role.ADMIN)
@require_POST
def tool_delete(request: ConsoleRequest, pk: str) -> HttpResponse:
    tool = selectors.get_tool_for_tenant(request.tenant, pk)
    deleted = act(
        request,
        lambda: services.tool_delete(actor=Actor.from_request(request), tool=tool),
        success=f"Tool {tool.name} was deleted.",
    )
    if not deleted.ok:
        return done(request, to=_tool_url(request, tool))
    return done(request, to=reverse("console:tools", kwargs={"tenant_slug": request.tenant.slug}))


# --- Demo tables -------------------------------------------------------------------------------


@role_required(Role.VIEWER)
def demo(request: ConsoleRequest) -> HttpResponse:
    """The demo orders the built-in tools act on, and the outbox `send_email` writes to."""
    orders = list(selectors.demo_orders_of(tenant=request.tenant))
    for order in orders:
        order.amount_usd = f"{order.amount_cents // 100}.{order.amount_cents % 100:02d}"  # type: ignore[attr-defined]
    context = {
        "orders": orders,
        "emails": selectors.demo_emails_of(tenant=request.tenant)[:100],
    }
    return render_page(request, "agents/demo.html", context)
