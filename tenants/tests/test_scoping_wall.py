"""Scoping as a wall. Read from the source with `ast`: outside tests and migrations, every
`<Model>.objects` of a tenant-owned model says whose rows it reads. At run time: the same rule,
enforced by TenantOwnedManager (tests at the end).

Allowed right after `.objects`:
- `.for_tenant(tenant)`;
- `.across_tenants(reason)`, the reason a non-empty string or a named constant;
- `.create(...)`, `.get_or_create(...)`, `.update_or_create(...)` naming `tenant=` or `tenant_id=`
  (scoped by their argument), `.bulk_create(...)` (each row carries its tenant), `.none()`;
- anything inside `with rls.across_tenants(reason):`, which has said that the block crosses tenants
  (the runtime wall in tenants.models yields to it as well).

Tenant-owned models are found in the model registry (every subclass of TenantOwned) and matched by
class name, through `from ... import X as Y` aliases. `Model._default_manager` and
`_base_manager` are Django's (admin, forms, related managers), and `get_object_or_404(Model, ...)`
reads through the former: project code does not read through them either. What the walk cannot
see (a model held in a variable) the runtime wall catches.
"""

from __future__ import annotations

import ast
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404

from tenants import rls
from tenants.models import ApiKey, AuditEvent, Membership, Role, TenantOwned, UnscopedQueryError
from tenants.testing import Cast

ROOT = Path(__file__).resolve().parents[2]
# Every app (a top-level package with an apps.py), config, and the operators' scripts.
PACKAGES = sorted({path.parent.name for path in ROOT.glob("*/apps.py")} | {"config", "bench", "scripts"})

SCOPED = {"for_tenant", "across_tenants", "bulk_create", "none"}
# Django's shortcuts read a model class through its _default_manager.
SHORTCUTS = {"get_object_or_404", "get_list_or_404", "aget_object_or_404", "aget_list_or_404"}
SCOPED_BY_ARGUMENT = {"create", "get_or_create", "update_or_create"}
DJANGOS_MANAGERS = {"_default_manager", "_base_manager"}


def tenant_owned_models() -> set[str]:
    return {model.__name__ for model in apps.get_models() if issubclass(model, TenantOwned)}


def source_files() -> Iterator[Path]:
    """The project's modules outside tests and migrations."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" not in parts and "migrations" not in parts:
                yield path


def _is_rls_crossing(item: ast.withitem) -> bool:
    """`with rls.across_tenants(...)` (or the name imported from tenants.rls)."""
    call = item.context_expr
    if not isinstance(call, ast.Call):
        return False
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr == "across_tenants" and isinstance(func.value, ast.Name) and func.value.id == "rls"
    return isinstance(func, ast.Name) and func.id == "across_tenants"


def _names_tenant(call: ast.Call) -> bool:
    return any(keyword.arg in ("tenant", "tenant_id") for keyword in call.keywords)


def _has_reason(call: ast.Call) -> bool:
    if len(call.args) != 1 or call.keywords:
        return False
    (reason,) = call.args
    if isinstance(reason, ast.Constant):
        return isinstance(reason.value, str) and bool(reason.value.strip())
    return isinstance(reason, ast.Name | ast.Attribute | ast.JoinedStr)


def bare_uses(source: str, models: set[str], filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, what) for each use of a tenant-owned model's `objects` that does not say whose rows
    it reads, and each read through Django's own managers."""
    tree = ast.parse(source, filename=filename)
    aliases = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def crossing(node: ast.AST) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.With | ast.AsyncWith) and any(_is_rls_crossing(item) for item in node.items):
                return True
        return False

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name):
            shortcut = node.func.id if isinstance(node.func, ast.Name) else ""
            if shortcut in SHORTCUTS and aliases.get(node.args[0].id, node.args[0].id) in models:
                found.append((node.lineno, f"{shortcut}({node.args[0].id}, ...)"))
            continue
        if not isinstance(node, ast.Attribute) or node.attr not in {"objects"} | DJANGOS_MANAGERS:
            continue
        receiver = node.value
        name = (
            receiver.id
            if isinstance(receiver, ast.Name)
            else receiver.attr
            if isinstance(receiver, ast.Attribute)
            else ""
        )
        if node.attr == "objects" and aliases.get(name, name) not in models:
            continue
        use = parents.get(node)
        method = use.attr if isinstance(use, ast.Attribute) else ""
        call = parents.get(use) if use is not None else None
        called = isinstance(call, ast.Call) and call.func is use
        if called and isinstance(call, ast.Call):
            if method in SCOPED - {"across_tenants"} or (method == "across_tenants" and _has_reason(call)):
                continue
            if method in SCOPED_BY_ARGUMENT and (_names_tenant(call) or node.attr in DJANGOS_MANAGERS):
                continue
        if crossing(node):
            continue
        found.append((node.lineno, f"{ast.unparse(node)}{'.' + method if method else ''}"))
    return sorted(found)


