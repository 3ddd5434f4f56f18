"""Writes to model control: providers, exact models, and pins changed only through reviewed change
requests. Each service owns its transaction, its audit row and its after-commit live push.

Refusals are `FieldError` (400, naming the field as `fields={name: [message]}`, the same
shape DRF validation errors have), `ConflictError` (409) or `NotAllowedError` (403).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.text import slugify

from catalog import events
from catalog.clients.transport import check_provider_url
from catalog.models import MICROS_PER_USD, LanguageModel, ModelPin, PinChange, Provider
from catalog.validation import validate_exact_model
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError, ServiceError
from tenants.models import Membership, Role, Scope, Tenant
from tenants.net import UnsafeUrlError
from tenants.services import audit_record


class NotAllowedError(ServiceError):
    type = "permission_denied"
    status_code = 403


# --- The evaluation gate hook ------------------------------------------------------------------

# A gate decides whether an approved pin change may be applied. It is called with the locked,
# still-pending change inside the decision's transaction, before the pin moves, and returns None to
# let it through or a sentence saying why not. Any refusal makes `pin_change_decide` raise
# `PinChangeGateError` (409): the change stays pending and nothing is written, so it can be
# approved again once the gate is satisfied. Issue 8 (evals) appends its gate here, e.g.
# `PIN_CHANGE_GATES.append(evals.gates.candidate_passed_suites)`. Rejections are never gated.
type PinChangeGate = Callable[[PinChange], str | None]
PIN_CHANGE_GATES: list[PinChangeGate] = []


# Called with each new change request inside its transaction (issue 8 starts the agents' eval
# suites on the candidate model here, so the gate has results to judge).
PIN_CHANGE_REQUEST_HOOKS: list[Callable[[PinChange], None]] = []


class PinChangeGateError(ConflictError):
    type = "pin_change_gate_refused"


# --- Money -------------------------------------------------------------------------------------


def usd_to_micros(value: str | int | float | Decimal | None, *, field: str) -> int | None:
    """A price in USD per million tokens ("2.50") as exact integer micro-USD (2_500_000); None or
    "" stays None (unpriced). More than six decimal places or a negative price is refused."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise FieldError(field, "Give a price in USD per million tokens, e.g. 2.50.")
    try:
        # str() first: Decimal(0.1) would carry the float's binary error into the price.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise FieldError(field, f"{value!r} is not a price; give USD per million tokens, e.g. 2.50.") from None
    if not amount.is_finite():
        raise FieldError(field, "Give a finite price.")
    if amount < 0:
        raise FieldError(field, "A price cannot be negative.")
    micros = amount * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise FieldError(field, "Prices have at most six decimal places (one micro-USD).")
    if micros > 10**15:
        raise FieldError(field, "This price is implausibly large.")
    return int(micros)


def micros_to_usd(micros: int | None) -> str | None:
    """Integer micro-USD as a USD string with at least two decimals: 2_500_000 -> "2.50"."""
    if micros is None:
        return None
    amount = (Decimal(micros) / MICROS_PER_USD).normalize()
    text = f"{amount:f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


# --- Providers ---------------------------------------------------------------------------------


def _provider_state(provider: Provider) -> dict[str, Any]:
    # The key itself never enters the audit log: only whether one is set.
    return {
        "name": provider.name,
        "kind": provider.kind,
        "base_url": provider.base_url,
        "api_key": "set" if provider.has_api_key else "not set",
        "timeout_seconds": provider.timeout_seconds,
        "max_retries": provider.max_retries,
        "enabled": provider.enabled,
    }


