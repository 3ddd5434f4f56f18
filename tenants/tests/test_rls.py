"""Row-level security, the second wall under tenant isolation (tenants/rls.py): proved on the app
role itself (NOSUPERUSER, NOBYPASSRLS), with raw SQL that no scoping in Python protects."""

from __future__ import annotations

import importlib
import io
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import shared_task
from django.apps import apps
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse

from tenants import registry, rls, services
from tenants.audit import Actor
from tenants.demo import seed_demo
from tenants.models import ApiKey, AuditEvent, Invitation, Membership, Role, Scope, Tenant, TenantOwned
from tenants.selectors import invitation_by_token, memberships_for_user
from tenants.testing import ApiClient, Cast, make_key

# These tests read without a tenant filter in Python (the ORM's wall asks them to say so), so that
# row-level security alone decides what each query sees.
UNFILTERED = "the test shows what row-level security alone lets through"


@pytest.fixture
def app_role(cast: Cast, settings: Any) -> Iterator[None]:
    """The test's connection bound by the policies as the app's are with TENANT_RLS on: the app
    role taken inside the test's transaction (its rollback would undo it too), no tenant set."""
    settings.TENANT_RLS = True
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{rls.app_role()}"')
    rls.forget(connection)
    with rls.no_tenant():
        yield
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def scalar(sql: str, params: list[Any] | None = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        row = cursor.fetchone()
    return row[0] if row else None


def tenant_tables() -> list[str]:
    with connection.cursor() as cursor:
        return [table for table, *_ in rls.tenant_tables(cursor)]


@pytest.mark.django_db
def test_the_app_role_is_neither_superuser_nor_bypasses_rls(app_role: None) -> None:
    role = rls.app_role()
    assert scalar("SELECT current_user") == role
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s", [role]
        )
        assert cursor.fetchone() == (False, False, False, False)


@pytest.mark.django_db
def test_every_tenant_table_has_the_policy() -> None:
    """Every table of a tenant-owned model (many-to-many tables included) has RLS on and the policy."""
    with connection.cursor() as cursor:
        found = rls.tenant_tables(cursor)
    assert all(enabled and has_policy for _, _, enabled, has_policy in found), [t for t in found if not all(t[2:])]
    owned = {
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if issubclass(model, TenantOwned) or any(f.name == "tenant" for f in model._meta.concrete_fields)
    }
    assert owned <= {table for table, *_ in found}
    assert len(found) >= 40


@pytest.mark.django_db
def test_installing_again_changes_nothing() -> None:
    with rls.as_owner():
        assert rls.install(connection) == []


@pytest.mark.django_db
def test_a_raw_unscoped_query_returns_nothing(app_role: None) -> None:
    with rls.across_tenants("the test counts what is there"):
        assert scalar("SELECT count(*) FROM tenants_membership") == 4
    assert rls.current() == rls.NO_TENANT
    assert scalar("SELECT count(*) FROM tenants_membership") == 0
    assert scalar("SELECT count(*) FROM tenants_apikey") == 0
    assert Membership.objects.across_tenants(UNFILTERED).count() == 0
    # Every tenant table, whatever it holds.
    for table in tenant_tables():
        assert scalar(f'SELECT count(*) FROM "{table}"') == 0, table  # noqa: S608 - names from pg_class


@pytest.mark.django_db
def test_a_tenant_sees_only_its_own_rows(app_role: None, cast: Cast) -> None:
    acme = str(cast.acme.pk)
    with rls.tenant_context(cast.acme.pk):
        assert {str(t) for (t,) in _rows("SELECT DISTINCT tenant_id FROM tenants_membership")} == {acme}
        # The ORM without .for_tenant() too.
        assert {m.tenant_id for m in Membership.objects.across_tenants(UNFILTERED)} == {cast.acme.pk}
        assert not Membership.objects.across_tenants(UNFILTERED).filter(tenant=cast.globex).exists()
        for table in tenant_tables():
            count = f'SELECT count(*) FROM "{table}" WHERE tenant_id <> %s'  # noqa: S608 - names from pg_class
            assert scalar(count, [acme]) == 0, table
    with rls.tenant_context(cast.globex.pk):
        assert {m.user.email for m in Membership.objects.across_tenants(UNFILTERED).select_related("user")} == {
            cast.charlie.email
        }


