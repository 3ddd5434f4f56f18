"""Writes to budgets: configuration (audited) and the reservation protocol on the ledger.

The protocol keeps two invariants (docs/DESIGN.md 2 and 3):

- No overspend: a reservation is admitted only if every applicable `block` budget has room for its
  worst-case cost (settled + reserved + amount <= limit), checked and written atomically while
  every counter involved is row-locked.
- Ledger truth: every change to a counter is written with a ledger entry of the same deltas in the
  same transaction, so each counter equals the sum of its entries (`manage.py budgets_verify`).

The hot path is one statement each way: `budget_reserve` is `SELECT * FROM budgets_reserve(…)`
and `budget_settle`/`budget_release` are `SELECT … FROM budgets_finish(…)`, PL/pgSQL functions
installed by migrations 0008 and 0009 (the SQL is there; 0009 has the current bodies). A function
runs in the caller's transaction, or in its own when the caller has none (autocommit): all of it
commits or none of it, in one round trip, with no BEGIN or COMMIT sent.

Why one `budgets_reserve` call is exact under any concurrency (READ COMMITTED):

1. It reads the tenant's enabled budgets itself and derives each counter key (budget, period
   start, scope value); the caller only supplies the period starts in the tenant's zone and the
   reservation's row. Nothing it decides on comes from a cache.
2. It inserts the counters that do not exist yet (`ON CONFLICT DO NOTHING`) before locking
   anything, in key order. A counter another call is inserting at that moment makes the insert
   wait for that call to commit, so the next step sees it.
3. It locks every counter with `SELECT … FOR NO KEY UPDATE`, ordered by key. That statement reads
   the latest committed settled and reserved of each row as it locks it (PostgreSQL re-reads a row
   it had to wait for), and the budget's limit as of that statement. Nothing can change a locked
   counter until the call commits, so `settled + reserved + amount <= limit` checked on those
   figures stays true when the writes land.
4. Only if every `block` budget passes (an alert-only budget never refuses; a require_approval
   one only when a reviewer let the call through) does it insert the reservation, its lines and
   one ledger entry per counter, add the amounts to the counters and insert the alerts the hold
   crossed; otherwise it writes nothing and returns the figures the refusal was decided on.

Deadlocks: every service takes its locks in one global order — first the reservation (settle,
release, expire; a new reservation's row is its own), then counters by key (budget id, period
start, scope value), never the budget or tenant rows (`NO KEY UPDATE` leaves the key-share locks
that inserting a ledger entry, line or counter takes on its parents free). Counter keys are known
before the counters exist, which is why the order is by key rather than by id, and new counters
are inserted in key order before any lock is taken.

`budgets_finish` locks the reservation, checks its status (a second settle or release is a 409),
locks its counters in key order, and writes the counters, one ledger entry each and the
reservation's new state; a settlement also inserts the alerts its spend crossed. The caller
passes the reservation's id and tenant, so the gateway and the REST API settle without reading
the reservation first.

Batches (migration 0010): reservations made outside a transaction while other threads of the
process are reserving are admitted together by `budgets_reserve_many` (budgets.combine), and the
gateway's recorder ends a batch of calls' reservations with `budgets_finish_many`
(`finished_ahead`); both take the union of their locks in the order above before running the
single-call function for each item, so one commit serves many calls and nothing else changes.

No cache of budget configuration: reading the few budget rows of a tenant inside the function
costs an index scan and no round trip, whereas a per-process cache would have to be checked
against the database (or a version in Redis, bumped after commit, which leaves a window in which
a just-enabled budget is missed) on every call to stay exact. The model a name resolves to comes
from catalog.selectors (pins are cached there); its prices are recorded on the reservation.

Alerts: a crossing is recorded by the function in the transaction of the change (a BudgetAlert
row, unique per budget, period, member and threshold, so it fires once). Its audit row, live event,
email and webhook follow right after (`_announce_alerts`): a process that dies in between keeps
the alert but loses those.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import URLValidator, validate_email
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Model, Q
from django.http import Http404
from django.utils import timezone

from agents.models import Agent, AgentVersion, Run
from budgets import combine, events, selectors
from budgets.errors import BudgetExceededError, BudgetFieldError, TokenCapExceededError
from budgets.models import Budget, BudgetAlert, BudgetCounter, LedgerEntry, Reservation, period_bounds
from budgets.selectors import Applicable, resolve_model
from catalog import crypto
from catalog.clients.base import estimate_tokens
from catalog.models import LanguageModel
from tenants.audit import Actor
from tenants.errors import ConflictError
from tenants.models import ApiKey, Tenant
from tenants.net import UnsafeUrlError
from tenants.queue import enqueue
from tenants.services import audit_record
from tenants.webhooks import WebhookFailedError, check_webhook_url, post_signed

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


def _lock_counters(tenant: Tenant, keys: Q) -> dict[Any, BudgetCounter]:
    """SELECT … FOR NO KEY UPDATE the counters, in key order (budget, period start, scope value:
    the one lock order every service and the SQL functions use)."""
    # of=("self",): lock the counters only, not the joined budgets (that would serialise every
    # reservation on a budget, whatever its scope value). NO KEY UPDATE, like an UPDATE: it does
    # not block the key-share locks that inserting a ledger entry takes on its counter.
    counters = (
        BudgetCounter.objects.for_tenant(tenant)
        .select_for_update(of=("self",), no_key=True)
        .select_related("budget")
        .filter(keys)
    )
    return {c.pk: c for c in counters.order_by("budget_id", "period_start", "scope_value")}


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


class Hold(NamedTuple):
    """One row of `budgets_reserve`: a budget that counts the call (as read under the lock), its
    counter as locked (before this call's hold), the amount held in the budget's unit, the
    verdict (`fits`, `over`: a reviewer let the call past a full require_approval budget,
    `refused`, or `missing`: retry) and the ids of the alerts the hold fired."""

    budget_id: UUID
    name: str
    scope: str
    period: str
    unit: str
    limit: int
    thresholds: list[int]
    on_exceed: str
    enabled: bool
    agent_id: UUID | None
    meter_anonymous: bool
    notify_emails: list[str]
    webhook_url: str
    counter_id: UUID
    period_start: datetime
    scope_value: str
    settled: int
    reserved: int
    amount: int
    verdict: str
    alerts: list[UUID] | None

    @property
    def blocks(self) -> bool:
        return self.enabled and self.on_exceed != Budget.OnExceed.ALERT_ONLY

    def applicable(self, tenant: Tenant, resets_at: datetime | None) -> tuple[Applicable, BudgetCounter]:
        """The budget and its counter as model instances (for a refusal's message)."""
        budget = _instance(
            Budget,
            {
                "id": self.budget_id,
                "tenant_id": tenant.pk,
                **{f: getattr(self, f) for f in HOLD_BUDGET_FIELDS},
            },
        )
        budget.tenant = tenant
        counter = _instance(
            BudgetCounter,
            {
                "id": self.counter_id,
                "tenant_id": tenant.pk,
                "budget_id": self.budget_id,
                "period_start": self.period_start,
                "scope_value": self.scope_value,
                "settled": self.settled,
                "reserved": self.reserved,
            },
        )
        counter.budget = budget
        a = Applicable(budget=budget, period_start=self.period_start, resets_at=resets_at, scope_value=self.scope_value)
        return a, counter


HOLD_BUDGET_FIELDS = (
    "name",
    "scope",
    "period",
    "unit",
    "limit",
    "thresholds",
    "on_exceed",
    "enabled",
    "agent_id",
    "meter_anonymous",
    "notify_emails",
    "webhook_url",
)
_HOLD_COLUMNS = ", ".join(f'"{name}"' for name in Hold._fields)
RESERVE_SQL = f"SELECT {_HOLD_COLUMNS} FROM budgets_reserve(%s::jsonb, %s, %s, %s)"  # noqa: S608 (fixed names)
# The batched form (migration 0010): the item's index, then the same columns.
RESERVE_MANY_SQL = (
    "SELECT idx, "  # noqa: S608 (fixed names)
    + ", ".join(f'(hold)."{name}"' for name in Hold._fields)
    + " FROM budgets_reserve_many(%s::jsonb)"
)
RESERVATION_COLUMNS = [(f.attname, f.column) for f in Reservation._meta.concrete_fields]
FINISH_SQL = (
    "SELECT f.outcome, f.model_name, f.alerts, "  # noqa: S608 (fixed names)
    + ", ".join(f'(f.reservation)."{column}"' for _, column in RESERVATION_COLUMNS)
    + " FROM budgets_finish(%s, %s, %s, %s, %s, %s, %s, %s, %s) f"
)


def tightest(holds: Iterable[Hold], resets: dict[str, datetime | None]) -> dict[str, Any] | None:
    """Of the budgets that can refuse (block, require_approval), the one with the least fraction of
    its limit left once this reservation is held, from the counters as locked and written (no
    query): {id, name, unit, limit, remaining, resets_at, held, scope, scope_value}. `remaining` =
    limit - settled - reserved in the budget's unit, this call's hold (`held`) included; below
    zero only when a reviewer let a call past a full require_approval budget. None when none
    applied. `resets`: when each period (day, month, total) of the call ends."""
    best: tuple[float, dict[str, Any]] | None = None
    for hold in holds:
        if not hold.blocks:
            continue
        remaining = hold.limit - hold.settled - hold.reserved - hold.amount
        fraction = remaining / hold.limit
        if best is None or fraction < best[0]:
            resets_at = resets[hold.period]
            best = (
                fraction,
                {
                    "id": str(hold.budget_id),
                    "name": hold.name,
                    "unit": hold.unit,
                    "limit": hold.limit,
                    "remaining": remaining,
                    "resets_at": resets_at.isoformat() if resets_at else None,
                    "held": hold.amount,
                    "scope": hold.scope,
                    "scope_value": hold.scope_value,
                },
            )
    return best[1] if best else None


def _instance[M: Model](model: type[M], row: dict[str, Any]) -> M:
    """A model instance from a row the SQL functions returned (as if loaded by the ORM); the
    fields the row does not carry are deferred (read from the database if ever touched)."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in row]
    return model.from_db(connection.alias, names, [row[name] for name in names])


def _fetch(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _reserve_rows(tenant: Tenant, record: str, day: datetime, month: datetime, allow_over: list[str]) -> list[Any]:
    """`budgets_reserve`'s rows for one reservation: made alone, or, outside a transaction and
    while other threads of this process are reserving, in one batch with theirs (budgets.combine)."""
    params = [record, day, month, allow_over]
    if not combine.combinable():
        return _fetch(RESERVE_SQL, params)
    item = (
        f'{{"reservation":{record},"day":"{day.isoformat()}","month":"{month.isoformat()}",'
        f'"allow_over":{json.dumps(allow_over)}}}'
    )
    return combine.reservations.run(
        tenant.pk, item, lambda: _fetch(RESERVE_SQL, params), lambda items: _fetch(RESERVE_MANY_SQL, [items])
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
    but never refuse. The admitted reservation's `tightest` is the tightest budget after its hold.

    Queries: resolving a model given by name (catalog.selectors.pinned_model), then one
    statement, `budgets_reserve` (see the module docstring); a crossed threshold adds its alert's
    audit row (and one read of the new alerts)."""
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
    reservation = Reservation(
        tenant=tenant,
        model=model,
        input_tokens=input_tokens,
        input_tokens_estimated=estimated,
        max_output_tokens=max_output_tokens,
        worst_case_micros=model.cost_micros(input_tokens=input_tokens, output_tokens=max_output_tokens),
        worst_case_tokens=input_tokens + max_output_tokens,
        input_price=model.input_price,
        cached_input_price=model.cached_input_price,
        output_price=model.output_price,
        end_user_id=end_user_id,
        session_id=session_id,
        agent=agent,
        api_key=api_key,
        run=run,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.BUDGET_RESERVATION_TTL_SECONDS),
    )
    # The periods every budget of the tenant counts in, from the tenant's zone (known: no query).
    zone = selectors.tenant_zone(tenant)
    day, day_resets = period_bounds(Budget.Period.DAY, now, zone)
    month, month_resets = period_bounds(Budget.Period.MONTH, now, zone)
    resets = {"day": day_resets, "month": month_resets, "total": None}
    record = json.dumps(
        {f.column: getattr(reservation, f.attname) for f in Reservation._meta.concrete_fields}, default=str
    )
    for _ in range(2):
        holds = [Hold._make(row) for row in _reserve_rows(tenant, record, day, month, list(allow_over))]
        if not (holds and holds[0].verdict == "missing"):
            break
    else:
        raise ConflictError("A budget changed during the reservation; retry.")

    # Holds come by budget name (then id), as applicable_budgets orders them: the first refusal
    # named is the first exhausted budget by name.
    for hold in holds:
        if hold.verdict == "refused":
            logger.info("budget %s refused %s %s for %s", hold.budget_id, hold.amount, hold.unit, hold.scope_value)
            names = {Budget.Scope.AGENT.value: agent.name} if agent else {}
            if api_key is not None:
                names[Budget.Scope.API_KEY.value] = api_key.name
            a, counter = hold.applicable(tenant, resets[hold.period])
            raise _exceeded(a, counter, hold.amount, names)
        if hold.verdict == "over":
            logger.info("budget %s let %s %s through, approved by a reviewer", hold.budget_id, hold.amount, hold.unit)
    reservation.tightest = tightest(holds, resets)
    _announce_alerts(tenant, [alert for hold in holds for alert in hold.alerts or ()])
    return reservation


def _reference(reservation: Reservation | UUID | str, tenant: Tenant | None) -> tuple[Tenant, UUID]:
    if isinstance(reservation, Reservation):
        return tenant or reservation.tenant, reservation.pk
    if tenant is None:
        raise TypeError("A reservation given by its id needs its tenant.")
    try:
        return tenant, reservation if isinstance(reservation, UUID) else UUID(str(reservation))
    except ValueError as exc:  # a malformed id is as absent as someone else's
        raise Http404("No reservation matches the given query.") from exc


def _finish(
    reservation: Reservation | UUID | str,
    tenant: Tenant | None,
    *,
    kind: str,
    at: datetime | None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_input_tokens: int = 0,
    estimated: bool = False,
    note: str = "",
) -> Reservation:
    """Settle, release or expire one reservation in one statement (`budgets_finish`)."""
    tenant, pk = _reference(reservation, tenant)
    when = at or timezone.now()
    params = [tenant.pk, pk, kind, input_tokens, output_tokens, cached_input_tokens, estimated, when, note]
    row = _ahead(pk, params)
    if row is None and combine.combinable():
        # Ended with the settlements other threads of the process are making now (budgets.combine).
        item = json.dumps(
            {
                "reservation": str(pk),
                "kind": kind,
                "input": input_tokens,
                "output": output_tokens,
                "cached": cached_input_tokens,
                "estimated": estimated,
                "at": when.isoformat(),
                "note": note,
            }
        )
        (row,) = combine.endings.run(
            tenant.pk,
            item,
            lambda: _fetch(FINISH_SQL, params),
            lambda items: _fetch(FINISH_MANY_SQL, [tenant.pk, items]),
        )
    elif row is None:
        (row,) = _fetch(FINISH_SQL, params)
    outcome, model_name, alerts, *values = row
    if outcome == "not_found":
        raise Http404("No reservation matches the given query.")
    if outcome != "done":
        raise ConflictError(f"Reservation {pk} is already {outcome}.", status=outcome)
    finished = Reservation.from_db(connection.alias, [attname for attname, _ in RESERVATION_COLUMNS], values)
    finished.tenant = tenant
    given = reservation if isinstance(reservation, Reservation) else None
    if given is not None and "model" in given._state.fields_cache:
        finished.model = given.model
    else:
        finished.model = _instance(
            LanguageModel, {"id": finished.model_id, "tenant_id": tenant.pk, "model_id": model_name}
        )
    _announce_alerts(tenant, alerts or [])
    return finished


# --- Several reservations ended in one statement (the gateway's recorder) ----------------------


@dataclass(frozen=True)
class Ending:
    """How one reservation is to end: settled at this usage, or released (`usage_free`)."""

    reservation_id: UUID
    kind: str  # "settle" or "release"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    estimated: bool = False


FINISH_MANY_SQL = (
    "SELECT f.idx, f.outcome, f.model_name, f.alerts, "  # noqa: S608 (fixed names)
    + ", ".join(f'(f.reservation)."{column}"' for _, column in RESERVATION_COLUMNS)
    + " FROM budgets_finish_many(%s, %s::jsonb) f"
)
_finished: contextvars.ContextVar[dict[UUID, tuple[list[Any], tuple[Any, ...]]] | None] = contextvars.ContextVar(
    "budgets_finished_ahead", default=None
)


def _ahead(pk: UUID, params: list[Any]) -> tuple[Any, ...] | None:
    """The row `budgets_finish_many` already wrote for this ending, when `finished_ahead` ended it
    with these very figures (the time aside); else None: it is ended now, alone."""
    done = _finished.get()
    if not done or pk not in done:
        return None
    figures, row = done.pop(pk)
    return row if row and figures == params[2:7] else None


@contextlib.contextmanager
def finished_ahead(tenant_id: Any, endings: list[Ending], at: datetime | None = None) -> Iterator[None]:
    """End several reservations of a tenant in one statement and one commit (`budgets_finish_many`,
    migration 0010) before the block; in the block, `budget_settle`/`budget_release` of one of them
    with the same figures returns what that statement wrote (and raises the same 404 or 409 it would
    have) instead of ending it again. Must run outside a transaction, so that the endings are
    committed, durably, before anything relies on them. If the statement fails, nothing was written
    and each reservation is ended alone in the block, as without this."""
    done: dict[UUID, tuple[list[Any], tuple[Any, ...]]] = {}
    items: list[dict[str, Any]] = []
    when = at or timezone.now()
    for ending in endings:
        try:
            figures = [
                ending.kind,
                _check_tokens("input_tokens", ending.input_tokens),
                _check_tokens("output_tokens", ending.output_tokens),
                _check_tokens("cached_input_tokens", ending.cached_input_tokens),
                ending.estimated,
            ]
        except BudgetFieldError:
            continue  # ended alone, where the same check refuses it
        items.append(
            {
                "reservation": str(ending.reservation_id),
                "kind": ending.kind,
                "input": figures[1],
                "output": figures[2],
                "cached": figures[3],
                "estimated": figures[4],
                "at": when.isoformat(),
                "note": "",
            }
        )
        done[ending.reservation_id] = (figures, ())
    if items:
        try:
            rows = _fetch(FINISH_MANY_SQL, [tenant_id, json.dumps(items)])
        except DatabaseError:
            logger.exception("budgets: %d reservations could not be ended together; each is ended alone", len(items))
            done = {}
        else:
            for idx, *row in rows:
                pk = UUID(items[idx]["reservation"])
                done[pk] = (done[pk][0], tuple(row))
    token = _finished.set({**(_finished.get() or {}), **done})  # an outer block's (another tenant's) stay
    try:
        yield
    finally:
        _finished.reset(token)


def budget_settle(
    *,
    reservation: Reservation | UUID | str,
    tenant: Tenant | None = None,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    estimated: bool = False,
    at: datetime | None = None,
    note: str = "",
) -> Reservation:
    """Replace the reservation's hold with what the call really cost, in every counter it holds.
    `reservation` is the Reservation, or its id with its `tenant` (no read of it first).

    The actual cost may exceed the reservation (a provider that overran max output): it is
    recorded as it happened. An expired reservation still settles (the spend happened; its hold
    was already released, so only the spend is added). Settling a settled or released reservation
    is a ConflictError (409); an id the tenant has no reservation under is Http404. Returns the
    reservation as written. One statement (`budgets_finish`), plus an alert's audit row when the
    spend crossed a threshold."""
    return _finish(
        reservation,
        tenant,
        kind=LedgerEntry.Kind.SETTLE.value,
        at=at,
        input_tokens=_check_tokens("input_tokens", input_tokens),
        output_tokens=_check_tokens("output_tokens", output_tokens),
        cached_input_tokens=_check_tokens("cached_input_tokens", cached_input_tokens),
        estimated=estimated,
        note=note,
    )


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


def budget_release(
    *, reservation: Reservation | UUID | str, tenant: Tenant | None = None, at: datetime | None = None
) -> Reservation:
    """The call failed before anything was spent: drop the hold. `reservation` is the Reservation,
    or its id with its `tenant`. Releasing a reservation that is not open is a ConflictError (409);
    an unknown id is Http404. One statement (`budgets_finish`)."""
    return _finish(reservation, tenant, kind=LedgerEntry.Kind.RELEASE.value, at=at)


def budget_hold_extend(*, tenant: Tenant, reservation_ids: Iterable[Any], seconds: float) -> int:
    """Keep open reservations held `seconds` from now (a call that outlives the TTL: a long
    stream, a slow provider), so `budget_expire_stale` does not release a hold whose call still
    runs; returns how many were extended. Settled, released or expired ones are left as they are.
    One UPDATE."""
    ids = [str(pk) for pk in reservation_ids]
    if not ids:
        return 0
    until = timezone.now() + timedelta(seconds=seconds)
    return (
        Reservation.objects.for_tenant(tenant)
        .filter(pk__in=ids, status=Reservation.Status.OPEN, expires_at__lt=until)
        .update(expires_at=until)
    )


def budget_expire_stale(*, at: datetime | None = None, batch: int = 500) -> int:
    """Release every open reservation past its `expires_at` as `expire` entries; returns how many.
    A run engine's reservation is settled at its worst case instead (its worker died mid-call).

    Each reservation in its own transaction: holding one reservation's counter locks while taking
    the next one's would break the single lock order (counters by key) and could deadlock with a
    concurrent reserve. A reservation another worker holds locked is skipped (it is settling or
    expiring it)."""
    now = at or timezone.now()
    expired = 0
    while True:
        due = list(
            Reservation.objects.across_tenants("beat's expiry sweep")
            .filter(status=Reservation.Status.OPEN, expires_at__lt=now)
            .order_by("expires_at")
            .values_list("pk", flat=True)[:batch]
        )
        done = 0
        for pk in due:
            with transaction.atomic():
                reservation = (
                    Reservation.objects.across_tenants("beat's expiry sweep")
                    .filter(pk=pk, status=Reservation.Status.OPEN, expires_at__lt=now)
                    .select_for_update(skip_locked=True, of=("self",), no_key=True)
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
                    _finish(reservation, None, kind=LedgerEntry.Kind.EXPIRE.value, at=now)
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
    Called with the counter locked, so no other transaction can fire the same alert meanwhile.
    (budget_adjust's; a reservation and a settlement record theirs in their SQL function, with the
    same rule, and announce them with `_announce_alerts`.)"""
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
        _alert_effects(alert)
        alerts.append(alert)
    return alerts


def _announce_alerts(tenant: Tenant, alert_ids: list[Any]) -> None:
    """The audit row, live event, email and webhook of alerts a SQL function recorded (each once:
    the function inserted the alert only if its crossing had not fired). One read of the alerts
    and an audit row each, in one transaction; nothing when there are none (the common case)."""
    if not alert_ids:
        return
    with transaction.atomic():
        alerts = (
            BudgetAlert.objects.for_tenant(tenant)
            .filter(pk__in=alert_ids)
            .select_related("budget")
            .order_by("budget__name", "budget_id", "threshold")
        )
        for alert in alerts:
            alert.tenant = alert.budget.tenant = tenant
            _alert_effects(alert)


def _alert_effects(alert: BudgetAlert) -> None:
    budget = alert.budget
    audit_record(
        tenant=alert.tenant,
        actor=SYSTEM,
        action="budget.alert",
        target=budget,
        after={
            "threshold": alert.threshold,
            "scope_value": alert.scope_value,
            "period_start": alert.period_start.isoformat(),
            "used": alert.used,
            "limit": alert.limit,
            "unit": budget.unit,
        },
    )
    events.send_budget_alert(alert)
    if budget.notify_emails:
        _email_after_commit(alert)
    if budget.webhook_url:
        _webhook_after_commit(alert)


def _email_after_commit(alert: BudgetAlert) -> None:
    enqueue("budgets.tasks.email_budget_alert", str(alert.tenant_id), str(alert.pk))


def _webhook_after_commit(alert: BudgetAlert) -> None:
    enqueue("budgets.tasks.deliver_budget_alert_webhook", str(alert.tenant_id), str(alert.pk))


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
