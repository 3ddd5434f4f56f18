"""Writes to budgets: configuration (audited) and the reservation protocol on the ledger.

The protocol keeps two invariants (docs/DESIGN.md 2 and 3):

- No overspend: a reservation is admitted only if every applicable `block` budget has room for its
  worst-case cost (settled + reserved + amount <= limit), checked and written in one transaction
  that holds row locks on every counter involved, taken in one fixed order (by counter id) so two
  reservations can never deadlock.
- Ledger truth: every change to a counter is written with a ledger entry of the same deltas in the
  same transaction, so each counter equals the sum of its entries (`manage.py budgets_verify`).

Every service that touches counters locks the reservation first (when there is one), then the
counters in id order: one global order, no deadlocks.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent, AgentVersion, Run
from agents.net import WebhookFailedError, check_webhook_url, post_signed
from budgets import events, selectors
from budgets.errors import BudgetExceededError, BudgetFieldError, TokenCapExceededError
from budgets.models import Budget, BudgetAlert, BudgetCounter, LedgerEntry, Reservation, ReservationLine
from budgets.selectors import Applicable, applicable_budgets, resolve_model
from catalog import crypto
from catalog.clients.base import estimate_tokens
from catalog.models import LanguageModel
from tenants.audit import Actor
from tenants.errors import ConflictError
from tenants.models import ApiKey, Tenant
from tenants.net import UnsafeUrlError
from tenants.services import audit_record

logger = logging.getLogger(__name__)

SYSTEM = Actor.system_actor("budgets")
MAX_THRESHOLD = 1000  # percent; above 100 only makes sense for alert-only budgets
MAX_TOKENS = 10_000_000
MAX_NOTIFY_EMAILS = 20  # per request: far above any context window, low enough to keep sums exact
# The scopes whose member a call may leave out (an agent or key budget skips calls without one).
ANONYMOUS_SCOPES = (Budget.Scope.END_USER, Budget.Scope.SESSION)


# --- Configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetConfig:
    """A budget's validated settings."""

    name: str
    scope: str
    agent: Agent | None
    period: str
    unit: str
    limit: int
    thresholds: list[int]
    on_exceed: str
    enabled: bool
    notify_emails: list[str]
    webhook_url: str
    meter_anonymous: bool = False

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "agent": str(self.agent.pk) if self.agent else None,
            "period": self.period,
            "unit": self.unit,
            "limit": self.limit,
            "thresholds": self.thresholds,
            "on_exceed": self.on_exceed,
            "enabled": self.enabled,
            "meter_anonymous": self.meter_anonymous,
            "notify_emails": self.notify_emails,
            "webhook_url": self.webhook_url,
        }


def _state(budget: Budget) -> dict[str, Any]:
    return {
        "name": budget.name,
        "scope": budget.scope,
        "agent": str(budget.agent_id) if budget.agent_id else None,
        "period": budget.period,
        "unit": budget.unit,
        "limit": budget.limit,
        "thresholds": list(budget.thresholds),
        "on_exceed": budget.on_exceed,
        "enabled": budget.enabled,
        "meter_anonymous": budget.meter_anonymous,
        "notify_emails": list(budget.notify_emails),
        "webhook_url": budget.webhook_url,
    }


def _choice(field: str, value: Any, choices: Any) -> str:
    if value not in choices.values:
        raise BudgetFieldError(field, f"must be one of {', '.join(choices.values)} (got {value!r}).")
    return str(value)


def _validated(tenant: Tenant, values: dict[str, Any]) -> BudgetConfig:
    name = str(values.get("name") or "").strip()
    if not name:
        raise BudgetFieldError("name", "A budget needs a name.")
    if len(name) > 100:
        raise BudgetFieldError("name", "At most 100 characters.")
    limit = values.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise BudgetFieldError("limit", "must be a positive whole number (micro-USD or tokens).")
    if limit > 2**62:
        raise BudgetFieldError("limit", "is too large.")
    raw = values.get("thresholds")
    thresholds = [70, 80, 100] if raw is None else raw
    if not isinstance(thresholds, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= MAX_THRESHOLD for t in thresholds
    ):
        raise BudgetFieldError("thresholds", f"must be a list of whole percentages from 1 to {MAX_THRESHOLD}.")
    agent = values.get("agent")
    if agent is not None and not isinstance(agent, Agent):
        found = Agent.objects.for_tenant(tenant).filter(Q(name=str(agent)) | _pk_q(agent)).first()
        if found is None:
            raise BudgetFieldError("agent", f"No agent {agent!r} in this tenant.")
        agent = found
    if agent is not None and agent.tenant_id != tenant.pk:
        raise BudgetFieldError("agent", "No such agent in this tenant.")
    emails = values.get("notify_emails") or []
    if not isinstance(emails, list) or len(emails) > MAX_NOTIFY_EMAILS:
        raise BudgetFieldError("notify_emails", f"must be a list of at most {MAX_NOTIFY_EMAILS} email addresses.")
    for email in emails:
        try:
            validate_email(email)
        except (ValidationError, TypeError) as exc:
            raise BudgetFieldError("notify_emails", f"{email!r} is not an email address.") from exc
    webhook_url = str(values.get("webhook_url") or "").strip()
    if webhook_url:
        if len(webhook_url) > 500:
            raise BudgetFieldError("webhook_url", "At most 500 characters.")
        try:
            URLValidator(schemes=["http", "https"])(webhook_url)
            # The scheme and host now; the addresses are checked again right before each delivery.
            check_webhook_url(webhook_url, resolve=False)
        except ValidationError as exc:
            raise BudgetFieldError("webhook_url", "is not an http(s) URL.") from exc
        except UnsafeUrlError as exc:
            raise BudgetFieldError("webhook_url", str(exc)) from exc
    scope = _choice("scope", values.get("scope", Budget.Scope.TENANT), Budget.Scope)
    meter_anonymous = values.get("meter_anonymous", False)
    if not isinstance(meter_anonymous, bool):
        raise BudgetFieldError("meter_anonymous", "must be true or false.")
    if meter_anonymous and scope not in ANONYMOUS_SCOPES:
        raise BudgetFieldError("meter_anonymous", "applies only to a per-end-user or per-session budget.")
    return BudgetConfig(
        webhook_url=webhook_url,
        meter_anonymous=meter_anonymous,
        notify_emails=sorted({str(e).strip().lower() for e in emails}),
        name=name,
        scope=scope,
        agent=agent,
        period=_choice("period", values.get("period", Budget.Period.MONTH), Budget.Period),
        unit=_choice("unit", values.get("unit", Budget.Unit.USD_MICROS), Budget.Unit),
        limit=limit,
        thresholds=sorted(set(thresholds)),
        on_exceed=_choice("on_exceed", values.get("on_exceed", Budget.OnExceed.BLOCK), Budget.OnExceed),
        enabled=bool(values.get("enabled", True)),
    )