def _rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


@pytest.mark.django_db
def test_a_cross_tenant_write_is_refused(app_role: None, cast: Cast) -> None:
    with rls.tenant_context(cast.acme.pk):
        # Inserting a row of another tenant: WITH CHECK refuses it.
        with (
            pytest.raises(DatabaseError, match="row-level security"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                "INSERT INTO tenants_membership (id, tenant_id, user_id, role, created_at)"
                " VALUES (%s, %s, %s, 'admin', now())",
                [uuid.uuid4(), cast.globex.pk, cast.alice.pk],
            )
        # Moving one of ours to another tenant: refused too.
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Membership.objects.across_tenants(UNFILTERED).filter(user=cast.bob).update(tenant=cast.globex)
        # Another tenant's rows cannot be reached to be changed or deleted.
        with connection.cursor() as cursor:
            cursor.execute("UPDATE tenants_membership SET role = 'viewer' WHERE tenant_id = %s", [cast.globex.pk])
            assert cursor.rowcount == 0
            cursor.execute("DELETE FROM tenants_membership WHERE tenant_id = %s", [cast.globex.pk])
            assert cursor.rowcount == 0
        # Our own may be written.
        assert Membership.objects.across_tenants(UNFILTERED).filter(user=cast.vera).update(role=Role.REVIEWER) == 1
    with rls.across_tenants("the test checks globex is untouched"):
        assert Membership.objects.across_tenants(UNFILTERED).get(user=cast.charlie).role == Role.ADMIN


@pytest.mark.django_db
def test_crossing_tenants_is_explicit_and_logged(app_role: None, cast: Cast, caplog: Any) -> None:
    with caplog.at_level(logging.DEBUG, logger="tenants.rls"), rls.across_tenants("a sweep over every tenant"):
        tenants = {m.tenant_id for m in Membership.objects.across_tenants(UNFILTERED)}
    assert tenants == {cast.acme.pk, cast.globex.pk}
    assert "across tenants: a sweep over every tenant" in caplog.text
    with pytest.raises(ValueError, match="reason"):
        rls.across_tenants("")


@pytest.mark.django_db
def test_a_context_does_not_outlive_its_block(app_role: None, cast: Cast) -> None:
    """The connection keeps its settings between statements; the next cursor applies the context
    that is current then, so a reused connection never carries the last block's tenant."""
    with rls.tenant_context(cast.acme.pk):
        assert Membership.objects.across_tenants(UNFILTERED).count() == 3
        with rls.tenant_context(cast.globex.pk):
            assert Membership.objects.across_tenants(UNFILTERED).count() == 1
        assert Membership.objects.across_tenants(UNFILTERED).count() == 3
    assert Membership.objects.across_tenants(UNFILTERED).count() == 0
    assert scalar("SELECT current_setting('app.tenant', true)") == ""


@transaction.atomic
def _globex_in_a_savepoint_that_rolls_back(cast: Cast) -> None:
    rls.enter_tenant(cast.globex.pk)
    assert Membership.objects.across_tenants(UNFILTERED).count() == 1  # globex applied, inside the savepoint
    raise RuntimeError


@pytest.mark.django_db
def test_a_rollback_that_undid_the_settings_is_followed_by_applying_them_again(app_role: None, cast: Cast) -> None:
    with rls.no_tenant():
        rls.enter_tenant(cast.acme.pk)
        assert Membership.objects.across_tenants(UNFILTERED).count() == 3  # acme applied
        with pytest.raises(RuntimeError):
            _globex_in_a_savepoint_that_rolls_back(cast)
        # The savepoint's rollback put acme back in the database while globex is still the tenant:
        # the settings are applied anew, and acme's rows stay out of sight.
        assert {m.tenant_id for m in Membership.objects.across_tenants(UNFILTERED)} == {cast.globex.pk}
        assert scalar("SELECT current_setting('app.tenant', true)") == str(cast.globex.pk)
    with pytest.raises(DatabaseError), transaction.atomic():
        scalar("SELECT 1 / 0")
    assert Membership.objects.across_tenants(UNFILTERED).count() == 0


@pytest.mark.django_db
def test_a_console_request_sees_its_tenant_and_leaves_no_tenant_behind(
    app_role: None, client: Client, cast: Cast
) -> None:
    client.force_login(cast.alice)
    response = client.get(reverse("console:members", args=["acme"]))
    assert response.status_code == 200
    page = response.content.decode()
    assert cast.bob.email in page and cast.charlie.email not in page
    # charlie is no member of acme: the same 404 as before, the membership looked up across tenants.
    client.force_login(cast.charlie)
    assert client.get(reverse("console:members", args=["acme"])).status_code == 404
    assert client.get(reverse("console:members", args=["globex"])).status_code == 200
    assert rls.current() == rls.NO_TENANT
    assert Membership.objects.across_tenants(UNFILTERED).count() == 0


@pytest.mark.django_db
def test_an_api_request_sees_its_keys_tenant(app_role: None, client: Client, cast: Cast) -> None:
    with rls.across_tenants("the test makes keys"):
        _, acme_key = make_key(cast.acme, [Scope.ADMIN])
        _, globex_key = make_key(cast.globex, [Scope.ADMIN])
    acme = ApiClient(client, acme_key).get(reverse("member-list"))
    assert acme.status_code == 200, acme.content
    assert {m["email"] for m in acme.json()["results"]} == {cast.alice.email, cast.bob.email, cast.vera.email}
    globex = ApiClient(client, globex_key).get(reverse("member-list"))
    assert {m["email"] for m in globex.json()["results"]} == {cast.charlie.email}
    assert ApiClient(client, "aoc_nothing_here").get(reverse("member-list")).status_code == 401
    assert Membership.objects.across_tenants(UNFILTERED).count() == 0


@shared_task(name="tenants.tests.test_rls.memberships_seen")
def memberships_seen(tenant_id: str | None = None) -> list[str]:
    return sorted(str(m.tenant_id) for m in Membership.objects.across_tenants(UNFILTERED))


@pytest.mark.django_db
def test_a_task_runs_in_the_tenant_of_its_tenant_id(app_role: None, cast: Cast) -> None:
    # apply() runs the task here, through the same prerun/postrun signals a worker sends.
    seen = memberships_seen.apply(args=(str(cast.globex.pk),)).get()
    assert seen == [str(cast.globex.pk)]
    assert memberships_seen.apply(kwargs={"tenant_id": str(cast.acme.pk)}).get() == [str(cast.acme.pk)] * 3
    assert memberships_seen.apply().get() == []
    assert rls.current() == rls.NO_TENANT


def test_beats_sweeps_run_across_tenants_and_other_tasks_in_their_tenant() -> None:
    def task(name: str) -> Any:
        module, _, attr = name.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    context = rls.task_context(task("budgets.tasks.expire_stale_reservations"), (), {})
    assert context.cross_tenant and "reservations" in context.reason
    tenant = str(uuid.uuid4())
    execute = task("agents.tasks.execute_run")
    assert rls.task_context(execute, (tenant, str(uuid.uuid4())), {}) == rls.Context(tenant_id=tenant)
    assert rls.task_context(execute, (), {"run_id": "1", "tenant_id": tenant}) == rls.Context(tenant_id=tenant)
    assert rls.task_context(task("tenants.tasks.heartbeat"), (), {}) == rls.NO_TENANT
    # Every sweep named is a task that exists, under that name.
    assert all(task(name).name == name for name in registry.cross_tenant_tasks())


@pytest.mark.django_db
def test_installing_creates_a_missing_role_bound_by_the_policies(settings: Any) -> None:
    """migrate creates the role when it is missing (inside this test's transaction, so undone)."""
    settings.DATABASE_APP_ROLE = role = f"aoc_app_test_{uuid.uuid4().hex[:8]}"
    with rls.as_owner():
        assert rls.install(connection) == []  # the policies were there; the role and its grants were not
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", [role])
        assert cursor.fetchone() == (False, False, False)
        cursor.execute("SELECT has_table_privilege(%s, 'tenants_membership', 'SELECT, INSERT, UPDATE, DELETE')", [role])
        assert cursor.fetchone() == (True,)
        cursor.execute("SELECT has_table_privilege(%s, 'tenants_membership', 'TRUNCATE')", [role])
        assert cursor.fetchone() == (False,)


@pytest.mark.django_db
def test_the_kernels_cross_tenant_services_say_whose_rows_they_write(app_role: None, cast: Cast) -> None:
    """Platform staff create and suspend tenants, a visitor accepts an invitation by its token, the
    demo is seeded and a key made from the command line: none has a tenant in context to begin with."""
    tenant, invite = services.tenant_create(
        actor=Actor(user=cast.staff), name="Initech", admin_email="pat@initech.test"
    )
    assert invite is not None and invite.invitation is not None
    services.tenant_set_status(actor=Actor(user=cast.staff), tenant=tenant, status=Tenant.Status.SUSPENDED)
    services.tenant_set_status(actor=Actor(user=cast.staff), tenant=tenant, status=Tenant.Status.ACTIVE)
    token = invite.accept_url.rstrip("/").rsplit("/", 1)[1]
    membership = services.invitation_accept(token=token, name="Pat", password="a long enough password 42")
    assert membership.role == Role.ADMIN
    seed_demo(first_eval_run=False)  # idempotent: nothing new
    call_command(
        "apikey",
        "create",
        "--tenant",
        "acme",
        "--name",
        "cli",
        "--scopes",
        "read",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert rls.current() == rls.NO_TENANT
    assert Membership.objects.across_tenants(UNFILTERED).count() == 0  # and nothing was left in context
    with rls.tenant_context(tenant.pk):
        assert list(
            AuditEvent.objects.across_tenants(UNFILTERED).values_list("action", flat=True).order_by("created_at")
        ) == [
            "tenant.create",
            "member.invite",
            "tenant.suspend",
            "tenant.reactivate",
            "member.join",
        ]
        assert Invitation.objects.across_tenants(UNFILTERED).get().accepted_at is not None
    with rls.tenant_context(cast.acme.pk):
        assert ApiKey.objects.across_tenants(UNFILTERED).filter(name="cli").count() == 1
    with rls.across_tenants("the test counts tenants' members"):
        assert Membership.objects.count() == 5


class _Recorder:
    async def dispatch(self, message: Any) -> None:
        self.seen.append((message, rls.current()))  # type: ignore[attr-defined]
        if message == "connect":
            self.tenant = self.found  # type: ignore[attr-defined]
            rls.enter_tenant(self.tenant.pk)
            self.seen.append(("connected", rls.current()))  # type: ignore[attr-defined]


class _Consumer(rls.TenantConsumerMixin, _Recorder):
    def __init__(self, found: Any) -> None:
        self.found = found
        self.seen: list[tuple[str, rls.Context]] = []


async def test_a_consumer_handles_each_message_in_its_tenant_once_connected() -> None:
    tenant = Tenant(pk=uuid.uuid4())
    consumer = _Consumer(tenant)
    with rls.no_tenant():  # as a socket starts (TENANT_RLS runs test bodies across tenants)
        await consumer.dispatch("connect")
        await consumer.dispatch("event")
        assert rls.current() == rls.NO_TENANT  # nothing left behind between messages
    acme = rls.Context(tenant_id=str(tenant.pk))
    assert consumer.seen == [("connect", rls.NO_TENANT), ("connected", acme), ("event", acme)]


@pytest.mark.django_db
def test_a_users_own_memberships_and_an_invitation_by_token_are_read_across_tenants(app_role: None, cast: Cast) -> None:
    with rls.across_tenants("the test makes alice a member of globex too"):
        Membership.objects.create(tenant=cast.globex, user=cast.alice, role=Role.VIEWER)
        invite = services.member_invite(
            actor=Actor(user=cast.charlie), tenant=cast.globex, email="new@globex.test", role=Role.VIEWER
        )
    own = memberships_for_user(user=cast.alice)
    with rls.tenant_context(cast.acme.pk):  # a page of acme, whose switcher lists both (evaluated late)
        assert [m.tenant.slug for m in own] == ["acme", "globex"]
        assert own.count() == 2 and own.exists()
        # Other reads stay walled.
        assert Membership.objects.across_tenants(UNFILTERED).filter(user=cast.alice).count() == 1
    token = invite.accept_url.rstrip("/").rsplit("/", 1)[1]
    found = invitation_by_token(token)
    assert found is not None and found.tenant == cast.globex
    assert invitation_by_token("not-a-token") is None
    assert Invitation.objects.across_tenants(UNFILTERED).count() == 0