def _clean_provider_fields(
    *, name: str, kind: str, base_url: str, timeout_seconds: float, max_retries: int
) -> tuple[str, str]:
    name = name.strip()
    if not name:
        raise FieldError("name", "A provider needs a name.")
    if len(name) > 100:
        raise FieldError("name", "At most 100 characters.")
    if kind not in Provider.Kind.values:
        raise FieldError("kind", f"Unknown kind {kind!r}; choose one of {', '.join(Provider.Kind.values)}.")
    base_url = base_url.strip()
    if base_url:
        try:
            URLValidator(schemes=["http", "https"])(base_url)
        except ValidationError:
            raise FieldError("base_url", "Give an http(s) URL, or leave it empty for the default.") from None
        if len(base_url) > 200:
            raise FieldError("base_url", "At most 200 characters.")
        try:
            check_provider_url(base_url)
        except UnsafeUrlError as exc:
            raise FieldError("base_url", str(exc)) from None
    if not 0 < timeout_seconds <= 600:
        raise FieldError("timeout_seconds", "Give a timeout between 0 and 600 seconds.")
    if not 0 <= max_retries <= 10:
        raise FieldError("max_retries", "Give between 0 and 10 retries.")
    return name, base_url


def _save_provider(provider: Provider, fields: list[str] | None = None) -> None:
    try:
        with transaction.atomic():
            provider.save(update_fields=fields)
    except IntegrityError:
        raise ConflictError(f"A provider named {provider.name!r} already exists.", fields={"name": ["taken"]}) from None


@transaction.atomic
def provider_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    kind: str,
    base_url: str = "",
    api_key: str = "",
    timeout_seconds: float = 60.0,
    max_retries: int = 2,
    enabled: bool = True,
) -> Provider:
    """Add a provider; `api_key` is stored encrypted and never shown again."""
    name, base_url = _clean_provider_fields(
        name=name, kind=kind, base_url=base_url, timeout_seconds=timeout_seconds, max_retries=max_retries
    )
    provider = Provider(
        tenant=tenant,
        name=name,
        kind=kind,
        base_url=base_url,
        timeout_seconds=timeout_seconds,
        max_retries=max_retries,
        enabled=enabled,
    )
    provider.set_api_key(api_key.strip())
    _save_provider(provider)
    audit_record(tenant=tenant, actor=actor, action="provider.create", target=provider, after=_provider_state(provider))
    events.send_catalog_changed(tenant)
    return provider


@transaction.atomic
def provider_update(
    *,
    actor: Actor,
    provider: Provider,
    name: str | None = None,
    kind: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    clear_api_key: bool = False,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    enabled: bool | None = None,
) -> Provider:
    """Change the given fields (None leaves one as it is). `api_key` replaces the stored key,
    `clear_api_key` removes it. Changing `kind` or `base_url` is refused while the provider has
    models: it would change which vendor serves (and how we validate) models already pinned."""
    provider = Provider.objects.for_tenant(provider.tenant).select_for_update().get(pk=provider.pk)
    before = _provider_state(provider)
    new_kind = provider.kind if kind is None else kind
    new_base_url = provider.base_url if base_url is None else base_url
    name_, base_url_ = _clean_provider_fields(
        name=provider.name if name is None else name,
        kind=new_kind,
        base_url=new_base_url,
        timeout_seconds=provider.timeout_seconds if timeout_seconds is None else timeout_seconds,
        max_retries=provider.max_retries if max_retries is None else max_retries,
    )
    if (new_kind != provider.kind or base_url_ != provider.base_url) and provider.language_models.exists():
        field = "kind" if new_kind != provider.kind else "base_url"
        raise FieldError(field, "This provider has models; create another provider to serve them from elsewhere.")
    provider.name, provider.kind, provider.base_url = name_, new_kind, base_url_
    if timeout_seconds is not None:
        provider.timeout_seconds = timeout_seconds
    if max_retries is not None:
        provider.max_retries = max_retries
    if enabled is not None:
        provider.enabled = enabled
    key_changed = False
    if clear_api_key:
        provider.set_api_key("")
        key_changed = before["api_key"] == "set"
    elif api_key is not None and api_key.strip():
        provider.set_api_key(api_key.strip())
        key_changed = True
    after = _provider_state(provider)
    if before == after and not key_changed:
        return provider
    _save_provider(provider)
    if key_changed:
        # "set" -> "set" would look like no change; say that the key was replaced.
        after["api_key"] = "replaced" if after["api_key"] == "set" and before["api_key"] == "set" else after["api_key"]
    audit_record(
        tenant=provider.tenant, actor=actor, action="provider.update", target=provider, before=before, after=after
    )
    events.send_catalog_changed(provider.tenant)
    return provider


