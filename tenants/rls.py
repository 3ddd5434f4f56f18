"""Row-level security: PostgreSQL's second wall under tenant isolation (issue 18).

The first wall is the kernel's scoping in Python (`for_tenant()`, TenantScopedViewSet, the scoped
`get_<entity>_for_tenant` helpers, and tenants.models.TenantOwnedManager, which refuses a
`Model.objects` query that says neither `for_tenant()` nor `across_tenants(reason)` unless the
context here crosses tenants). This one is in the database, so that a raw cursor, or a model held
in a variable and read through Django's own managers, cannot read or write another tenant's rows.

**Policies.** Every table with a `tenant_id` column has row-level security enabled and one policy,
`tenant_isolation`, for reads and writes alike:

    USING      (tenant_id = nullif(current_setting('app.tenant', true), '')::uuid
                OR current_setting('app.cross_tenant', true) = 'on')
    WITH CHECK (the same)

A query sees only the rows of the tenant in `app.tenant`, nothing at all when no tenant is set, and
an insert or update that would write another tenant's `tenant_id` fails. `install()` puts them on
after every `migrate` (post_migrate, so a table added by any app's migration gets one); there is no
list of tables to keep up to date.

**Roles.** Policies bind every role but the owner of a table (no FORCE) and superusers. `migrate`
and `flush` run as the connecting role, the owner (`as_owner()`); `install()` also creates the app
role, DATABASE_APP_ROLE (default `aoc_app`: NOLOGIN, NOSUPERUSER, NOBYPASSRLS) and grants it DML on
every table. With TENANT_RLS on (the default), every other connection `SET ROLE`s to it right after connecting
(tenants.postgresql), so the web, worker and beat processes are bound by the policies. A
deployment may instead give its app processes a LOGIN role that is (or is a member of) the app role
and migrate with the owner's URL; SET ROLE to oneself is allowed. With TENANT_RLS off the policies
exist but the app connects as their owner, whom they do not bind.

**Context.** The tenant is a context variable that the kernel sets where it learns it:
- a console page: TenantMiddleware, once the member's tenant is resolved;
- an API call: `authenticate_key` (tenants.authentication), once the key is;
- a Celery task: task_prerun, from the task's `tenant_id` argument (the apps register the beat
  sweeps that run across tenants, and why: tenants.registry); task_postrun restores the worker's context;
- a websocket: TenantConsumerMixin, once connect has found the member's tenant;
- anything else (a thread, a script) with `tenant_context(tenant_id)`.
Each request and task starts with no tenant, and leaves the context as it found it.

Before each cursor, the backend (tenants.postgresql) brings the connection's `app.tenant` and
`app.cross_tenant` into line with the context: one `set_config` statement, sent only when the
connection last applied something else, or after a rollback (which may have undone it). Usually
that is once per request or task. The settings are session-level, not SET LOCAL: outside atomic
blocks Django runs in autocommit, where SET LOCAL would last one statement. They cannot leak to the
next request on a persistent connection, because that request's first cursor applies *its*
context (no tenant, until its tenant is known). The statement goes on the raw connection, so it is
not one of the queries Django counts (`django_assert_num_queries` counts what the code asked for).

**Crossing tenants** is explicit: `across_tenants(reason)` turns `app.cross_tenant` on for a block
and logs the reason (logger `tenants.rls`, DEBUG): the API key, membership and invitation lookups
made before the tenant is known, the beat sweeps, seeding. Platform staff's services write in the
context of the tenant they act on (tenant_create, tenant_set_status).

What this wall is not: a defence against someone who can run SQL as the app role (they can call
set_config themselves). It catches the application's own mistakes.

**COPY.** PostgreSQL refuses `COPY ... FROM` into a table with row-level security for a role the
policies bind: traces' span ingestion copies into a temporary table and moves the rows into
traces_span with one INSERT ... SELECT (traces.services._copy_spans).

**Threads** start with no tenant: `carried(fn)` runs fn in its starter's context (the run's lease
heartbeat); the gateway's recorder and hold keeper enter each call's tenant themselves. Scripts an
operator runs across tenants (the benchmarks) say so once with `across_tenants_from_here(reason)`.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tenants import registry

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger(__name__)

POLICY = "tenant_isolation"
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class Context:
    """What the database is told about the current tenant: one tenant, none, or all (with why)."""

    tenant_id: str = ""
    cross_tenant: bool = False
    reason: str = field(default="", compare=False)


NO_TENANT = Context()
_context: contextvars.ContextVar[Context] = contextvars.ContextVar("tenant_rls", default=NO_TENANT)


def current() -> Context:
    return _context.get()


def enforcing() -> bool:
    """True when app connections take the app role and carry the tenant context (TENANT_RLS)."""
    return bool(getattr(settings, "TENANT_RLS", False))


def app_role() -> str:
    role = str(getattr(settings, "DATABASE_APP_ROLE", "aoc_app"))
    if not ROLE_NAME.match(role):
        raise ImproperlyConfigured(f"DATABASE_APP_ROLE={role!r} is not a plain lower-case PostgreSQL role name.")
    return role


# --- Setting the context -------------------------------------------------------------------------


@contextlib.contextmanager
def _scoped(context: Context) -> Iterator[None]:
    token = _context.set(context)
    try:
        yield
    finally:
        _context.reset(token)


def tenant_context(tenant_id: Any) -> contextlib.AbstractContextManager[None]:
    """The block reads and writes the rows of one tenant (a Tenant's pk, UUID or str)."""
    if not tenant_id:
        raise ValueError("tenant_context() needs a tenant id")
    return _scoped(Context(tenant_id=str(tenant_id)))


def no_tenant() -> contextlib.AbstractContextManager[None]:
    """The block sees no tenant's rows until `enter_tenant()` names one; the context it found is
    restored on the way out. Each request (TenantMiddleware) and task starts so."""
    return _scoped(NO_TENANT)


def scope() -> contextlib.AbstractContextManager[None]:
    """A block that keeps the current context, and whose `enter_tenant()` calls end with it."""
    return _scoped(_context.get())


def across_tenants(reason: str) -> contextlib.AbstractContextManager[None]:
    """The block reads and writes every tenant's rows: say why (logged)."""
    if not reason:
        raise ValueError("across_tenants() needs a reason")
    logger.debug("across tenants: %s", reason)
    return _scoped(Context(cross_tenant=True, reason=reason))


def across_tenants_from_here(reason: str) -> None:
    """For a script an operator runs (a benchmark, a one-off job), which makes and checks its own
    tenants: the rest of the calling context (its main thread; asyncio.to_thread and tasks copy it)
    reads and writes every tenant's rows. Say why (logged). Not for code a request or task runs."""
    if not reason:
        raise ValueError("across_tenants_from_here() needs a reason")
    logger.debug("across tenants: %s", reason)
    _context.set(Context(cross_tenant=True, reason=reason))


def enter_tenant(tenant_id: Any) -> None:
    """Make `tenant_id` the tenant for the rest of the enclosing scope (`no_tenant()` in
    TenantMiddleware, task_prerun in a worker, `scope()`, an ASGI request's own task), which
    restores what was there before when it ends. Call it only inside such a scope."""
    if not tenant_id:
        raise ValueError("enter_tenant() needs a tenant id")
    _context.set(Context(tenant_id=str(tenant_id)))


def carried[**P, R](target: Callable[P, R]) -> Callable[P, R]:
    """`target`, to be called on another thread (a heartbeat, a pool), in the tenant context its
    caller has now: a new thread starts with no tenant, whatever the thread that made it had."""
    context = _context.get()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with _scoped(context):
            return target(*args, **kwargs)

    return run


class TenantConsumerMixin:
    """For a Channels consumer of one tenant's socket: each message is handled in the context of
    `self.tenant` once connect has set it (and connect calls `enter_tenant()` for the rest of its
    own handling). The `database_sync_to_async` calls a handler makes inherit the context."""

    async def dispatch(self, message: Any) -> None:
        tenant = getattr(self, "tenant", None)
        with tenant_context(tenant.pk) if tenant is not None else scope():
            await super().dispatch(message)  # type: ignore[misc]


# --- Applying it to a connection (called by tenants.postgresql) -----------------------------------

SYNC_SQL = "SELECT set_config('app.tenant', %s, false), set_config('app.cross_tenant', %s, false)"


def sync(wrapper: BaseDatabaseWrapper) -> None:
    """Bring the connection's settings into line with the context, when they differ from what it
    last applied. Skipped in a failed transaction: only its rollback comes next, which forgets what
    was applied, so the next cursor applies the context again."""
    from psycopg.pq import TransactionStatus

    wanted = _context.get()
    applied = getattr(wrapper, "rls_applied", None)
    if applied is not None and applied == wanted:
        return
    raw = wrapper.connection
    if raw is None or raw.info.transaction_status == TransactionStatus.INERROR:
        return
    raw.execute(SYNC_SQL, [wanted.tenant_id, "on" if wanted.cross_tenant else "off"])
    wrapper.rls_applied = wanted  # type: ignore[attr-defined]


def forget(wrapper: BaseDatabaseWrapper) -> None:
    """The connection's settings are unknown (a new connection, a rollback): apply them again."""
    wrapper.rls_applied = None  # type: ignore[attr-defined]


# --- The owner --------------------------------------------------------------------------------------

_owner_depth = 0


def owner_mode() -> bool:
    return _owner_depth > 0


def _set_roles(statement: str) -> None:
    """Run SET ROLE / RESET ROLE on this thread's open connections."""
    from django.db import connections

    for wrapper in connections.all(initialized_only=True):
        if wrapper.vendor == "postgresql" and wrapper.connection is not None:
            with wrapper.connection.cursor() as cursor:
                cursor.execute(statement)


def owner_begin() -> None:
    """From here this process's connections act as the role they connected as (the owner)."""
    global _owner_depth
    _owner_depth += 1
    if _owner_depth == 1 and enforcing():
        _set_roles("RESET ROLE")


def owner_end() -> None:
    global _owner_depth
    _owner_depth -= 1
    if _owner_depth == 0 and enforcing():
        _set_roles(f'SET ROLE "{app_role()}"')


@contextlib.contextmanager
def as_owner() -> Iterator[None]:
    """Schema work (migrate, flush, creating the test database) as the owner, outside the policies."""
    owner_begin()
    try:
        yield
    finally:
        owner_end()


# --- Installing the role and the policies ------------------------------------------------------------


def policy_expression(column_type: str) -> str:
    return (
        f"tenant_id = nullif(current_setting('app.tenant', true), '')::{column_type}"
        " OR current_setting('app.cross_tenant', true) = 'on'"
    )


TENANT_TABLES_SQL = """
SELECT c.relname, format_type(a.atttypid, a.atttypmod), c.relrowsecurity,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = %s)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
 ORDER BY c.relname
"""


def tenant_tables(cursor: Any) -> list[tuple[str, str, bool, bool]]:
    """(table, tenant_id's type, RLS enabled, policy present) for every table with a tenant_id."""
    cursor.execute(TENANT_TABLES_SQL, [POLICY])
    return [(str(name), str(kind), bool(enabled), bool(has_policy)) for name, kind, enabled, has_policy in cursor]


def install(connection: BaseDatabaseWrapper) -> list[str]:
    """Create the app role if missing, grant it DML on every table and sequence of the schema, and
    enable RLS with the policy on every tenant table that lacks it. Idempotent; run as the owner
    after every migrate. Returns the tables it changed."""
    from django.db import DatabaseError, transaction

    role = app_role()
    changed = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        role_exists = cursor.fetchone() is not None
    if not role_exists:
        try:
            # Roles belong to the cluster: another database's migrate may create it at the same moment.
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(
                    f"""DO $$ BEGIN
                        CREATE ROLE "{role}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
                    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                    END $$"""
                )
            role_exists = True
        except DatabaseError as exc:  # an owner without CREATEROLE: the DBA creates it
            logger.warning("row-level security: role %s is missing and could not be created (%s)", role, exc)
    with connection.cursor() as cursor:
        if role_exists:
            cursor.execute("SELECT current_schema()")
            schema = str(cursor.fetchone()[0]).replace('"', '""')
            cursor.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
            cursor.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
            cursor.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
        for table, column_type, enabled, has_policy in tenant_tables(cursor):
            quoted = '"' + table.replace('"', '""') + '"'
            if not enabled:
                cursor.execute(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY")
            if not has_policy:
                expression = policy_expression(column_type)
                cursor.execute(f"CREATE POLICY {POLICY} ON {quoted} USING ({expression}) WITH CHECK ({expression})")
            if not enabled or not has_policy:
                changed.append(table)
    if changed:
        logger.info("row-level security installed on %d tables", len(changed))
    return changed


def install_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver (sent for each app after all migrations ran): installs once, for this app."""
    from django.db import connections

    connection = connections[using]
    if connection.vendor == "postgresql":
        with as_owner():
            install(connection)


# --- Celery -------------------------------------------------------------------------------------------

_task_tokens: dict[str, contextvars.Token[Context]] = {}
_signatures: dict[str, inspect.Signature] = {}


def task_context(task: Any, args: Any, kwargs: Any) -> Context:
    """A task's context: across tenants for the sweeps, else its `tenant_id` argument's tenant."""
    if reason := registry.cross_tenant_reason(task.name):
        return Context(cross_tenant=True, reason=f"{task.name}: {reason}")
    signature = _signatures.get(task.name)
    if signature is None:
        signature = _signatures[task.name] = inspect.signature(task.run)
    try:
        tenant_id = signature.bind_partial(*(args or ()), **(kwargs or {})).arguments.get("tenant_id")
    except TypeError:
        tenant_id = None
    return Context(tenant_id=str(tenant_id)) if tenant_id else NO_TENANT


def _task_prerun(task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    context = task_context(task, args, kwargs)
    if context.cross_tenant:
        logger.debug("across tenants: %s", context.reason)
    if task_id is not None:
        _task_tokens[task_id] = _context.set(context)


def _task_postrun(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        try:
            _context.reset(token)
        except ValueError:  # set in another context (should not happen): start the next task clean
            _context.set(NO_TENANT)


def connect_celery() -> None:
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_prerun, weak=False, dispatch_uid="tenants.rls.task_prerun")
    task_postrun.connect(_task_postrun, weak=False, dispatch_uid="tenants.rls.task_postrun")
