"""Agents, tools and the demo tables.

Roles: every member reads agents, tools, versions and the demo tables; reviewers (and admins) may
also start runs with "Try it"; only admins change agents and tools (configuration)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from agents import selectors, services
from agents.models import Agent, Tool
from agents.services import BUILTIN_TOOLS, MAX_STEPS_LIMIT, MAX_TEMPERATURE
from catalog.selectors import pins_of
from console.access import ConsoleRequest, render_page, role_required
from tenants.audit import Actor
from tenants.errors import FieldError, ServiceError
from tenants.models import Role, Tenant

# --- Forms: they check types; services decide ---------------------------------------------------


class AgentForm(forms.Form):
    name = forms.CharField(max_length=100)
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}))
    model_alias = forms.SlugField(
        max_length=64, initial="default", help_text="A pinned alias; runs use the exact model it is pinned to."
    )
    tools = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    scopes = forms.CharField(
        required=False, help_text="Space-separated, e.g. orders:refund. A tool that requires a scope needs it here."
    )
    max_steps = forms.IntegerField(min_value=1, max_value=MAX_STEPS_LIMIT, initial=8)
    max_tokens_per_request = forms.IntegerField(min_value=1, initial=1024)
    temperature = forms.FloatField(min_value=0, max_value=MAX_TEMPERATURE, initial=0.0)

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["tools"]
        assert isinstance(field, forms.MultipleChoiceField)
        self.tool_rows = list(selectors.tools_of(tenant=tenant))
        field.choices = [(str(t.pk), t.name) for t in self.tool_rows]

    def service_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["scopes"] = data["scopes"].replace(",", " ").split()
        return data

    @classmethod
    def initial_for(cls, agent: Agent) -> dict[str, Any]:
        version = agent.current_version
        if version is None:
            return {"name": agent.name}
        return {
            "name": agent.name,
            "instructions": version.instructions,
            "model_alias": version.model_alias,
            "tools": [str(t.pk) for t in version.tools.all()],
            "scopes": " ".join(version.scopes),
            "max_steps": version.max_steps,
            "max_tokens_per_request": version.max_tokens_per_request,
            "temperature": version.temperature,
        }


class TryItForm(forms.Form):
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Please refund order A-1001 and email the customer"})
    )
    end_user_id = forms.CharField(max_length=200, required=False, label="End user id (optional)")
    session_id = forms.CharField(max_length=200, required=False, label="Session id (optional)")


class ToolForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="What the model calls it: letters, digits, _ and -.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    parameters = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "code"}),
        initial='{\n  "type": "object",\n  "properties": {},\n  "required": []\n}',
        help_text="JSON Schema of the arguments (an object schema).",
    )
    risk = forms.ChoiceField(choices=Tool.Risk.choices)
    required_scope = forms.CharField(max_length=64, required=False, help_text="A scope the agent must hold.")
    executor = forms.ChoiceField(choices=Tool.Executor.choices)
    webhook_url = forms.CharField(max_length=200, required=False, help_text="HTTPS; for webhook tools.")
    timeout_seconds = forms.FloatField(initial=10.0, min_value=0.1)
    builtin = forms.ChoiceField(
        choices=[("", "—"), *[(name, name) for name in BUILTIN_TOOLS]], required=False, help_text="For built-in tools."
    )
    rotate_secret = forms.BooleanField(required=False, label="Generate a new webhook signing secret")

    def clean_parameters(self) -> Any:
        try:
            return json.loads(self.cleaned_data["parameters"])
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}.") from exc

    @classmethod
    def initial_for(cls, tool: Tool) -> dict[str, Any]:
        return {
            "name": tool.name,
            "description": tool.description,
            "parameters": json.dumps(tool.parameters, indent=2),
            "risk": tool.risk,
            "required_scope": tool.required_scope,
            "executor": tool.executor,
            "webhook_url": tool.webhook_url,
            "timeout_seconds": tool.timeout_seconds,
            "builtin": tool.builtin,
        }


def _service_error(form: forms.Form, exc: ServiceError) -> int:
    """Show a service's refusal on the field it names (else above the form); the HTTP status."""
    if isinstance(exc, FieldError | services.FieldConflictError) and exc.field in form.fields:
        form.add_error(exc.field, exc.detail)
    else:
        form.add_error(None, exc.message)
    return exc.status_code