@transaction.atomic
def provider_delete(*, actor: Actor, provider: Provider) -> None:
    """Delete a provider that no model references (409 otherwise)."""
    provider = Provider.objects.for_tenant(provider.tenant).select_for_update().get(pk=provider.pk)
    count = provider.language_models.count()
    if count:
        raise ConflictError(f"{provider.name} has {count} model{'s' if count != 1 else ''}; delete or move them first.")
    before = _provider_state(provider)
    audit_record(tenant=provider.tenant, actor=actor, action="provider.delete", target=provider, before=before)
    provider.delete()
    events.send_catalog_changed(provider.tenant)


# --- Models ------------------------------------------------------------------------------------

_MODEL_STATE_FIELDS = (
    "model_id",
    "revision",
    "display_name",
    "input_price",
    "cached_input_price",
    "output_price",
    "context_window",
    "max_output_tokens",
)


def _model_state(model: LanguageModel) -> dict[str, Any]:
    state: dict[str, Any] = {f: getattr(model, f) for f in _MODEL_STATE_FIELDS}
    state["provider"] = model.provider.name
    state["deprecation_date"] = model.deprecation_date.isoformat() if model.deprecation_date else None
    return state


def _check_limits(*, context_window: int, max_output_tokens: int) -> None:
    if context_window <= 0:
        raise FieldError("context_window", "Give the context window in tokens (a positive number).")
    if context_window > 2**31 - 1:
        raise FieldError("context_window", "This context window is implausibly large.")
    if max_output_tokens <= 0:
        raise FieldError("max_output_tokens", "Give the maximum output in tokens (a positive number).")
    if max_output_tokens > context_window:
        raise FieldError(
            "max_output_tokens",
            f"The maximum output ({max_output_tokens}) exceeds the context window ({context_window}).",
        )


def _check_prices(*, input_price: int | None, cached_input_price: int | None, output_price: int | None) -> None:
    for field, value in (
        ("input_price", input_price),
        ("cached_input_price", cached_input_price),
        ("output_price", output_price),
    ):
        if value is not None and value < 0:
            raise FieldError(field, "A price cannot be negative.")
    if (input_price is None) != (output_price is None):
        missing = "input_price" if input_price is None else "output_price"
        raise FieldError(missing, "Give both input and output prices, or neither (an unpriced model).")
    if cached_input_price is not None and input_price is None:
        raise FieldError("cached_input_price", "A cached-input price needs an input price.")


@transaction.atomic
def model_create(
    *,
    actor: Actor,
    tenant: Tenant,
    provider: Provider,
    model_id: str,
    revision: str = "",
    display_name: str = "",
    input_price: int | None = None,
    cached_input_price: int | None = None,
    output_price: int | None = None,
    context_window: int,
    max_output_tokens: int,
    deprecation_date: date | None = None,
) -> LanguageModel:
    """Add one exact model version of `provider`. Prices are integer micro-USD per million tokens
    (None: unpriced, which cannot be pinned). Floating names are refused (see catalog.validation)."""
    if provider.tenant_id != tenant.pk:
        raise FieldError("provider", "No such provider in this tenant.")
    model_id, revision = model_id.strip(), revision.strip()
    try:
        validate_exact_model(hosted_vendor=provider.hosted_vendor, model_id=model_id, revision=revision)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise FieldError(field, messages[0]) from None
    if len(model_id) > 200:
        raise FieldError("model_id", "At most 200 characters.")
    if len(revision) > 200:
        raise FieldError("revision", "At most 200 characters.")
    _check_prices(input_price=input_price, cached_input_price=cached_input_price, output_price=output_price)
    _check_limits(context_window=context_window, max_output_tokens=max_output_tokens)
    model = LanguageModel(
        tenant=tenant,
        provider=provider,
        model_id=model_id,
        revision=revision,
        display_name=display_name.strip()[:200],
        input_price=input_price,
        cached_input_price=cached_input_price,
        output_price=output_price,
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        deprecation_date=deprecation_date,
    )
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError:
        raise ConflictError(
            f"{provider.name} already has {model}.", fields={"model_id": ["This exact version exists."]}
        ) from None
    audit_record(tenant=tenant, actor=actor, action="model.create", target=model, after=_model_state(model))
    events.send_catalog_changed(tenant)
    return model


