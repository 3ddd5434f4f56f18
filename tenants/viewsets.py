"""The one DRF base viewset that owns tenant scoping. Subclasses name a queryset and a scope per
action; they cannot replace how rows are scoped."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from django.db.models import Model, QuerySet
from rest_framework import viewsets

from tenants.filters import StrictFilterBackend
from tenants.models import Tenant
from tenants.selectors import get_for_tenant

_SEALED = ("get_queryset", "get_object")

# The reason a subclass's `queryset` is built across tenants: get_queryset() scopes it to the
# request's tenant on every use (`queryset = Agent.objects.across_tenants(SCOPED_PER_REQUEST)`).
SCOPED_PER_REQUEST = "a TenantScopedViewSet's queryset, scoped to the request's tenant on every use"


class TenantScopedViewSet[M: Model](viewsets.GenericViewSet[M]):
    """Every row read or written through a subclass belongs to the API key's tenant.

    - `queryset` is filtered to `request.tenant` (the key's tenant) before anything else; it is
      declared `Model.objects.across_tenants(SCOPED_PER_REQUEST)`, since no tenant is known yet.
    - `get_object` answers the same 404 for another tenant's row and for no row at all.
    - The serializer context carries `tenant`; serializers take the tenant from there, never the body.
    - `required_scopes` maps actions to the key scope they need (`"*"` for the rest; default admin).
    - Overriding `get_queryset` or `get_object` raises TypeError when the subclass is defined;
      narrow rows with `scope_queryset` (called on the already-scoped queryset) instead.
    - A list's filters are a `filterset_class` (tenants.filters.StrictFilterSet): an unknown name or
      a bad value is a 400 naming it, and the OpenAPI schema lists them.
    """

    required_scopes: ClassVar[dict[str, str | None]] = {}
    filter_backends = [StrictFilterBackend]
    lookup_value_regex = "[^/]+"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _SEALED:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}(); TenantScopedViewSet owns tenant scoping. "
                    "Override scope_queryset() to narrow the already-scoped rows."
                )

    @property
    def tenant(self) -> Tenant:
        return cast(Tenant, self.request.tenant)  # type: ignore[attr-defined]

    def scope_queryset(self, queryset: QuerySet[M]) -> QuerySet[M]:
        return queryset

    def get_queryset(self) -> QuerySet[M]:
        queryset = cast("QuerySet[M] | None", type(self).queryset)
        assert queryset is not None, f"{type(self).__name__} must set `queryset`"
        return self.scope_queryset(queryset.all().filter(tenant=self.tenant))

    def get_object(self) -> M:
        lookup_url_kwarg = self.lookup_url_kwarg or self.lookup_field
        obj = get_for_tenant(
            self.filter_queryset(self.get_queryset()), self.tenant, **{self.lookup_field: self.kwargs[lookup_url_kwarg]}
        )
        self.check_object_permissions(self.request, obj)
        return obj

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        context["tenant"] = getattr(self.request, "tenant", None)
        return context
