"""Template context every console page needs: the tenant switcher, the current role, the grouped
navigation and the page's title."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse

from tenants.models import Membership, Role
from tenants.selectors import memberships_for_user

# The sidebar: (group, [(label, url name, the url names it stays current for, role needed)]).
NAV: list[tuple[str, list[tuple[str, str, frozenset[str], Role]]]] = [
    (
        "Operate",
        [
            ("Runs", "runs", frozenset({"runs", "run", "run_cancel"}), Role.VIEWER),
            ("Approvals", "approvals", frozenset(), Role.REVIEWER),  # every approval* page, see _current
            (
                "Traces",
                "traces",
                frozenset({"traces", "trace", "trace_span", "trace_children", "trace_session", "trace_end_user"})
                | {"trace_end_user_erase", "trace_settings"},
                Role.VIEWER,
            ),
        ],
    ),
    (
        "Build",
        [
            ("Agents", "agents", frozenset({"agents", "agent", "agent_new", "agent_try", "demo"}), Role.VIEWER),
            ("Tools", "tools", frozenset({"tools", "tool", "tool_new"}), Role.VIEWER),
            (
                "Models",
                "catalog",
                frozenset({"catalog", "model_create", "model_edit", "provider_create", "provider_edit", "pins"})
                | {"pin_change_request", "pin_change"},
                Role.VIEWER,
            ),
            ("Gateway", "gateway", frozenset({"gateway"}), Role.VIEWER),
        ],
    ),
    (
        "Govern",
        [
            ("Budgets", "budgets", frozenset({"budgets", "budget_new", "budget_edit", "budget_ledger"}), Role.VIEWER),
            ("Guardrails", "guardrails", frozenset(), Role.VIEWER),  # every guardrail* page
            ("Evals", "evals", frozenset(), Role.VIEWER),  # every eval* page
        ],
    ),
    (
        "Tenant",
        [
            ("Members", "members", frozenset({"members"}), Role.VIEWER),
            ("API keys", "api_keys", frozenset({"api_keys"}), Role.ADMIN),
            ("Audit log", "audit", frozenset({"audit"}), Role.ADMIN),
        ],
    ),
]

_PREFIXES = {"approvals": ("approval", "autonomy_revoke"), "guardrails": ("guardrail",), "evals": ("eval",)}

# Page titles where the URL name does not say it well; the rest are the URL name in words.
TITLES = {
    "dashboard": "Overview",
    "catalog": "Models",
    "pins": "Model pins",
    "api_keys": "API keys",
    "audit": "Audit log",
    "budget_ledger": "Budget ledger",
    "trace": "Trace",
    "trace_span": "Span",
    "trace_session": "Session",
    "trace_end_user": "End user",
    "run": "Run",
    "approval": "Approval request",
    "approvals": "Approvals",
    "approvals_history": "Approval history",
    "approval_rules": "Approval rules",
    "approvals_autonomy": "Autonomy",
    "approvals_metrics": "Approval metrics",
    "eval_suite": "Eval suite",
    "eval_run": "Eval run",
    "eval_case": "Eval case",
    "guardrail_policy": "Guardrail policy",
    "guardrail_events": "Guardrail events",
    "platform_tenants": "Platform tenants",
    "tenants": "Your tenants",
    "login": "Sign in",
}


def console(request: HttpRequest) -> dict[str, Any]:
    url_name = _url_name(request)
    context: dict[str, Any] = {"page_title": page_title(url_name)}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    membership = getattr(request, "membership", None)
    tenant = getattr(request, "tenant", None)
    context.update(
        {
            # Lazy: evaluated only by pages that render the switcher.
            "my_memberships": memberships_for_user(user=user),
            "tenant": tenant,
            "membership": membership,
            "is_admin": membership is not None and membership.has_role("admin"),
            "is_reviewer": membership is not None and membership.has_role("reviewer"),
            # Every tenant page opens the live socket; a page that updates in place sets its own
            # `live_query` (see console/live.py), the rest are named after their URL.
            "live_query": urlencode({"page": url_name}),
            "nav_groups": nav_groups(tenant.slug, membership, url_name) if tenant and membership else [],
        }
    )
    return context


def nav_groups(slug: str, membership: Membership, url_name: str) -> list[dict[str, Any]]:
    """The sidebar's groups with the links this member's role may follow, the current one marked."""
    groups = []
    for label, items in NAV:
        links = [
            {
                "label": text,
                "key": name,
                "url": reverse(f"console:{name}", args=[slug]),
                "current": _current(name, names, url_name),
            }
            for text, name, names, role in items
            if membership.has_role(role)
        ]
        if links:
            groups.append({"label": label, "links": links})
    return groups


def _current(name: str, names: frozenset[str], url_name: str) -> bool:
    if name in _PREFIXES:
        return url_name.startswith(_PREFIXES[name])
    return url_name in names


def page_title(url_name: str) -> str:
    if not url_name:
        return ""
    return TITLES.get(url_name) or url_name.replace("_", " ").capitalize()


def _url_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.url_name or "" if match is not None else ""