_UNCHANGED: Any = object()


@transaction.atomic
def model_update(
    *,
    actor: Actor,
    model: LanguageModel,
    display_name: str | None = None,
    input_price: int | None = _UNCHANGED,
    cached_input_price: int | None = _UNCHANGED,
    output_price: int | None = _UNCHANGED,
    context_window: int | None = None,
    max_output_tokens: int | None = None,
    deprecation_date: date | None = _UNCHANGED,
) -> LanguageModel:
    """Change a model's prices, limits, name or deprecation date. Prices and the deprecation date
    may be set to None (omit an argument to leave it unchanged). The provider, `model_id` and
    `revision` are the model's identity and never change: a pin names an exact version, and editing
    it in place would move every pin without review; add another model instead. A pinned model
    cannot lose its prices."""
    model = (
        LanguageModel.objects.for_tenant(model.tenant).select_for_update().select_related("provider").get(pk=model.pk)
    )
    before = _model_state(model)
    if display_name is not None:
        model.display_name = display_name.strip()[:200]
    if input_price is not _UNCHANGED:
        model.input_price = input_price
    if cached_input_price is not _UNCHANGED:
        model.cached_input_price = cached_input_price
    if output_price is not _UNCHANGED:
        model.output_price = output_price
    if context_window is not None:
        model.context_window = context_window
    if max_output_tokens is not None:
        model.max_output_tokens = max_output_tokens
    if deprecation_date is not _UNCHANGED:
        model.deprecation_date = deprecation_date
    _check_prices(
        input_price=model.input_price, cached_input_price=model.cached_input_price, output_price=model.output_price
    )
    _check_limits(context_window=model.context_window, max_output_tokens=model.max_output_tokens)
    if not model.is_priced:
        alias = ModelPin.objects.for_tenant(model.tenant).filter(model=model).values_list("alias", flat=True).first()
        if alias is not None:
            raise FieldError(
                "input_price", f"This model is pinned as {alias!r}; a model without prices cannot be used."
            )
    after = _model_state(model)
    if after == before:
        return model
    model.save()
    audit_record(tenant=model.tenant, actor=actor, action="model.update", target=model, before=before, after=after)
    events.send_catalog_changed(model.tenant)
    return model


@transaction.atomic
def model_delete(*, actor: Actor, model: LanguageModel) -> None:
    """Delete a model no pin or pin change names (409 otherwise: history must stay readable)."""
    model = (
        LanguageModel.objects.for_tenant(model.tenant).select_for_update().select_related("provider").get(pk=model.pk)
    )
    before = _model_state(model)
    try:
        with transaction.atomic():
            model.delete()
    except ProtectedError:
        raise ConflictError(f"{model} is pinned or named in a pin change's history; it cannot be deleted.") from None
    audit_record(
        tenant=model.tenant,
        actor=actor,
        action="model.delete",
        target_type="languagemodel",
        target_label=str(model),
        before=before,
    )
    events.send_catalog_changed(model.tenant)


# --- Pins and their change requests ------------------------------------------------------------


def _is_admin(actor: Actor, tenant: Tenant) -> bool:
    if actor.user is not None:
        return Membership.objects.for_tenant(tenant).filter(user=actor.user, role=Role.ADMIN).exists()
    if actor.api_key is not None:
        return actor.api_key.tenant_id == tenant.pk and actor.api_key.has_scope(Scope.ADMIN)
    return False


def _clean_alias(alias: str) -> str:
    alias = alias.strip()
    if not alias:
        raise FieldError("alias", "Name the alias to pin, e.g. default or classifier.")
    if slugify(alias) != alias or len(alias) > 64:
        raise FieldError("alias", "An alias is up to 64 lowercase letters, digits, hyphens or underscores.")
    return alias


