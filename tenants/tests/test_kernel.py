"""The tenancy kernel's own guarantees: non-null tenants, sealed scoping, append-only audit."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction
from django.http import Http404

from config import settings as project_settings
from tenants.audit import Actor
from tenants.models import ApiKey, AuditEvent, Membership, Role, TenantOwned
from tenants.selectors import get_for_tenant, get_membership_for_tenant
from tenants.services import audit_record
from tenants.testing import Cast, make_key
from tenants.viewsets import TenantScopedViewSet


def test_every_tenant_owned_model_has_a_non_null_tenant() -> None:
    owned = [m for m in apps.get_models() if issubclass(m, TenantOwned)]
    assert {m.__name__ for m in owned} >= {"Membership", "ApiKey", "AuditEvent", "Invitation"}
    for model in owned:
        field = model._meta.get_field("tenant")
        assert field.null is False, model


def test_every_row_that_points_at_tenant_data_carries_a_tenant() -> None:
    """Including many-to-many tables: a row linking two tenant-owned rows is tenant-owned too."""
    unowned = []
    for model in apps.get_models(include_auto_created=True):
        if issubclass(model, TenantOwned) or model._meta.app_label in {
            "auth",
            "admin",
            "contenttypes",
            "sessions",
            "axes",
        }:
            continue
        if any(
            f.is_relation and f.related_model is not None and issubclass(f.related_model, TenantOwned)
            for f in model._meta.get_fields()
            if f.concrete
        ):
            unowned.append(model._meta.label)
    assert not unowned, f"rows that reach tenant data without a tenant column: {unowned}"


def test_it_refuses_a_viewset_that_overrides_scoping() -> None:
    with pytest.raises(TypeError, match="get_queryset"):

        class Leaky(TenantScopedViewSet):
            def get_queryset(self):
                return ApiKey.objects.all()

    with pytest.raises(TypeError, match="get_object"):

        class Leaky2(TenantScopedViewSet):
            def get_object(self):
                return None


def test_it_hashes_passwords_with_argon2() -> None:
    assert project_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


@pytest.mark.django_db
def test_get_for_tenant_answers_the_same_404_for_not_yours_and_missing(cast: Cast) -> None:
    charlie_membership = cast.membership(cast.charlie, cast.globex)
    with pytest.raises(Http404) as not_yours:
        get_membership_for_tenant(cast.acme, charlie_membership.pk)
    with pytest.raises(Http404) as missing:
        get_membership_for_tenant(cast.acme, "01a21479-c1c9-7696-89bf-000000000000")
    with pytest.raises(Http404) as malformed:
        get_membership_for_tenant(cast.acme, "not-a-uuid")
    assert str(not_yours.value) == str(missing.value) == str(malformed.value)
    assert get_for_tenant(Membership.objects.all(), cast.globex, pk=charlie_membership.pk) == charlie_membership


@pytest.mark.django_db
def test_for_tenant_scopes_rows(cast: Cast) -> None:
    assert set(Membership.objects.for_tenant(cast.globex).values_list("user__email", flat=True)) == {
        "charlie@globex.test"
    }
    with pytest.raises(ValueError, match="saved tenant"):
        Membership.objects.for_tenant(None)  # type: ignore[arg-type]


@pytest.mark.django_db
def test_membership_roles_are_ordered(cast: Cast) -> None:
    bob = cast.membership(cast.bob)
    assert bob.has_role(Role.VIEWER) and bob.has_role(Role.REVIEWER) and not bob.has_role(Role.ADMIN)


@pytest.mark.django_db
def test_api_keys_keep_only_a_hash_of_the_secret(cast: Cast) -> None:
    key, plaintext = make_key(cast.acme, "admin")
    stored = ApiKey.objects.get(pk=key.pk)
    secret = plaintext.split("_", 2)[2]
    assert secret not in {stored.secret_hash, stored.prefix, stored.name}
    assert stored.secret_hash == ApiKey.hash_secret(secret)
    assert plaintext.startswith(f"aoc_{stored.prefix}_")


@pytest.mark.django_db
def test_audit_events_cannot_be_changed_through_the_orm(cast: Cast) -> None:
    with transaction.atomic():
        event = audit_record(tenant=cast.acme, actor=Actor(user=cast.alice), action="test.thing")
    event.action = "changed"
    with pytest.raises(TypeError, match="append-only"):
        event.save()
    with pytest.raises(TypeError, match="append-only"):
        event.delete()
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(action="changed")
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.thing"


@pytest.mark.django_db
def test_audit_record_refuses_to_run_outside_the_services_transaction(cast: Cast) -> None:
    # The test's own transaction (pytest-django's) is not a service's.
    with pytest.raises(RuntimeError, match=r"audit_record\('test.thing'\) runs outside a transaction"):
        audit_record(tenant=cast.acme, actor=Actor(user=cast.alice), action="test.thing")
    assert not AuditEvent.objects.for_tenant(cast.acme).filter(action="test.thing").exists()
    with transaction.atomic():
        audit_record(tenant=cast.acme, actor=Actor(user=cast.alice), action="test.thing")
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="test.thing").count() == 1


@pytest.mark.django_db
def test_audit_events_cannot_be_changed_even_with_raw_sql(cast: Cast) -> None:
    with transaction.atomic():
        event = audit_record(tenant=cast.acme, actor=Actor(user=cast.alice), action="test.thing")
    for sql in (
        "UPDATE tenants_auditevent SET action = 'x' WHERE id = %s",
        "DELETE FROM tenants_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "test.thing"
