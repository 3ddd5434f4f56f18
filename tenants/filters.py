"""Filters of lists, declared once per list as a django-filter FilterSet and applied the same way by
the API and the console: an unknown name or a bad value is an error, never silently ignored.

- `StrictFilterSet`: the base of every list's FilterSet. Its form refuses names that are neither
  one of its filters nor a paging parameter (`passthrough`); the console renders that form, so a
  bad value shows next to its field and an unknown name above the fields.
- `StrictFilterBackend`: the DRF filter backend of TenantScopedViewSet. For a list action of a
  view with a `filterset_class`, it answers 400 naming the first bad or unknown filter
  (`{"error": {"type": "validation_error", "message": "since: …", "fields": {...}}}`);
  drf-spectacular lists the FilterSet's filters in the OpenAPI schema.
- `TenantRefField`: the base of a filter's field that takes one of the tenant's rows by id or name
  (agents.selectors.AgentFilter); an unknown one is a bad value (400), never an empty list.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any, ClassVar

import django_filters
import django_filters.fields
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from tenants.errors import ServiceError
from tenants.models import Tenant

# Query parameters every API list takes besides its filters: the cursor pagination and DRF's format.
API_PAGING = frozenset({"cursor", "page_size", "format"})


class FilterError(ServiceError):
    """A list's filters were refused: 400 naming every bad or unknown one (`fields`)."""

    type = "validation_error"

    def __init__(self, errors: dict[str, list[str]]) -> None:
        field, messages = next(iter(errors.items()))
        super().__init__(f"{field}: {messages[0]}", fields=errors)


class StrictFilterForm(forms.Form):
    """A FilterSet's form: besides its fields' own checks, each name it was given that is not a
    filter (nor in `passthrough`) is an error."""

    passthrough: frozenset[str] = frozenset()

    def unknown_names(self) -> list[str]:
        return sorted(set(self.data or ()) - set(self.fields) - self.passthrough)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        known = ", ".join(self.fields)
        for name in self.unknown_names():
            self.add_error(None, f"{name[:40]!r} is not a filter of this list (filters: {known}).")
        return cleaned


class StrictFilterSet(django_filters.FilterSet):
    """A list's filters. `tenant` (or the request's) resolves references such as agents;
    `passthrough` names the parameters that are not filters but may come along (paging)."""

    tenant_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        data: Any = None,
        queryset: QuerySet[Any] | None = None,
        *,
        request: Any = None,
        prefix: str | None = None,
        tenant: Tenant | None = None,
        passthrough: Iterable[str] = (),
    ) -> None:
        super().__init__(data, queryset, request=request, prefix=prefix)
        self.tenant = tenant if tenant is not None else getattr(request, "tenant", None)
        self.passthrough = frozenset(passthrough)

    def get_form_class(self) -> type[forms.Form]:
        base = super().get_form_class()
        return type(base.__name__, (StrictFilterForm, base), {"passthrough": self.passthrough})

    @property
    def form(self) -> forms.Form:
        if not hasattr(self, "_form"):
            form = super().form
            for field in form.fields.values():
                if isinstance(field, TenantRefField):
                    field.bind(self.tenant)
        return self._form

    def error_dict(self) -> dict[str, list[str]]:
        """The form's errors by filter name; an unknown name's error is under that name."""
        form = self.form
        errors: dict[str, list[str]] = {}
        for name in form.unknown_names():  # type: ignore[attr-defined]
            errors[name] = ["is not a filter of this list; filters: " + ", ".join(form.fields) + "."]
        for name, messages in form.errors.items():
            if name != NON_FIELD_ERRORS:
                errors[name] = [str(m) for m in messages]
        return errors

    def filtered(self) -> QuerySet[Any]:
        """The filtered rows, or FilterError when a filter is bad or unknown."""
        if not self.is_valid():
            raise FilterError(self.error_dict())
        return self.qs