def _check_usable(model: LanguageModel, *, field: str = "model") -> None:
    if not model.is_priced:
        raise FieldError(field, f"{model} has no prices; a model without prices cannot be used.")
    if not model.provider.enabled:
        raise FieldError(field, f"{model.provider.name}, which serves {model}, is disabled.")


def _change_state(change: PinChange) -> dict[str, Any]:
    return {
        "alias": change.alias,
        "from_model": str(change.from_model) if change.from_model_id else None,
        "to_model": str(change.to_model),
        "status": change.status,
        "reason": change.reason,
        "note": change.decision_note,
    }


@transaction.atomic
def pin_change_request(*, actor: Actor, tenant: Tenant, alias: str, to_model: LanguageModel, reason: str) -> PinChange:
    """Ask to point `alias` at `to_model` (the first pin of an alias is requested the same way).
    Only tenant admins (or admin-scoped keys) may request; one open request per alias (409)."""
    if not _is_admin(actor, tenant):
        raise NotAllowedError("Only tenant admins can request a pin change.")
    alias = _clean_alias(alias)
    reason = reason.strip()
    if not reason:
        raise FieldError("reason", "Say why the pin should change.")
    if to_model.tenant_id != tenant.pk:
        raise FieldError("model", "No such model in this tenant.")
    _check_usable(to_model)
    pin = ModelPin.objects.for_tenant(tenant).filter(alias=alias).select_related("model").first()
    if pin is not None and pin.model_id == to_model.pk:
        raise FieldError("model", f"{alias!r} is already pinned to {to_model}.")
    open_change = PinChange.objects.for_tenant(tenant).filter(alias=alias, status=PinChange.Status.PENDING).first()
    if open_change is not None:
        raise ConflictError(
            f"{alias!r} already has an open change request by {open_change.requested_by_label}; "
            "decide or cancel it first.",
            change=str(open_change.pk),
        )
    change = PinChange(
        tenant=tenant,
        alias=alias,
        from_model=pin.model if pin else None,
        to_model=to_model,
        reason=reason,
        requested_by=actor.user,
        requested_by_label=actor.label[:200],
    )
    try:
        with transaction.atomic():
            change.save()
    except IntegrityError:
        # A concurrent request for the same alias won the race to the partial unique index.
        raise ConflictError(f"{alias!r} already has an open change request; decide or cancel it first.") from None
    audit_record(tenant=tenant, actor=actor, action="pin_change.request", target=change, after=_change_state(change))
    for hook in PIN_CHANGE_REQUEST_HOOKS:
        hook(change)
    events.send_pins_changed(tenant)
    return change


def _lock_open(change: PinChange, verb: str) -> PinChange:
    locked = (
        PinChange.objects.for_tenant(change.tenant)
        .select_for_update(of=("self",))
        .select_related("to_model__provider", "from_model__provider")
        .get(pk=change.pk)
    )
    if not locked.is_open:
        who = locked.decided_by_label or "someone"
        when = timezone.localtime(locked.decided_at).strftime("%Y-%m-%d %H:%M") if locked.decided_at else ""
        raise ConflictError(
            f"This change request cannot be {verb}: it was already {locked.get_status_display().lower()} by {who}"
            f"{' at ' + when if when else ''}.",
            status=locked.status,
            decided_by=who,
        )
    return locked