def _pk_q(value: Any) -> Q:
    try:
        import uuid

        return Q(pk=uuid.UUID(str(value)))
    except ValueError:
        return Q(pk__in=[])


def budget_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    limit: int,
    scope: str = Budget.Scope.TENANT,
    agent: Agent | str | None = None,
    period: str = Budget.Period.MONTH,
    unit: str = Budget.Unit.USD_MICROS,
    thresholds: list[int] | None = None,
    on_exceed: str = Budget.OnExceed.BLOCK,
    enabled: bool = True,
    meter_anonymous: bool = False,
    notify_emails: list[str] | None = None,
    webhook_url: str = "",
    webhook_secret: str | None = None,
) -> Budget:
    """Create a budget (audited). Raises BudgetFieldError naming a bad field, ConflictError on a
    duplicate name. `webhook_secret` signs alert webhooks; it is stored encrypted and never shown.
    `meter_anonymous`: a per-end-user or per-session budget also counts calls that name none,
    together under one anonymous bucket (off: it applies only to calls that name one)."""
    config = _validated(
        tenant,
        {
            "name": name,
            "limit": limit,
            "scope": scope,
            "agent": agent,
            "period": period,
            "unit": unit,
            "thresholds": thresholds,
            "on_exceed": on_exceed,
            "enabled": enabled,
            "meter_anonymous": meter_anonymous,
            "notify_emails": notify_emails,
            "webhook_url": webhook_url,
        },
    )
    secret = _webhook_secret(webhook_secret)
    try:
        with transaction.atomic():
            budget = Budget.objects.create(
                tenant=tenant,
                webhook_secret_encrypted=crypto.encrypt(secret) if secret else "",
                **config.state() | {"agent": config.agent},
            )
            audit_record(tenant=tenant, actor=actor, action="budget.create", target=budget, after=config.state())
            events.send_budgets_changed(tenant)
    except IntegrityError as exc:
        raise ConflictError(
            f"name: a budget named {config.name!r} exists already.", fields={"name": ["taken"]}
        ) from exc
    return budget