class StrictFilterBackend(DjangoFilterBackend):
    """Applies the view's `filterset_class` to its list action (other actions are not filtered):
    a bad value or an unknown name is a 400 naming it. A view may name more non-filter
    parameters in `list_params` (besides cursor, page_size and format)."""

    def get_filterset_kwargs(self, request: Any, queryset: QuerySet[Any], view: Any) -> dict[str, Any]:
        kwargs = super().get_filterset_kwargs(request, queryset, view)
        kwargs["passthrough"] = API_PAGING | frozenset(getattr(view, "list_params", ()))
        return kwargs

    def filter_queryset(self, request: Any, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        if getattr(view, "action", None) != "list":
            return queryset
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            # A list with no filters takes none: any other name than paging is refused too.
            allowed = API_PAGING | frozenset(getattr(view, "list_params", ()))
            if unknown := sorted(set(request.query_params) - allowed):
                raise FilterError({name[:40]: ["is not a filter: this list has none."] for name in unknown})
            return queryset
        return filterset.filtered()


class TenantRefField(forms.CharField):
    """A reference (id or name) to one of the tenant's rows, resolved when the form is cleaned."""

    tenant: Tenant | None = None

    def bind(self, tenant: Tenant | None) -> None:
        self.tenant = tenant

    def resolve(self, ref: str) -> Any:
        raise NotImplementedError

    def clean(self, value: Any) -> Any:
        ref = super().clean(value)
        if not ref:
            return None
        if self.tenant is None:
            raise forms.ValidationError("cannot be resolved without a tenant.")
        found = self.resolve(ref)
        if found is None:
            raise forms.ValidationError(self.not_found.format(ref=ref[:200]))
        return found

    not_found = "no row has the id or name {ref!r}."


REHEARSAL_CHOICES = [("include", "shown too"), ("only", "only rehearsals")]


class RehearsalFilter(django_filters.ChoiceFilter):
    """Rehearsal and eval traffic (`rehearsal(tenant)`, a Q, narrows to it) is left out unless asked
    for: `include` shows it too, `only` shows nothing else. Production views stay production."""

    def __init__(self, *, rehearsal: Any, **kwargs: Any) -> None:
        kwargs.setdefault("choices", REHEARSAL_CHOICES)
        kwargs.setdefault("empty_label", "hidden")
        kwargs.setdefault("label", "Rehearsals (evals)")
        super().__init__(**kwargs)
        self.rehearsal = rehearsal

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value == "include":
            return qs
        rehearsals = self.rehearsal(getattr(self.parent, "tenant", None))
        if value == "only":
            return qs.filter(rehearsals)
        return qs.exclude(rehearsals)


class _UtcIsoTimeField(django_filters.fields.IsoDateTimeField):
    """The time in UTC: PostgreSQL refuses an offset past 15:59 (`+19:30`, which Python parses) with
    a DataError, a 500; a time that UTC cannot hold is invalid like any other bad value."""

    def to_python(self, value: Any) -> Any:
        parsed = super().to_python(value)
        try:
            return parsed.astimezone(UTC) if parsed is not None and parsed.tzinfo is not None else parsed
        except OverflowError:
            raise forms.ValidationError("is out of the range of times (in UTC).", code="invalid") from None


@extend_schema_field(OpenApiTypes.DATETIME)
class IsoTimeFilter(django_filters.IsoDateTimeFilter):
    """A time in ISO 8601; anything else ("yesterday") is refused, naming the format."""

    field_class = _UtcIsoTimeField

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", {"invalid": "is not an ISO 8601 time (e.g. 2026-12-04T13:00:00Z)."})
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.BOOL)
class YesNoFilter(django_filters.TypedChoiceFilter):
    """true or false (1 or 0, yes or no); anything else is refused (django-filter's BooleanFilter reads an
    unknown value as "no filter")."""

    def __init__(self, **kwargs: Any) -> None:
        yes, no = ("true", "1", "yes"), ("false", "0", "no")
        kwargs.setdefault("choices", [("", "any"), *[(v, "yes") for v in yes], *[(v, "no") for v in no]])
        kwargs.setdefault("coerce", lambda value: value in yes)
        kwargs.setdefault("empty_value", None)
        super().__init__(**kwargs)
