"""Reads of the tenancy kernel. Each returns a queryset scoped to one tenant, or one row of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import django_filters
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404
from django.utils import timezone

from tenants import rls
from tenants.filters import StrictFilterSet
from tenants.models import ApiKey, AuditEvent, Invitation, Membership, Tenant, TenantOwnedQuerySet, User


def get_for_tenant[M: Model](queryset: QuerySet[M], tenant: Tenant, **lookup: Any) -> M:
    """One row of `queryset` that belongs to `tenant`. "Not yours" and "does not exist" raise the
    same Http404, so ids of other tenants cannot be probed."""
    try:
        return queryset.filter(tenant=tenant).get(**lookup)
    # A malformed id (ValidationError, ValueError) is as absent as someone else's.
    except (ObjectDoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from exc


def membership_for_slug(*, user: Any, slug: str) -> Membership | None:
    """The signed-in user's membership of the tenant named `slug` (with its tenant and user), or None.
    Looked up before the tenant is known, so across tenants for row-level security (tenants.rls)."""
    if user is None or not user.is_authenticated:
        return None
    with rls.across_tenants("the signed-in user's membership of the tenant in the URL"):
        return Membership.objects.select_related("tenant", "user").filter(tenant__slug=slug, user=user).first()


class _OwnMembershipsQuerySet(TenantOwnedQuerySet[Membership]):
    """One user's memberships in every tenant: read across tenants (row-level security) whenever
    the queryset is evaluated, which may be late (a template's tenant switcher)."""

    def _fetch_all(self) -> None:
        with rls.across_tenants("the signed-in user's own memberships"):
            super()._fetch_all()

    def count(self) -> int:
        with rls.across_tenants("the signed-in user's own memberships"):
            return super().count()

    def exists(self) -> bool:
        with rls.across_tenants("the signed-in user's own memberships"):
            return super().exists()


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    """The user's memberships in every tenant (evaluated across tenants: they are the user's own)."""
    queryset = _OwnMembershipsQuerySet(Membership)
    return queryset.filter(user=user).select_related("tenant").order_by("tenant__name")


def invitation_by_token(token: str) -> Invitation | None:
    """The invitation a link's token names (with its tenant), or None: looked up before its tenant
    is known, so across tenants for row-level security."""
    with rls.across_tenants("an invitation found by its token"):
        return Invitation.objects.select_related("tenant").filter(token_hash=Invitation.hash_token(token)).first()


def members_of(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.for_tenant(tenant).select_related("user").order_by("user__email")


def get_membership_for_tenant(tenant: Tenant, pk: Any) -> Membership:
    return get_for_tenant(Membership.objects.for_tenant(tenant).select_related("user", "tenant"), tenant, pk=pk)


def invitations_open(*, tenant: Tenant) -> QuerySet[Invitation]:
    return Invitation.objects.for_tenant(tenant).filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


def get_invitation_for_tenant(tenant: Tenant, pk: Any) -> Invitation:
    return get_for_tenant(Invitation.objects.for_tenant(tenant).select_related("tenant"), tenant, pk=pk)


def api_keys_of(*, tenant: Tenant) -> QuerySet[ApiKey]:
    return ApiKey.objects.for_tenant(tenant).select_related("created_by").order_by("-created_at")


def get_api_key_for_tenant(tenant: Tenant, pk: Any) -> ApiKey:
    return get_for_tenant(ApiKey.objects.for_tenant(tenant).select_related("tenant"), tenant, pk=pk)


def audit_events(
    *,
    tenant: Tenant,
    actor: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The tenant's audit log, newest first, filtered by actor label (substring), action (exact or
    prefix such as `member.`) and time range."""
    qs = AuditEvent.objects.for_tenant(tenant).order_by("-created_at", "-id")
    return filter_audit_events(qs, actor=actor, action=action, since=since, until=until)


def filter_audit_events(
    qs: QuerySet[AuditEvent],
    *,
    actor: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    if actor:
        qs = qs.filter(actor_label__icontains=actor)
    if action:
        qs = qs.filter(action__startswith=action) if action.endswith(".") else qs.filter(action=action)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def audit_actions(*, tenant: Tenant) -> list[str]:
    return list(AuditEvent.objects.for_tenant(tenant).order_by("action").values_list("action", flat=True).distinct())


def tenant_stats(*, tenant: Tenant) -> dict[str, int]:
    """The dashboard's counters for the tenancy kernel (three cheap COUNT queries)."""
    return {
        "members": Membership.objects.for_tenant(tenant).count(),
        "invitations": invitations_open(tenant=tenant).count(),
        "api_keys": ApiKey.objects.for_tenant(tenant).filter(revoked_at__isnull=True).count(),
    }


class AuditEventFilterSet(StrictFilterSet):
    """The audit log's filters: `actor` (a substring of the email or key name), `action` (exact,
    or a prefix ending in `.`)."""

    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains", max_length=200)
    action = django_filters.CharFilter(method="_action", max_length=100)

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def _action(self, queryset: QuerySet[AuditEvent], name: str, value: str) -> QuerySet[AuditEvent]:
        return filter_audit_events(queryset, action=value)