@transaction.atomic
def pin_change_decide(*, actor: Actor, change: PinChange, approve: bool, note: str = "") -> PinChange:
    """Approve (apply) or reject an open pin change, exactly once: the row is locked, and a second
    decision gets 409 naming who decided. Approval runs every `PIN_CHANGE_GATES` gate, re-checks
    that the model is still usable, then creates or moves the pin in the same transaction."""
    tenant = change.tenant
    if not _is_admin(actor, tenant):
        raise NotAllowedError("Only tenant admins can decide pin changes.")
    change = _lock_open(change, "decided")
    before = _change_state(change)
    now = timezone.now()
    if approve:
        for gate in PIN_CHANGE_GATES:
            refusal = gate(change)
            if refusal:
                raise PinChangeGateError(
                    f"This change cannot be applied yet: {refusal}", gate=getattr(gate, "__name__", "gate")
                )
        _check_usable(change.to_model)
        pin = ModelPin.objects.for_tenant(tenant).select_for_update().filter(alias=change.alias).first()
        pin_before = {"model": str(pin.model)} if pin else None
        if pin is None:
            pin = ModelPin.objects.create(tenant=tenant, alias=change.alias, model=change.to_model, updated_at=now)
        else:
            # Record what the pin actually pointed at when the change applied (a system seed could
            # have moved it since the request).
            change.from_model = pin.model
            pin.model, pin.updated_at = change.to_model, now
            pin.save(update_fields=["model", "updated_at"])
        change.status = PinChange.Status.APPLIED
        audit_record(
            tenant=tenant,
            actor=actor,
            action="pin.set",
            target=pin,
            before=pin_before,
            after={"model": str(change.to_model), "change": str(change.pk)},
        )
    else:
        change.status = PinChange.Status.REJECTED
    change.decided_by = actor.user
    change.decided_by_label = actor.label[:200]
    change.decision_note = note.strip()
    change.decided_at = now
    change.save(update_fields=["from_model", "status", "decided_by", "decided_by_label", "decision_note", "decided_at"])
    audit_record(
        tenant=tenant,
        actor=actor,
        action="pin_change.approve" if approve else "pin_change.reject",
        target=change,
        before=before,
        after=_change_state(change),
    )
    events.send_pins_changed(tenant)
    return change


@transaction.atomic
def pin_change_cancel(*, actor: Actor, change: PinChange) -> PinChange:
    """Withdraw an open request: its requester or a tenant admin may."""
    tenant = change.tenant
    is_requester = actor.user is not None and change.requested_by_id == actor.user.pk
    if not (is_requester or _is_admin(actor, tenant)):
        raise NotAllowedError("Only the requester or a tenant admin can cancel a pin change.")
    change = _lock_open(change, "cancelled")
    before = _change_state(change)
    change.status = PinChange.Status.CANCELLED
    change.decided_by = actor.user
    change.decided_by_label = actor.label[:200]
    change.decided_at = timezone.now()
    change.save(update_fields=["status", "decided_by", "decided_by_label", "decided_at"])
    audit_record(
        tenant=tenant,
        actor=actor,
        action="pin_change.cancel",
        target=change,
        before=before,
        after=_change_state(change),
    )
    events.send_pins_changed(tenant)
    return change


@transaction.atomic
def pin_set_by_system(*, actor: Actor, tenant: Tenant, alias: str, model: LanguageModel, reason: str) -> ModelPin:
    """Pin `alias` without review, for the system itself only (the demo seed, migrations of data).
    It still leaves an applied PinChange, so the pin's history is complete, and an audit row."""
    if actor.user is not None or actor.api_key is not None or not actor.system:
        raise NotAllowedError("Only the system may pin without a reviewed change request.")
    alias = _clean_alias(alias)
    if model.tenant_id != tenant.pk:
        raise FieldError("model", "No such model in this tenant.")
    _check_usable(model)
    now = timezone.now()
    pin = ModelPin.objects.for_tenant(tenant).select_for_update().filter(alias=alias).select_related("model").first()
    before = {"model": str(pin.model)} if pin else None
    if pin is not None and pin.model_id == model.pk:
        return pin
    change = PinChange.objects.create(
        tenant=tenant,
        alias=alias,
        from_model=pin.model if pin else None,
        to_model=model,
        reason=reason,
        status=PinChange.Status.APPLIED,
        requested_by_label=actor.label[:200],
        decided_by_label=actor.label[:200],
        decided_at=now,
        created_at=now,
    )
    if pin is None:
        pin = ModelPin.objects.create(tenant=tenant, alias=alias, model=model, updated_at=now)
    else:
        pin.model, pin.updated_at = model, now
        pin.save(update_fields=["model", "updated_at"])
    audit_record(
        tenant=tenant,
        actor=actor,
        action="pin.set",
        target=pin,
        before=before,
        after={"model": str(model), "change": str(change.pk), "reason": reason},
    )
    events.send_pins_changed(tenant)
    return pin