def _webhook_secret(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise BudgetFieldError("webhook_secret", "must be a string of at most 200 characters.")
    return value.strip()


def budget_update(*, actor: Actor, budget: Budget, webhook_secret: str | None = None, **changes: Any) -> Budget:
    """Change a budget's settings (audited). Its unit cannot change: its counters and ledger are
    in that unit (create another budget instead). `webhook_secret` None keeps the secret, "" removes
    it, anything else replaces it (the audit row says it changed, never what it is)."""
    secret = _webhook_secret(webhook_secret)
    unknown = set(changes) - set(_state(budget))
    if unknown:
        raise BudgetFieldError(sorted(unknown)[0], "is not a budget setting.")
    if "unit" in changes and changes["unit"] != budget.unit:
        raise BudgetFieldError("unit", "cannot change once a budget exists; create a new budget in the other unit.")
    before = _state(budget)
    if changes.get("scope", budget.scope) not in ANONYMOUS_SCOPES and "meter_anonymous" not in changes:
        # Moving to a scope every call has: there is no anonymous call left to meter.
        changes["meter_anonymous"] = False
    current: dict[str, Any] = {**before, "agent": budget.agent}
    config = _validated(budget.tenant, {**current, **changes})
    try:
        with transaction.atomic():
            locked = Budget.objects.for_tenant(budget.tenant).select_for_update().get(pk=budget.pk)
            for field, value in config.state().items():
                setattr(locked, field, config.agent if field == "agent" else value)
            after = config.state()
            if secret is not None:
                locked.webhook_secret_encrypted = crypto.encrypt(secret) if secret else ""
                after["webhook_secret"] = "changed" if secret else "removed"
            locked.updated_at = timezone.now()
            locked.save()
            if after != before:
                audit_record(
                    tenant=budget.tenant,
                    actor=actor,
                    action="budget.update",
                    target=locked,
                    before=before,
                    after=after,
                )
                events.send_budgets_changed(budget.tenant)
    except IntegrityError as exc:
        raise ConflictError(
            f"name: a budget named {config.name!r} exists already.", fields={"name": ["taken"]}
        ) from exc
    return locked


def budget_delete(*, actor: Actor, budget: Budget) -> None:
    """Delete a budget that never counted anything (audited). One with ledger entries keeps its
    history: disable it instead (ConflictError)."""
    with transaction.atomic():
        if LedgerEntry.objects.for_tenant(budget.tenant).filter(counter__budget=budget).exists():
            raise ConflictError(
                f"Budget {budget.name!r} has ledger entries and keeps them; disable it instead of deleting it."
            )
        audit_record(tenant=budget.tenant, actor=actor, action="budget.delete", target=budget, before=_state(budget))
        BudgetCounter.objects.for_tenant(budget.tenant).filter(budget=budget).delete()
        budget.delete()
        events.send_budgets_changed(budget.tenant)


# --- The reservation protocol ------------------------------------------------------------------


def _check_tokens(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BudgetFieldError(field, "must be a whole number of tokens, 0 or more.")
    if value > MAX_TOKENS:
        raise BudgetFieldError(field, f"must be at most {MAX_TOKENS}.")
    return value


def check_token_caps(
    *, input_tokens: int, max_output_tokens: int, agent_version: AgentVersion | None, api_key: ApiKey | None
) -> None:
    """Refuse (TokenCapExceededError) a request whose input + max output exceeds the agent version's
    or the API key's `max_tokens_per_request`."""
    total = input_tokens + max_output_tokens
    caps = []
    if agent_version is not None:
        caps.append((f"agent {agent_version.agent.name!r}", agent_version.max_tokens_per_request))
    if api_key is not None and api_key.max_tokens_per_request is not None:
        caps.append((f"API key {api_key.name!r}", api_key.max_tokens_per_request))
    for who, cap in caps:
        if total > cap:
            raise TokenCapExceededError(
                f"The request may use {total} tokens (input {input_tokens} + max output {max_output_tokens}), "
                f"over the {cap} tokens per request allowed for {who}.",
                cap=cap,
                requested=total,
            )


def _ensure_counters(tenant: Tenant, applicable: list[Applicable]) -> None:
    """Create the missing counters (INSERT … ON CONFLICT DO NOTHING), in key order so two
    concurrent inserts of the same new keys wait for each other instead of deadlocking."""
    rows = [
        BudgetCounter(tenant=tenant, budget=a.budget, period_start=a.period_start, scope_value=a.scope_value)
        for a in sorted(applicable, key=lambda a: a.key)
    ]
    BudgetCounter.objects.bulk_create(rows, ignore_conflicts=True)


def _lock_counters(tenant: Tenant, keys: Q | Iterable[Any]) -> dict[Any, BudgetCounter]:
    """SELECT … FOR UPDATE the counters, in id order (the one lock order every service uses)."""
    # of=("self",): lock the counters only, not the joined budgets (that would serialise every
    # reservation on a budget, whatever its scope value).
    counters = BudgetCounter.objects.for_tenant(tenant).select_for_update(of=("self",)).select_related("budget")
    query = counters.filter(keys) if isinstance(keys, Q) else counters.filter(pk__in=list(keys))
    return {c.pk: c for c in query.order_by("id")}


def _amount(unit: str, *, micros: int, tokens: int) -> int:
    return micros if unit == Budget.Unit.USD_MICROS else tokens


PERIOD_WORDS = {Budget.Period.DAY: "daily", Budget.Period.MONTH: "monthly", Budget.Period.TOTAL: "in total"}
SCOPE_WORDS = {
    Budget.Scope.TENANT: "tenant-wide",
    Budget.Scope.AGENT: "per agent",
    Budget.Scope.API_KEY: "per API key",
    Budget.Scope.END_USER: "per end user",
    Budget.Scope.SESSION: "per session",
}
MEMBER_WORDS = {
    Budget.Scope.AGENT: "agent",
    Budget.Scope.API_KEY: "API key",
    Budget.Scope.END_USER: "end user",
    Budget.Scope.SESSION: "session",
}


def amounts_text(unit: str, *amounts: int) -> tuple[list[str], str]:
    """Amounts as a client developer reads them, and the unit word that follows the last of a
    phrase: dollars with the fewest of 2, 4 or 6 decimals that shows every amount exactly ($0.0100,
    $0.0003; no word), or token counts (1,200; " tokens")."""
    if unit != Budget.Unit.USD_MICROS:
        return [f"{amount:,}" for amount in amounts], " tokens"
    decimals = next((d for d in (2, 4) if all(a % 10 ** (6 - d) == 0 for a in amounts)), 6)
    return [f"{'-' if a < 0 else ''}${abs(a) / 1_000_000:,.{decimals}f}" for a in amounts], ""


def member_label(budget: Budget, scope_value: str, names: dict[str, str] | None = None) -> str:
    """Whom a budget's counter counts, in words: "the tenant", "end user 'u-42'", "agent 'Support
    agent'", "calls without an end user" (a metered anonymous bucket)."""
    if budget.scope == Budget.Scope.TENANT:
        return "the tenant"
    noun = MEMBER_WORDS[Budget.Scope(budget.scope)]
    if not scope_value:
        return f"calls without {'an' if noun[0] in 'aeiou' else 'a'} {noun}"
    return f"{noun} {(names or {}).get(budget.scope, scope_value)!r}"


def refusal_message(
    budget: Budget,
    *,
    scope_value: str,
    settled: int,
    reserved: int,
    amount: int,
    resets_at: datetime | None,
    names: dict[str, str] | None = None,
) -> str:
    """The sentence a refused caller reads, e.g. "Budget 'Support daily' (per end user, daily) is
    used up for end user 'u-42': $0.0100 of $0.0100 spent, $0.0003 more reserved by calls in
    flight; this call needs up to $0.0004. It resets at 2026-12-05 00:00 UTC." """
    kind = f"{SCOPE_WORDS[Budget.Scope(budget.scope)]}, {PERIOD_WORDS[Budget.Period(budget.period)]}"
    if budget.agent is not None:
        kind += f", for agent {budget.agent.name!r} only"
    member = member_label(budget, scope_value, names)
    left = max(budget.limit - settled - reserved, 0)
    (spent_text, limit_text, reserved_text, amount_text, left_text), word = amounts_text(
        budget.unit, settled, budget.limit, reserved, amount, left
    )
    figures = f"{spent_text} of {limit_text}{word} spent"
    if reserved:
        figures += f", {reserved_text}{word} more reserved by calls in flight"
    if left:
        state, figures = f"has too little left for {member}", f"{figures}, {left_text}{word} left"
    else:
        state = f"is used up for {member}"
    if resets_at is None:
        when = "It is a total budget and never resets."
    else:
        utc = resets_at.astimezone(UTC)
        when = f"It resets at {utc:%Y-%m-%d %H:%M} UTC"
        local = resets_at.astimezone(selectors.tenant_zone(budget.tenant))
        when += "." if local.utcoffset() == timedelta(0) else f" ({local:%Y-%m-%d %H:%M} {local.tzinfo})."
    return f"Budget {budget.name!r} ({kind}) {state}: {figures}; this call needs up to {amount_text}{word}. {when}"


def _exceeded(
    a: Applicable, counter: BudgetCounter, amount: int, names: dict[str, str] | None = None
) -> BudgetExceededError:
    budget = counter.budget  # as locked, so the figures are the ones the refusal was decided on
    budget.tenant = a.budget.tenant  # known already: no query for the tenant's zone
    message = refusal_message(
        budget,
        scope_value=a.scope_value,
        settled=counter.settled,
        reserved=counter.reserved,
        amount=amount,
        resets_at=a.resets_at,
        names=names,
    )
    return BudgetExceededError(
        message,
        budget=str(budget.pk),
        budget_name=budget.name,
        scope=budget.scope,
        scope_value=a.scope_value,
        period=budget.period,
        limit=budget.limit,
        used=counter.settled,
        reserved=counter.reserved,
        requested=amount,
        remaining=max(budget.limit - counter.settled - counter.reserved, 0),
        unit=budget.unit,
        on_exceed=budget.on_exceed,
        resets_at=a.resets_at.isoformat() if a.resets_at else None,
    )


def _reserve_locked(
    tenant: Tenant,
    applicable: list[Applicable],
    *,
    micros: int,
    tokens: int,
    at: datetime,
    fields: dict[str, Any],
    allow_over: Collection[str] = (),
    names: dict[str, str] | None = None,
) -> Reservation | None:
    """Lock the applicable counters (id order), check every limit, and write the reservation, its
    lines, the counters and the ledger in one transaction; None (nothing written) when a counter is
    missing. Limits are read from the budget rows joined at lock time, not from before it, so an
    edit that lowered a limit a moment ago applies."""
    with transaction.atomic():
        keys = Q(pk__in=[])
        for a in applicable:
            keys |= Q(budget_id=a.budget.pk, period_start=a.period_start, scope_value=a.scope_value)
        locked = _lock_counters(tenant, keys)
        by_key = {(str(c.budget_id), c.period_start, c.scope_value): c for c in locked.values()}
        if any(a.key not in by_key for a in applicable):
            return None
        plan = [(a, by_key[a.key], _amount(a.budget.unit, micros=micros, tokens=tokens)) for a in applicable]
        for a, counter, amount in plan:
            budget = counter.budget
            if budget.enabled and budget.blocks and counter.settled + counter.reserved + amount > budget.limit:
                let_through = "*" in allow_over or str(budget.pk) in allow_over
                if budget.on_exceed == Budget.OnExceed.REQUIRE_APPROVAL and let_through:
                    logger.info("budget %s let %s %s through, approved by a reviewer", budget.pk, amount, budget.unit)
                    continue
                logger.info("budget %s refused %s %s for %s", budget.pk, amount, budget.unit, a.scope_value)
                raise _exceeded(a, counter, amount, names)
        reservation = Reservation.objects.create(
            tenant=tenant,
            worst_case_micros=micros,
            worst_case_tokens=tokens,
            created_at=at,
            expires_at=at + timedelta(seconds=settings.BUDGET_RESERVATION_TTL_SECONDS),
            **fields,
        )
        lines, entries = [], []
        for _, counter, amount in plan:
            before = counter.used
            counter.reserved += amount
            lines.append(ReservationLine(tenant=tenant, reservation=reservation, counter=counter, amount=amount))
            entries.append(
                LedgerEntry(
                    tenant=tenant,
                    kind=LedgerEntry.Kind.RESERVE,
                    counter=counter,
                    reservation=reservation,
                    reserved_delta=amount,
                    created_at=at,
                )
            )
            _alert_crossings(counter, counter.budget, before=before, at=at)
        _save_counters([counter for _, counter, _ in plan])
        ReservationLine.objects.bulk_create(lines)
        LedgerEntry.objects.bulk_create(entries)
    reservation.tightest = tightest([(a, counter, amount) for a, counter, amount in plan])
    return reservation


def tightest(plan: Iterable[tuple[Applicable, BudgetCounter, int]]) -> dict[str, Any] | None:
    """Of the budgets that can refuse (block, require_approval), the one with the least fraction of
    its limit left once this reservation is held, from the counters as locked and written (no
    query): {id, name, unit, limit, remaining, resets_at, held, scope, scope_value}. `remaining` =
    limit - settled - reserved in the budget's unit, this call's hold (`held`) included; below
    zero only when a reviewer let a call past a full require_approval budget. None when none
    applied."""
    best: tuple[float, dict[str, Any]] | None = None
    for a, counter, amount in plan:
        budget = counter.budget
        if not (budget.enabled and budget.blocks):
            continue
        remaining = budget.limit - counter.settled - counter.reserved
        fraction = remaining / budget.limit
        if best is None or fraction < best[0]:
            best = (
                fraction,
                {
                    "id": str(budget.pk),
                    "name": budget.name,
                    "unit": budget.unit,
                    "limit": budget.limit,
                    "remaining": remaining,
                    "resets_at": a.resets_at.isoformat() if a.resets_at else None,
                    "held": amount,
                    "scope": budget.scope,
                    "scope_value": a.scope_value,
                },
            )
    return best[1] if best else None


def _save_counters(counters: list[BudgetCounter]) -> None:
    """Write the new settled and reserved amounts of locked counters in one statement."""
    if not counters:
        return
    table = BudgetCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS c SET settled = v.settled, reserved = v.reserved"  # noqa: S608 (our table name)
            " FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[]) AS v(id, settled, reserved) WHERE c.id = v.id",
            [[c.pk for c in counters], [c.settled for c in counters], [c.reserved for c in counters]],
        )


def budget_reserve(
    *,
    tenant: Tenant,
    model: LanguageModel | str,
    max_output_tokens: int,
    input_tokens: int | None = None,
    input_text: str | None = None,
    end_user_id: str = "",
    session_id: str = "",
    agent: Agent | None = None,
    api_key: ApiKey | None = None,
    run: Run | None = None,
    check_agent_cap: bool = True,
    allow_over: Collection[str] = (),
    at: datetime | None = None,
) -> Reservation:
    """Hold the worst-case cost of one model call against every applicable budget, all or nothing.
    `allow_over` holds ids of `require_approval` budgets a reviewer let this one call through
    ("*": all of them); the call is still counted there, past the limit.

    Worst case = input tokens (given, or estimated from `input_text`) x input price + max output
    tokens x output price of the exact model (`model` may be a pinned alias or an exact id).
    Raises BudgetFieldError (a bad field, an unknown or unpriced model), TokenCapExceededError, or
    BudgetExceededError (402) naming the first exhausted budget by name. Alert-only budgets count
    but never refuse. Queries: a few to resolve, then one transaction that locks the counters."""
    if isinstance(model, str):
        try:
            model = resolve_model(tenant=tenant, name=model)
        except LookupError as exc:
            raise BudgetFieldError("model", str(exc)) from exc
    if model.tenant_id != tenant.pk:
        raise BudgetFieldError("model", "No such model in this tenant.")
    if not model.is_priced:
        raise BudgetFieldError("model", f"{model} has no prices; an unpriced model cannot be budgeted or used.")
    max_output_tokens = _check_tokens("max_output_tokens", max_output_tokens)
    estimated = input_tokens is None
    if input_tokens is None:
        if input_text is None:
            raise BudgetFieldError("input_tokens", "Send input_tokens or input_text.")
        input_tokens = estimate_tokens(input_text)
    input_tokens = _check_tokens("input_tokens", input_tokens)
    if agent is not None and agent.tenant_id != tenant.pk:
        raise BudgetFieldError("agent", "No such agent in this tenant.")
    version = agent.current_version if agent is not None and check_agent_cap else None
    check_token_caps(
        input_tokens=input_tokens, max_output_tokens=max_output_tokens, agent_version=version, api_key=api_key
    )

    now = at or timezone.now()
    micros = model.cost_micros(input_tokens=input_tokens, output_tokens=max_output_tokens)
    tokens = input_tokens + max_output_tokens
    fields = {
        "model": model,
        "input_tokens": input_tokens,
        "input_tokens_estimated": estimated,
        "max_output_tokens": max_output_tokens,
        "input_price": model.input_price,
        "cached_input_price": model.cached_input_price,
        "output_price": model.output_price,
        "end_user_id": end_user_id,
        "session_id": session_id,
        "agent": agent,
        "api_key": api_key,
        "run": run,
    }
    applicable = applicable_budgets(
        tenant=tenant,
        agent_id=agent.pk if agent else None,
        api_key_id=api_key.pk if api_key else None,
        end_user_id=end_user_id,
        session_id=session_id,
        at=now,
    )
    # How a refusal names the agent and the key (the counters hold their ids).
    names = {Budget.Scope.AGENT.value: agent.name} if agent else {}
    if api_key is not None:
        names[Budget.Scope.API_KEY.value] = api_key.name
    reservation = _reserve_locked(
        tenant, applicable, micros=micros, tokens=tokens, at=now, fields=fields, allow_over=allow_over, names=names
    )
    if reservation is None:
        # A counter of this period or scope value does not exist yet: create it outside the
        # locking transaction (see _ensure_counters), then lock again.
        _ensure_counters(tenant, applicable)
        reservation = _reserve_locked(
            tenant, applicable, micros=micros, tokens=tokens, at=now, fields=fields, allow_over=allow_over, names=names
        )
        if reservation is None:
            raise ConflictError("A budget changed during the reservation; retry.")
    return reservation


def _locked_reservation(reservation: Reservation) -> Reservation:
    # of=("self",): a plain FOR UPDATE would lock the joined tenant row as well, which every
    # concurrent insert of a tenant-owned row needs a key-share lock on (a deadlock, found by
    # test_concurrency).
    return (
        Reservation.objects.for_tenant(reservation.tenant)
        .select_for_update(of=("self",))
        .select_related("model", "tenant")
        .get(pk=reservation.pk)
    )


def _lines(reservation: Reservation) -> list[tuple[ReservationLine, BudgetCounter]]:
    """The reservation's lines with their counters locked, in counter id order (the one lock order
    every service uses), in one statement."""
    lines = (
        ReservationLine.objects.for_tenant(reservation.tenant)
        .filter(reservation=reservation)
        .select_related("counter", "counter__budget")
        .select_for_update(of=("counter",))
        .order_by("counter_id")
    )
    return [(line, line.counter) for line in lines]


def budget_settle(
    *,
    reservation: Reservation,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    estimated: bool = False,
    at: datetime | None = None,
    note: str = "",
) -> Reservation:
    """Replace the reservation's hold with what the call really cost, in every counter it holds.

    The actual cost may exceed the reservation (a provider that overran max output): it is
    recorded as it happened. An expired reservation still settles (the spend happened; its hold
    was already released, so only the spend is added). Settling a settled or released reservation
    is a ConflictError (409)."""
    input_tokens = _check_tokens("input_tokens", input_tokens)
    output_tokens = _check_tokens("output_tokens", output_tokens)
    cached_input_tokens = _check_tokens("cached_input_tokens", cached_input_tokens)
    now = at or timezone.now()
    with transaction.atomic():
        locked = _locked_reservation(reservation)
        if locked.status in (Reservation.Status.SETTLED, Reservation.Status.RELEASED):
            raise ConflictError(f"Reservation {locked.pk} is already {locked.status}.", status=locked.status)
        was_open = locked.is_open
        micros = locked.cost_micros(
            input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached_input_tokens
        )
        entries = []
        lines = _lines(locked)
        for line, counter in lines:
            spent = _amount(counter.budget.unit, micros=micros, tokens=input_tokens + output_tokens)
            released = line.amount if was_open else 0
            before = counter.used
            counter.reserved -= released
            counter.settled += spent
            entries.append(
                LedgerEntry(
                    tenant=locked.tenant,
                    kind=LedgerEntry.Kind.SETTLE,
                    counter=counter,
                    reservation=locked,
                    reserved_delta=-released,
                    settled_delta=spent,
                    note=note or ("" if was_open else "settled after expiry"),
                    created_at=now,
                )
            )
            _alert_crossings(counter, counter.budget, before=before, at=now)
        _save_counters([counter for _, counter in lines])
        LedgerEntry.objects.bulk_create(entries)
        locked.status = Reservation.Status.SETTLED
        locked.actual_input_tokens = input_tokens
        locked.actual_output_tokens = output_tokens
        locked.actual_micros = micros
        locked.usage_estimated = estimated
        locked.finished_at = now
        locked.save(
            update_fields=[
                "status",
                "actual_input_tokens",
                "actual_output_tokens",
                "actual_micros",
                "usage_estimated",
                "finished_at",
            ]
        )
    return locked


def budget_settle_cancelled(*, reservation: Reservation, at: datetime | None = None) -> Reservation:
    """A call cancelled after it was sent: the provider billed the input, not the output. Settles
    the reservation's input tokens (estimated when they were) and no output."""
    return budget_settle(
        reservation=reservation,
        input_tokens=reservation.input_tokens,
        output_tokens=0,
        estimated=reservation.input_tokens_estimated,
        at=at,
    )


def _unhold(reservation: Reservation, *, kind: str, status: str, at: datetime) -> Reservation:
    entries = []
    lines = _lines(reservation)
    for line, counter in lines:
        counter.reserved -= line.amount
        entries.append(
            LedgerEntry(
                tenant=reservation.tenant,
                kind=kind,
                counter=counter,
                reservation=reservation,
                reserved_delta=-line.amount,
                created_at=at,
            )
        )
    _save_counters([counter for _, counter in lines])
    LedgerEntry.objects.bulk_create(entries)
    reservation.status = status
    reservation.finished_at = at
    reservation.save(update_fields=["status", "finished_at"])
    return reservation


def budget_release(*, reservation: Reservation, at: datetime | None = None) -> Reservation:
    """The call failed before anything was spent: drop the hold. Releasing a reservation that is
    not open is a ConflictError (409)."""
    with transaction.atomic():
        locked = _locked_reservation(reservation)
        if not locked.is_open:
            raise ConflictError(f"Reservation {locked.pk} is already {locked.status}.", status=locked.status)
        return _unhold(
            locked, kind=LedgerEntry.Kind.RELEASE, status=Reservation.Status.RELEASED, at=at or timezone.now()
        )


def budget_expire_stale(*, at: datetime | None = None, batch: int = 500) -> int:
    """Release every open reservation past its `expires_at` as `expire` entries; returns how many.
    A run engine's reservation is settled at its worst case instead (its worker died mid-call).

    Each reservation in its own transaction: holding one reservation's counter locks while taking
    the next one's would break the single lock order (counters by id) and could deadlock with a
    concurrent reserve. A reservation another worker holds locked is skipped (it is settling or
    expiring it)."""
    now = at or timezone.now()
    expired = 0
    while True:
        due = list(
            Reservation.objects.filter(status=Reservation.Status.OPEN, expires_at__lt=now)
            .order_by("expires_at")
            .values_list("pk", flat=True)[:batch]
        )
        done = 0
        for pk in due:
            with transaction.atomic():
                reservation = (
                    Reservation.objects.filter(pk=pk, status=Reservation.Status.OPEN, expires_at__lt=now)
                    .select_for_update(skip_locked=True, of=("self",))
                    .select_related("tenant")
                    .first()
                )
                if reservation is None:
                    continue
                if reservation.run_id is not None:
                    # The run engine reserves right before its model call: an engine reservation
                    # left open means the worker died during the call, which the provider may well
                    # have billed. A hard cap must not forget it: count it at its worst case.
                    budget_settle(
                        reservation=reservation,
                        input_tokens=reservation.input_tokens,
                        output_tokens=reservation.max_output_tokens,
                        estimated=True,
                        at=now,
                        note="worker lost during the call: settled at the worst case",
                    )
                else:
                    _unhold(reservation, kind=LedgerEntry.Kind.EXPIRE, status=Reservation.Status.EXPIRED, at=now)
                done += 1
        expired += done
        if len(due) < batch or done == 0:
            return expired


def budget_adjust(
    *,
    actor: Actor,
    budget: Budget,
    settled_delta: int,
    note: str,
    scope_value: str = "",
    at: datetime | None = None,
) -> LedgerEntry:
    """Correct a counter's spend in the current period by `settled_delta` (a refund from the
    provider, spend made outside the console), as an `adjust` ledger entry with a note (audited).
    Spend never goes below zero."""
    if isinstance(settled_delta, bool) or not isinstance(settled_delta, int) or settled_delta == 0:
        raise BudgetFieldError("settled_delta", "must be a whole number other than 0.")
    if abs(settled_delta) > 2**62:
        raise BudgetFieldError("settled_delta", "is too large.")
    note = (note or "").strip()
    if not note:
        raise BudgetFieldError("note", "Say why the spend is adjusted.")
    if len(note) > 200:
        raise BudgetFieldError("note", "At most 200 characters.")
    if budget.scope == Budget.Scope.TENANT and scope_value:
        raise BudgetFieldError("scope_value", "A tenant budget has one counter: leave scope_value empty.")
    if len(scope_value) > 200:
        raise BudgetFieldError("scope_value", "At most 200 characters.")
    now = at or timezone.now()
    start, resets_at = selectors.current_period(budget, at=now)
    applicable = Applicable(budget=budget, period_start=start, resets_at=resets_at, scope_value=scope_value)
    _ensure_counters(budget.tenant, [applicable])
    with transaction.atomic():
        keys = Q(budget_id=budget.pk, period_start=start, scope_value=scope_value)
        (counter,) = _lock_counters(budget.tenant, keys).values()
        if counter.settled + settled_delta < 0:
            raise BudgetFieldError(
                "settled_delta", f"would take the spend below zero (it is {counter.settled} {budget.unit})."
            )
        before = counter.used
        counter.settled += settled_delta
        counter.save(update_fields=["settled"])
        entry = LedgerEntry.objects.create(
            tenant=budget.tenant,
            kind=LedgerEntry.Kind.ADJUST,
            counter=counter,
            settled_delta=settled_delta,
            note=note,
            created_at=now,
        )
        audit_record(
            tenant=budget.tenant,
            actor=actor,
            action="budget.adjust",
            target=budget,
            before={"settled": counter.settled - settled_delta, "scope_value": scope_value},
            after={"settled": counter.settled, "scope_value": scope_value, "note": note},
        )
        _alert_crossings(counter, budget, before=before, at=now)
    return entry


# --- Alerts --------------------------------------------------------------------------------------


def _alert_crossings(counter: BudgetCounter, budget: Budget, *, before: int, at: datetime) -> list[BudgetAlert]:
    """Record each threshold `counter` crossed upwards (settled + reserved against the limit): a
    BudgetAlert once per (budget, period, scope value, threshold), an audit row and a live event.
    Called with the counter locked, so no other transaction can fire the same alert meanwhile."""
    after = counter.used
    crossed = [t for t in budget.thresholds if before * 100 < t * budget.limit <= after * 100]
    if not crossed:
        return []
    fired = set(
        BudgetAlert.objects.for_tenant(budget.tenant)
        .filter(
            budget=budget, period_start=counter.period_start, scope_value=counter.scope_value, threshold__in=crossed
        )
        .values_list("threshold", flat=True)
    )
    alerts = []
    for threshold in crossed:
        if threshold in fired:
            continue
        alert = BudgetAlert.objects.create(
            tenant=budget.tenant,
            budget=budget,
            period_start=counter.period_start,
            scope_value=counter.scope_value,
            threshold=threshold,
            used=after,
            limit=budget.limit,
            created_at=at,
        )
        audit_record(
            tenant=budget.tenant,
            actor=SYSTEM,
            action="budget.alert",
            target=budget,
            after={
                "threshold": threshold,
                "scope_value": counter.scope_value,
                "period_start": counter.period_start.isoformat(),
                "used": after,
                "limit": budget.limit,
                "unit": budget.unit,
            },
        )
        events.send_budget_alert(alert)
        if budget.notify_emails:
            _email_after_commit(alert)
        if budget.webhook_url:
            _webhook_after_commit(alert)
        alerts.append(alert)
    return alerts


def _email_after_commit(alert: BudgetAlert) -> None:
    from budgets.tasks import email_budget_alert

    tenant_id, alert_id = str(alert.tenant_id), str(alert.pk)
    transaction.on_commit(lambda: email_budget_alert.delay(tenant_id, alert_id))


def _webhook_after_commit(alert: BudgetAlert) -> None:
    from budgets.tasks import deliver_budget_alert_webhook

    tenant_id, alert_id = str(alert.tenant_id), str(alert.pk)
    transaction.on_commit(lambda: deliver_budget_alert_webhook.delay(tenant_id, alert_id))


def alert_payload(alert: BudgetAlert) -> dict[str, Any]:
    """What an alert webhook receives."""
    budget = alert.budget
    return {
        "type": "budget.alert",
        "id": str(alert.pk),
        "tenant": alert.tenant.slug,
        "budget": {"id": str(budget.pk), "name": budget.name, "scope": budget.scope, "unit": budget.unit},
        "threshold": alert.threshold,
        "scope_value": alert.scope_value,
        "used": alert.used,
        "limit": alert.limit,
        "period_start": alert.period_start.isoformat(),
        "created_at": alert.created_at.isoformat(),
        "blocks": budget.blocks,
    }


def budget_alert_webhook(*, alert: BudgetAlert) -> bool:
    """POST the alert, signed, to its budget's webhook_url unless it was delivered already; records
    the attempt. Returns whether it delivered. Raises WebhookFailedError or httpx.HTTPError when the
    receiver failed (the task retries with backoff); a URL the SSRF guard refuses is recorded and
    not retried."""
    budget = alert.budget
    if alert.webhook_delivered_at is not None or not budget.webhook_url:
        return False
    attempts = alert.webhook_attempts + 1
    rows = BudgetAlert.objects.for_tenant(alert.tenant).filter(pk=alert.pk)
    try:
        post_signed(
            budget.webhook_url,
            crypto.decrypt(budget.webhook_secret_encrypted),
            alert_payload(alert),
            event="budget.alert",
        )
    except UnsafeUrlError as exc:
        rows.update(webhook_attempts=attempts, webhook_error=f"refused: {exc}"[:500])
        return False
    except (WebhookFailedError, httpx.HTTPError) as exc:
        rows.update(webhook_attempts=attempts, webhook_error=f"{type(exc).__name__}: {exc}"[:500])
        alert.webhook_attempts = attempts
        raise
    rows.update(webhook_attempts=attempts, webhook_error="", webhook_delivered_at=timezone.now())
    return True


def budget_alert_email(*, alert: BudgetAlert) -> bool:
    """Email the alert to its budget's `notify_emails` unless it was already (at least once: a
    crash between sending and recording sends it again). Returns whether it sent."""
    budget = alert.budget
    if alert.emailed_at is not None or not budget.notify_emails:
        return False
    scope = f" for {budget.scope.replace('_', ' ')} {alert.scope_value}" if alert.scope_value else ""
    send_mail(
        subject=f"[{alert.tenant.name}] Budget {budget.name!r} reached {alert.threshold}%{scope}",
        message=(
            f"Budget {budget.name!r}{scope} has used {alert.used} of {alert.limit} {budget.unit} "
            f"({alert.threshold}% threshold) in the period that started {alert.period_start:%Y-%m-%d %H:%M %Z}.\n"
            f"It {'refuses' if budget.blocks else 'only alerts on'} calls past its limit.\n"
        ),
        from_email=None,
        recipient_list=list(budget.notify_emails),
    )
    BudgetAlert.objects.for_tenant(alert.tenant).filter(pk=alert.pk).update(emailed_at=timezone.now())
    return True
