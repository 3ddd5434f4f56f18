"""Every tenant page and every API endpoint is covered by a contract test class."""

from __future__ import annotations

import importlib

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from tenants.testing import ApiContract, ConsolePageContract, all_subclasses

# Pages outside a tenant: sign-in, the switcher, invitations, platform staff, health, docs.
UNSCOPED = {
    "console:home",
    "console:login",
    "console:logout",
    "console:tenants",
    "console:accept_invitation",
    "console:platform_tenants",
    "console:platform_tenant_status",
    "console:healthz",
    "schema",
    "api-docs",
}


def _names(patterns: list, prefix: str = "", namespace: str = "") -> list[tuple[str, str]]:
    found = []
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            found += _names(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern) and p.name:
            found.append((prefix + str(p.pattern), namespace + p.name))
    return found


@pytest.mark.django_db
def test_every_route_has_a_contract() -> None:
    # Importing every app's test modules registers their contract classes, however the run was selected.
    for path in sorted(settings.BASE_DIR.glob("*/tests/test_*.py")):
        importlib.import_module(f"{path.parent.parent.name}.tests.{path.stem}")

    covered = {getattr(c, "url_name", "") for c in all_subclasses(ConsolePageContract) | all_subclasses(ApiContract)}
    routes = {name for pattern, name in _names(get_resolver().url_patterns) if pattern.startswith(("t/", "api/v1/"))}
    assert {"console:members", "console:dashboard", "member-list", "me"} <= routes  # the walk found them
    missing = routes - covered - UNSCOPED
    assert not missing, f"routes without a contract test class: {sorted(missing)}"
