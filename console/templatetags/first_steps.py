"""Empty states: what an empty page is for and the one action that fills it, with the API call that
does the same (`{% empty_state "runs" %}`). One registry, so every page says it the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString

from tenants.models import Role

register = template.Library()


@dataclass(frozen=True)
class FirstStep:
    what: str  # the things the page lists, plural ("runs")
    purpose: str
    action: str
    url_name: str
    role: Role
    snippet: str  # {base} is this console's URL, {slug} the tenant's
    headline: str = ""  # instead of "No <what> yet."
    anchor: str = ""  # the action is on the page itself: a link to this element


STEPS = {
    "runs": FirstStep(
        "runs",
        "Each execution of an agent lands here: its input, every model and tool step, cost and outcome.",
        "Open an agent and use Try it",
        "agents",
        Role.REVIEWER,
        "curl -X POST {base}/api/v1/runs \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"agent": "Support agent", "input": "Where is order A-1001?"}}\'',
    ),
    "traces": FirstStep(
        "traces",
        "Every agent run and every call through the gateway is traced here: prompts, completions, tool"
        " calls, tokens, cost and timing. Other systems send spans over the API or OTLP.",
        "Start a run from an agent",
        "agents",
        Role.REVIEWER,
        "curl -X POST {base}/api/v1/traces/ingest \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"spans": [{{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",'
        ' "name": "invoke_agent support", "kind": "agent",'
        ' "start_time": "2026-01-05T10:00:00Z", "end_time": "2026-01-05T10:00:02Z"}}]}}\'',
    ),
    "budgets": FirstStep(
        "budgets",
        "Hard caps on spend or tokens per tenant, agent, API key, end user or session; without one,"
        " spend is unlimited.",
        "Create a budget",
        "budget_new",
        Role.ADMIN,
        "curl -X POST {base}/api/v1/budgets \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"name": "Monthly cap", "scope": "tenant", "period": "month", "unit": "usd_micros",'
        ' "limit": 50000000}}\'',
    ),
    "approvals": FirstStep(
        "requests waiting",
        "Risky actions that agents and API clients ask to take wait here for a reviewer: approve,"
        " reject with a comment, or edit the arguments. The approval rules say which actions ask"
        " (by default every irreversible tool).",
        "Try an agent on a refund (an irreversible tool)",
        "agents",
        Role.REVIEWER,
        "curl -X POST {base}/api/v1/approvals \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"action": "refund_order", "arguments": {{"order_number": "A-1004"}},'
        ' "risk": "irreversible", "reason": "irreversible"}}\'',
        headline="Nothing waiting for a decision.",
    ),
    "approval_history": FirstStep(
        "approval requests",
        "Every request a reviewer was asked to decide, with who decided, when and why.",
        "Open the queue",
        "approvals",
        Role.REVIEWER,
        "curl -X POST {base}/api/v1/approvals \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"action": "refund_order", "arguments": {{"order_number": "A-1004"}},'
        ' "risk": "irreversible", "reason": "irreversible"}}\'',
    ),
    "agents": FirstStep(
        "agents",
        "An agent is instructions, a model alias, the tools it may call and its limits; every edit"
        " makes a new version, and a run keeps the version it started with.",
        "New agent",
        "agent_new",
        Role.ADMIN,
        "curl -X POST {base}/api/v1/agents \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"name": "Billing agent", "instructions": "Answer questions about invoices.",'
        ' "model_alias": "default", "tools": ["lookup_order"]}}\'',
    ),
    "providers": FirstStep(
        "providers",
        "A provider is where models answer: an OpenAI-compatible or Anthropic endpoint and its key"
        " (stored encrypted), or the offline demo provider.",
        "Add a provider",
        "provider_create",
        Role.ADMIN,
        "curl -X POST {base}/api/v1/providers \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"name": "OpenAI", "kind": "openai_compatible", "api_key": "sk-..."}}\'',
    ),
    "models": FirstStep(
        "models",
        "Exact model versions with their prices and limits; agents name an alias that a pin points"
        " at one of them, so a model changes only through a pin change.",
        "Add a model",
        "model_create",
        Role.ADMIN,
        "curl -X POST {base}/api/v1/models \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"provider": "<provider id>", "model_id": "gpt-4o-mini-2024-07-18", "input_price": "0.15",'
        ' "cached_input_price": "0.075", "output_price": "0.60", "context_window": 128000,'
        ' "max_output_tokens": 16384}}\'',
    ),
    "tools": FirstStep(
        "tools",
        "Tools are what agents may call: a JSON Schema for the arguments, a risk tier (irreversible"
        " ones ask a reviewer), an optional scope, and a signed webhook or a built-in executor.",
        "New tool",
        "tool_new",
        Role.ADMIN,
        "curl -X POST {base}/api/v1/tools \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"name": "refund_order", "description": "Refund an order", "risk": "irreversible",'
        ' "executor": "webhook", "webhook_url": "https://tools.example.com/refund",'
        ' "parameters": {{"type": "object", "properties": {{"order_number": {{"type": "string"}}}},'
        ' "required": ["order_number"]}}}}\'',
    ),
    "api_keys": FirstStep(
        "API keys",
        "Agent clients, the SDK and trace exporters authenticate with a key sent as"
        " Authorization: Bearer <key>, limited to the scopes it holds. A key is shown once.",
        "Create a key",
        "api_keys",
        Role.ADMIN,
        'python manage.py apikey create --tenant {slug} --name support-bot --scopes "runs:write traces:write"',
        anchor="key-form",
    ),
    "eval_suites": FirstStep(
        "eval suites",
        "A suite is a set of cases an agent must pass; run it before changing a model or a prompt, and"
        " compare against the baseline.",
        "Create a suite over the API",
        "",
        Role.ADMIN,
        "curl -X POST {base}/api/v1/evals/suites \\\n"
        '  -H "Authorization: Bearer $AOC_API_KEY" -H "Content-Type: application/json" \\\n'
        '  -d \'{{"name": "Refunds", "agent": "Support agent"}}\'',
    ),
}


@register.simple_tag(takes_context=True)
def empty_state(context: template.Context, kind: str, element_id: str = "", filtered: Any = "") -> SafeString:
    """The empty state of `kind` (a key of STEPS); `filtered`: the list is empty only because of
    the filters, so say that instead."""
    step = STEPS[kind]
    request = context.get("request")
    tenant = context.get("tenant")
    membership = context.get("membership")
    # A live update renders without a request: the console's configured address then.
    base = request.build_absolute_uri("/") if request is not None else settings.CONSOLE_BASE_URL
    action_url = ""
    if step.url_name and tenant is not None and membership is not None and membership.has_role(step.role):
        action_url = reverse(f"console:{step.url_name}", args=[tenant.slug])
        if step.anchor:
            action_url = f"#{step.anchor}"
    return render_to_string(
        "console/_empty.html",
        {
            "step": step,
            "element_id": element_id,
            "filtered": bool(filtered),
            "action_url": action_url,
            "snippet": step.snippet.format(
                base=base.rstrip("/"), slug=tenant.slug if tenant is not None else "<tenant>"
            ),
        },
    )