def test_the_walk_covers_the_project_and_its_tenant_owned_models() -> None:
    models = tenant_owned_models()
    assert {"Agent", "Run", "Membership", "ApiKey", "AuditEvent", "LedgerEntry", "Span"} <= models
    assert "Tenant" not in models and "User" not in models
    files = {path.relative_to(ROOT).parts[0] for path in source_files()}
    assert {"tenants", "agents", "budgets", "console", "gateway", "bench"} <= files


def test_no_bare_objects_on_a_tenant_owned_model() -> None:
    models = tenant_owned_models()
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in source_files()
        for line, what in bare_uses(path.read_text(), models, str(path))
    ]
    assert found == [], (
        "say whose rows each query reads: .for_tenant(tenant), or .across_tenants(reason) for the few "
        "that cross tenants (see TenantOwnedManager):\n" + "\n".join(found)
    )


def test_the_walk_reports_a_bare_use_and_accepts_the_scoped_ones() -> None:
    source = """
from agents.models import Run as AgentRun, Tool
from tenants import rls
from tenants.models import Tenant

def reads(tenant, run_id):
    AgentRun.objects.filter(pk=run_id).first()
    runs = AgentRun.objects.select_related("agent")
    Tool.objects.get_or_create(name="x")
    Tool.objects.across_tenants("")
    Tool._default_manager.filter(name="x")
    Tenant.objects.filter(slug="acme")
    AgentRun.objects.for_tenant(tenant).get(pk=run_id)
    AgentRun.objects.across_tenants("beat's sweep").filter(status="running")
    Tool.objects.create(tenant=tenant, name="x")
    Tool.objects.get_or_create(tenant_id=tenant.pk, name="x")
    Tool.objects.none()
    with rls.across_tenants("a lookup before the tenant is known"):
        AgentRun.objects.get(pk=run_id)
    get_object_or_404(Tool, pk=run_id)
    get_object_or_404(AgentRun.objects.for_tenant(tenant), pk=run_id)
"""
    assert bare_uses(source, {"Run", "Tool"}) == [
        (7, "AgentRun.objects.filter"),
        (8, "AgentRun.objects.select_related"),
        (9, "Tool.objects.get_or_create"),
        (10, "Tool.objects.across_tenants"),
        (11, "Tool._default_manager.filter"),
        (20, "get_object_or_404(Tool, ...)"),
    ]


# --- The runtime wall (tenants.models.TenantOwnedManager) ------------------------------------------


def test_every_tenant_owned_model_is_walled_and_djangos_own_managers_are_not() -> None:
    owned = [model for model in apps.get_models() if issubclass(model, TenantOwned)]
    assert len(owned) == len(tenant_owned_models()) > 40
    for model in owned:
        assert model.objects.walled, model
        assert model.objects is model.objects  # one walled copy per model
        # What Django reads through: unwalled, and still named `objects` (migrations see no change).
        assert not model._default_manager.walled, model
        assert model._default_manager.name == "objects", model
        assert not getattr(model._base_manager, "walled", False), model


