"""How a console form or button meets a service, written once for every page.

A view binds its form and hands it to `submit(form, call)`: the form checks types (a 400 with its
errors), `call(data)` runs the service with the cleaned data, and a refusal the service raises (a
`ServiceError`) is shown on the form by `refuse`: beside the field it names (a `FieldError`'s
`field`, or a message written "<field>: <why>"), else above the form, with the refusal's own
status (400; 409 for a conflict such as a duplicate name; 403 for a suspended tenant). A formset
goes through `submit` too: a refusal is shown above its forms. A button without a form (archive,
delete, revoke) goes through `act(request, call)`: a refusal becomes an error flash with its
status (a `FieldError`'s `detail`: there is no field to put it beside). `done(request, message,
to, fragment)` answers a success the same way for a full page and for htmx: the flash, then a
redirect to `to`, or, for an htmx request when the view gives a `fragment`, that fragment
re-rendered in place (the flash shown with it).

    form = BudgetForm(request.POST, tenant=request.tenant)
    submitted = submit(form, lambda data: services.budget_create(actor=..., tenant=..., **data))
    if submitted.ok:
        return done(request, f"Budget {submitted.value.name} was created.", to=reverse(...))
    return render_page(request, "budgets/edit.html", {"form": form}, status=submitted.status)

Views bind, call and render; what a page shows is read by selectors; what may change is decided
by services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.forms import BaseFormSet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from tenants.errors import ServiceError

if TYPE_CHECKING:
    Bound = forms.Form | BaseFormSet[Any]
else:  # BaseFormSet is generic only in the type stubs
    Bound = forms.Form | BaseFormSet


@dataclass
class Submitted[T]:
    """What `submit` made of a form: `ok` with the service's `value`, or the status to render the
    form again with (its errors are on the form)."""

    ok: bool
    status: int
    value: T | None = None


def refuse(form: Bound, exc: ServiceError) -> int:
    """Show a service's refusal on `form`: beside the field it names, else above the form (above a
    formset's forms); returns the HTTP status to answer with (the refusal's own: 400, 409, 403 …)."""
    if isinstance(form, BaseFormSet):
        form.non_form_errors().append(getattr(exc, "detail", exc.message))
        return exc.status_code
    field = getattr(exc, "field", None)
    if isinstance(field, str) and field in form.fields:
        form.add_error(field, getattr(exc, "detail", exc.message))
    else:
        # Some refusals name their field only in the message: "<field>: <why>".
        named, _, why = exc.message.partition(": ")
        if why and named in form.fields:
            form.add_error(named, why)
        else:
            form.add_error(None, exc.message)
    return exc.status_code


def submit[T](form: Bound, call: Callable[[Any], T]) -> Submitted[T]:
    """Validate `form`; when valid, run `call(form.cleaned_data)` (a formset's: a list), mapping a
    ServiceError onto the form."""
    if not form.is_valid():
        return Submitted(ok=False, status=400)
    try:
        value = call(form.cleaned_data)
    except ServiceError as exc:
        return Submitted(ok=False, status=refuse(form, exc))
    return Submitted(ok=True, status=200, value=value)


def act[T](request: HttpRequest, call: Callable[[], T], *, success: str | Callable[[T], str] = "") -> Submitted[T]:
    """Run a button's service call: on success flash `success` (or `success(value)`; nothing when
    empty: the view says it); a refusal is flashed as an error, with its status."""
    try:
        value = call()
    except ServiceError as exc:
        messages.error(request, getattr(exc, "detail", exc.message))
        return Submitted(ok=False, status=exc.status_code)
    if message := success(value) if callable(success) else success:
        messages.success(request, message)
    return Submitted(ok=True, status=200, value=value)


def done(
    request: HttpRequest, message: str = "", *, to: str, fragment: Callable[[], HttpResponse] | None = None
) -> HttpResponse:
    """A success: the flash `message` (when given), then the page at `to`; for an htmx request
    (not a boosted navigation) with a `fragment`, that fragment re-rendered in place instead."""
    if message:
        messages.success(request, message)
    htmx = getattr(request, "htmx", None)
    if fragment is not None and htmx and not htmx.boosted:
        return fragment()
    return redirect(to)