def _require_admin(request: ConsoleRequest) -> None:
    if not request.membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only tenant admins change agents and tools.")


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
        status = 400
        if form.is_valid():
            try:
                agent = services.agent_create(
                    actor=Actor.from_request(request), tenant=request.tenant, **form.service_fields()
                )
            except ServiceError as exc:
                status = _service_error(form, exc)
            else:
                messages.success(request, f"Agent {agent.name} was created (version 1).")
                return redirect("console:agent", tenant_slug=request.tenant.slug, pk=agent.pk)
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
    status = 400
    if form.is_valid():
        before = agent.current_version.number if agent.current_version else 0
        try:
            agent = services.agent_update(actor=Actor.from_request(request), agent=agent, **form.service_fields())
        except ServiceError as exc:
            status = _service_error(form, exc)
        else:
            after = agent.current_version.number if agent.current_version else 0
            if after != before:
                messages.success(request, f"Saved as version {after}; new runs use it, running ones keep theirs.")
            else:
                messages.info(request, "Nothing changed in what runs execute; no new version.")
            return redirect("console:agent", tenant_slug=request.tenant.slug, pk=agent.pk)
    agent = selectors.get_agent_for_tenant(request.tenant, pk)
    return render_page(request, "agents/detail.html", _agent_context(request, agent, form=form), status=status)


@role_required(Role.ADMIN)
@require_POST
def agent_archive(request: ConsoleRequest, pk: str) -> HttpResponse:
    """Archive (or, with restore=1, bring back) an agent."""
    agent = selectors.get_agent_for_tenant(request.tenant, pk)
    if request.POST.get("restore") == "1":
        services.agent_restore(actor=Actor.from_request(request), agent=agent)
        messages.success(request, f"Agent {agent.name} was restored.")
    else:
        services.agent_archive(actor=Actor.from_request(request), agent=agent)
        messages.success(request, f"Agent {agent.name} was archived; it starts no new runs.")
    return redirect("console:agent", tenant_slug=request.tenant.slug, pk=agent.pk)


@role_required(Role.REVIEWER)
@require_POST
def agent_try(request: ConsoleRequest, pk: str) -> HttpResponse:
    """Start a run of the agent's current version and go to its page to watch it live."""
    agent = selectors.get_agent_for_tenant(request.tenant, pk)
    form = TryItForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            run = services.run_create(
                actor=Actor.from_request(request), tenant=request.tenant, agent=agent, **form.cleaned_data
            )
        except ServiceError as exc:
            status = _service_error(form, exc)
        else:
            return redirect("console:run", tenant_slug=request.tenant.slug, pk=run.pk)
    return render_page(request, "agents/detail.html", _agent_context(request, agent, try_form=form), status=status)


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
        status = 400
        if form.is_valid():
            try:
                saved = services.tool_create(
                    actor=Actor.from_request(request), tenant=request.tenant, **_tool_fields(form)
                )
            except ServiceError as exc:
                status = _service_error(form, exc)
            else:
                if not saved.signing_secret:
                    messages.success(request, f"Tool {saved.tool.name} was created.")
                    return redirect("console:tool", tenant_slug=request.tenant.slug, pk=saved.tool.pk)
                return _tool_page(request, saved.tool, secret=saved.signing_secret, status=201)
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
    status = 400
    if form.is_valid():
        try:
            saved = services.tool_update(
                actor=Actor.from_request(request),
                tool=tool,
                rotate_secret=form.cleaned_data["rotate_secret"],
                **_tool_fields(form),
            )
        except ServiceError as exc:
            status = _service_error(form, exc)
        else:
            if saved.signing_secret:
                return _tool_page(request, saved.tool, secret=saved.signing_secret)
            messages.success(request, f"Tool {saved.tool.name} was saved.")
            return redirect("console:tool", tenant_slug=request.tenant.slug, pk=tool.pk)
    return _tool_page(request, selectors.get_tool_for_tenant(request.tenant, pk), form=form, status=status)


@role_required(Role.ADMIN)
@require_POST
def tool_delete(request: ConsoleRequest, pk: str) -> HttpResponse:
    tool = selectors.get_tool_for_tenant(request.tenant, pk)
    try:
        services.tool_delete(actor=Actor.from_request(request), tool=tool)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("console:tool", tenant_slug=request.tenant.slug, pk=tool.pk)
    messages.success(request, f"Tool {tool.name} was deleted.")
    return redirect("console:tools", tenant_slug=request.tenant.slug)


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