def unscoped_queries(cast: Cast) -> list[Callable[[], object]]:
    return [
        lambda: Membership.objects.all(),
        lambda: Membership.objects.filter(role=Role.ADMIN),
        lambda: Membership.objects.get(user=cast.alice),
        lambda: Membership.objects.select_related("user"),
        lambda: Membership.objects.count(),
        lambda: AuditEvent.objects.order_by("-created_at"),
        lambda: Membership.objects.get_or_create(user=cast.alice),
        lambda: ApiKey.objects.create(name="no tenant", prefix="p" + secrets.token_hex(4)),
    ]


@pytest.mark.django_db
def test_the_runtime_wall_refuses_an_unscoped_query(cast: Cast) -> None:
    # As a request or a task runs: with no tenant yet, and with one (which scopes the database,
    # not the query: the wall still asks the query to say whose rows it reads).
    for context in (rls.no_tenant, lambda: rls.tenant_context(cast.acme.pk)):
        for query in unscoped_queries(cast):
            with context(), pytest.raises(UnscopedQueryError) as refused:
                query()
            message = str(refused.value)
            assert re.match(r"(Membership|AuditEvent|ApiKey)\.objects", message), message
            assert "for_tenant(tenant)" in message or "names no tenant: pass tenant=" in message
    with rls.no_tenant(), pytest.raises(ValueError, match="needs a reason"):
        Membership.objects.across_tenants(" ")
    with rls.no_tenant(), pytest.raises(ValueError, match="needs a saved tenant"):
        Membership.objects.for_tenant(None)  # type: ignore[arg-type]


@pytest.mark.django_db
def test_a_block_that_says_it_crosses_tenants_may_query_bare(cast: Cast) -> None:
    # The test's own context (conftest) is such a block, as beat's sweeps are.
    assert rls.current().cross_tenant
    assert Membership.objects.count() == 4
    for query in unscoped_queries(cast)[:-2]:
        query()


@pytest.mark.django_db
def test_the_runtime_wall_lets_scoped_queries_and_djangos_own_through(
    cast: Cast, django_assert_num_queries: Any
) -> None:
    acme = cast.acme
    with rls.tenant_context(acme.pk):
        with django_assert_num_queries(1):  # the wall adds no query
            assert Membership.objects.for_tenant(acme).count() == 3
        assert Membership.objects.for_tenant(acme.pk).count() == 3
        assert Membership.objects.for_tenant(str(acme.pk)).filter(user=cast.charlie).count() == 0
        # Not filtered here; the database still shows the context's tenant only (row-level security).
        seen = {m.tenant_id for m in Membership.objects.across_tenants("the database scopes it here")}
        assert seen == ({acme.pk} if rls.enforcing() else {acme.pk, cast.globex.pk})
        assert list(Membership.objects.none()) == []
        with transaction.atomic():
            key = ApiKey.objects.create(tenant=acme, name="scoped", prefix="s" + secrets.token_hex(4))
            same, created = ApiKey.objects.get_or_create(tenant=acme, prefix=key.prefix)
            assert (same, created) == (key, False)
            _, created = ApiKey.objects.update_or_create(tenant_id=acme.pk, prefix=key.prefix, defaults={"name": "n"})
            assert not created
            ApiKey.objects.bulk_create([ApiKey(tenant=acme, name="bulk", prefix="b" + secrets.token_hex(4))])
        # Django's own reads: related managers, validation through _default_manager,
        # get_object_or_404, foreign keys and refresh_from_db through _base_manager, deletion.
        assert acme.memberships.count() == 3
        assert cast.alice.memberships.filter(tenant=acme).exists()
        membership = Membership.objects.for_tenant(acme).get(user=cast.alice)
        with pytest.raises(ValidationError):
            Membership(tenant=acme, user=cast.alice, role=Role.VIEWER).validate_constraints()
        assert get_object_or_404(Membership, pk=membership.pk) == membership
        reread = Membership.objects.for_tenant(acme).get(pk=membership.pk)
        assert reread.user == cast.alice and reread.tenant == acme
        reread.refresh_from_db()
        with transaction.atomic():
            assert ApiKey.objects.for_tenant(acme).get(pk=key.pk).delete()[0] == 1
