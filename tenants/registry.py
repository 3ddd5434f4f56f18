"""What the domain apps tell the kernel, each from its AppConfig.ready(): the kernel imports no
domain app (tenants/tests/test_kernel_imports.py holds it to that), so whatever it does for every
app goes through here.

- live event types: the TypedDicts `tenants.events` may push to a tenant's live group;
- demo seeders, in a defined order (`order`: lower first; the catalog before the agents that use
  its models, the evals last), run for each demo tenant by `tenants.demo.seed_demo`;
- end-user erasers, run in one transaction by `tenants.services.end_user_erase`;
- cross-tenant tasks: beat's sweeps (retention among them), which `tenants.rls` runs across tenants;
- scope sources: the tenant's own API-key scopes besides the built-in `Scope`s (agents: its tools').

Registering is idempotent (a second registration of the same thing changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, get_args, get_type_hints

if TYPE_CHECKING:
    from tenants.audit import Actor
    from tenants.models import Tenant


class DemoSeeder(Protocol):
    def __call__(self, tenant: Tenant, *, queue_work: bool) -> object:
        """Create the app's demo rows of `tenant` where missing (idempotent); `queue_work=False`: send
        no background task (the tests)."""


class EndUserEraser(Protocol):
    def __call__(self, *, actor: Actor, tenant: Tenant, end_user_id: str) -> dict[str, Any]:
        """Erase what the app holds of the end user; a receipt whose `counts` say what, per kind."""


ScopeSource = Callable[["Tenant"], Iterable[str]]

_live_events: dict[str, type] = {}
_demo_seeders: list[tuple[int, DemoSeeder]] = []
_end_user_erasers: list[EndUserEraser] = []
_cross_tenant_tasks: dict[str, str] = {}
_scope_sources: list[ScopeSource] = []


# --- Live events ----------------------------------------------------------------------------------


def register_live_events(*event_types: type) -> None:
    """Each a TypedDict whose `type` is a `Literal[...]` naming it on the wire."""
    for event_type in event_types:
        for name in get_args(get_type_hints(event_type)["type"]):
            known = _live_events.setdefault(name, event_type)
            if known is not event_type:
                raise ValueError(f"live event type {name!r} is already {known.__qualname__}'s.")


def live_event_types() -> dict[str, type]:
    """Every registered live event type, by its `type` name."""
    return dict(_live_events)


def check_live_event(event: Mapping[str, object]) -> None:
    """LookupError for an event whose `type` no app registered (the live pages would not know it)."""
    if event.get("type") not in _live_events:
        raise LookupError(f"live event type {event.get('type')!r} is not registered (tenants.registry).")


# --- Demo seeders ---------------------------------------------------------------------------------


def register_demo_seeder(seeder: DemoSeeder, *, order: int) -> None:
    if all(known is not seeder for _, known in _demo_seeders):
        _demo_seeders.append((order, seeder))


def demo_seeders() -> list[DemoSeeder]:
    """In their order (equal orders: as registered)."""
    return [seeder for _, seeder in sorted(_demo_seeders, key=lambda entry: entry[0])]


# --- End-user erasure -----------------------------------------------------------------------------


def register_end_user_eraser(eraser: EndUserEraser) -> None:
    if eraser not in _end_user_erasers:
        _end_user_erasers.append(eraser)


def end_user_erasers() -> list[EndUserEraser]:
    return list(_end_user_erasers)


# --- Cross-tenant tasks ---------------------------------------------------------------------------


def register_cross_tenant_task(name: str, *, reason: str) -> None:
    """The Celery task registered as `name` runs across tenants (a beat sweep), for `reason`."""
    _cross_tenant_tasks[name] = reason


def cross_tenant_tasks() -> dict[str, str]:
    """Each cross-tenant task's reason, by task name."""
    return dict(_cross_tenant_tasks)


def cross_tenant_reason(name: str) -> str:
    """Why the task `name` runs across tenants, or "" when it runs in one tenant."""
    return _cross_tenant_tasks.get(name, "")


# --- API-key scopes -------------------------------------------------------------------------------


def register_scope_source(source: ScopeSource) -> None:
    """`source(tenant)`: scopes a key of the tenant may hold besides the built-in ones."""
    if source not in _scope_sources:
        _scope_sources.append(source)


def scope_sources() -> list[ScopeSource]:
    return list(_scope_sources)
