"""The reservation protocol on the ledger, against real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from budgets import services
from budgets.errors import BudgetExceededError, BudgetFieldError, TokenCapExceededError
from budgets.models import Budget, BudgetAlert, BudgetCounter, LedgerEntry, Reservation
from budgets.selectors import budget_usage, ledger_discrepancies
from budgets.tests.factories import SYSTEM, demo_model, make_budget
from catalog.models import LanguageModel
from tenants import rls
from tenants.errors import ConflictError
from tenants.models import AuditEvent
from tenants.testing import Cast, make_key

pytestmark = pytest.mark.django_db

# The demo model costs 0.50 USD per million input tokens and 1.50 per million output tokens:
# 1 000 input + 1 000 output tokens cost 500 + 1 500 = 2 000 micro-USD at worst.
WORST_1K_1K = 2_000


def reserve(cast: Cast, **kwargs: object) -> Reservation:
    defaults: dict[str, object] = {
        "tenant": cast.acme,
        "model": "default",
        "input_tokens": 1000,
        "max_output_tokens": 1000,
    }
    return services.budget_reserve(**(defaults | kwargs))  # type: ignore[arg-type]


def counter(budget: Budget) -> BudgetCounter:
    return BudgetCounter.objects.for_tenant(budget.tenant).get(budget=budget)


def test_it_reserves_the_worst_case_cost_of_the_pinned_model(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10_000)
    reservation = reserve(cast)
    assert reservation.worst_case_micros == WORST_1K_1K
    assert reservation.worst_case_tokens == 2_000
    assert reservation.model.model_id == demo_model(cast.acme).model_id
    assert reservation.status == Reservation.Status.OPEN
    assert (counter(budget).reserved, counter(budget).settled) == (WORST_1K_1K, 0)
    assert list(LedgerEntry.objects.for_tenant(cast.acme).values_list("kind", "reserved_delta")) == [
        ("reserve", WORST_1K_1K)
    ]


def test_it_estimates_input_tokens_from_text_and_says_so(cast: Cast) -> None:
    make_budget(cast.acme, limit=10_000, unit=Budget.Unit.TOKENS)
    reservation = services.budget_reserve(tenant=cast.acme, model="default", input_text="x" * 400, max_output_tokens=50)
    assert (reservation.input_tokens, reservation.input_tokens_estimated) == (100, True)
    assert reservation.worst_case_tokens == 150


def test_it_accepts_an_exact_model_id_and_refuses_an_unknown_one_naming_model(cast: Cast) -> None:
    exact = demo_model(cast.acme).model_id
    assert reserve(cast, model=exact).model.model_id == exact
    with pytest.raises(BudgetFieldError) as refused:
        reserve(cast, model="no-such-model")
    assert refused.value.field == "model"


def test_it_refuses_an_unpriced_model(cast: Cast) -> None:
    model = demo_model(cast.acme)
    LanguageModel.objects.filter(pk=model.pk).update(input_price=None)
    with pytest.raises(BudgetFieldError) as refused:
        reserve(cast, model=model.model_id)
    assert refused.value.field == "model" and "unpriced" in refused.value.message


def test_settle_moves_the_hold_to_spend_at_the_real_cost(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10_000)
    reservation = reserve(cast)
    settled = services.budget_settle(reservation=reservation, input_tokens=400, output_tokens=100)
    assert settled.status == Reservation.Status.SETTLED
    assert settled.actual_micros == 200 + 150
    assert (counter(budget).reserved, counter(budget).settled) == (0, 350)
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_settle_records_an_overrun_as_it_happened(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10_000)
    reservation = reserve(cast, max_output_tokens=10)
    services.budget_settle(reservation=reservation, input_tokens=1000, output_tokens=2000)
    assert counter(budget).settled == 500 + 3000


def test_it_refuses_a_second_settle_and_a_release_after_settle(cast: Cast) -> None:
    make_budget(cast.acme, limit=10_000)
    reservation = reserve(cast)
    services.budget_settle(reservation=reservation, input_tokens=1, output_tokens=1)
    with pytest.raises(ConflictError):
        services.budget_settle(reservation=reservation, input_tokens=1, output_tokens=1)
    with pytest.raises(ConflictError):
        services.budget_release(reservation=reservation)


def test_release_returns_the_hold_and_spends_nothing(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=WORST_1K_1K)
    first = reserve(cast)
    with pytest.raises(BudgetExceededError):
        reserve(cast)
    services.budget_release(reservation=first)
    assert (counter(budget).reserved, counter(budget).settled) == (0, 0)
    reserve(cast)  # the room is back
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_a_cancelled_call_settles_its_input_cost_only(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10_000)
    reservation = reserve(cast)
    services.budget_settle_cancelled(reservation=reservation)
    assert (counter(budget).reserved, counter(budget).settled) == (0, 500)


def test_a_stale_reservation_expires_and_frees_the_budget(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=WORST_1K_1K)
    start = datetime.now(UTC)
    crashed = reserve(cast, at=start)
    assert services.budget_expire_stale(at=start + timedelta(seconds=60)) == 0  # inside the 120 s TTL
    assert services.budget_expire_stale(at=start + timedelta(seconds=121)) == 1
    crashed.refresh_from_db()
    assert crashed.status == Reservation.Status.EXPIRED
    assert counter(budget).reserved == 0
    assert LedgerEntry.objects.for_tenant(cast.acme).filter(kind="expire").get().reserved_delta == -WORST_1K_1K
    reserve(cast, at=start + timedelta(seconds=122))


def test_a_run_engines_stale_reservation_is_counted_at_its_worst_case_not_forgotten(cast: Cast) -> None:
    """Its worker died during the model call: the provider may have billed it, so a hard cap keeps it."""
    from agents.models import Agent, Run

    budget = make_budget(cast.acme, limit=10 * WORST_1K_1K)
    agent = Agent.objects.for_tenant(cast.acme).select_related("current_version").get(name="Support agent")
    assert agent.current_version is not None
    run = Run.objects.create(tenant=cast.acme, agent=agent, agent_version=agent.current_version, input="hi")
    start = datetime.now(UTC)
    lost = services.budget_reserve(
        tenant=cast.acme, model="default", input_tokens=1000, max_output_tokens=1000, run=run, at=start
    )
    assert services.budget_expire_stale(at=start + timedelta(seconds=121)) == 1
    lost.refresh_from_db()
    assert (lost.status, lost.usage_estimated, lost.actual_micros) == ("settled", True, WORST_1K_1K)
    assert (counter(budget).reserved, counter(budget).settled) == (0, WORST_1K_1K)
    entry = LedgerEntry.objects.for_tenant(cast.acme).get(kind="settle")
    assert entry.settled_delta == WORST_1K_1K and "worker lost" in entry.note
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_a_late_settle_of_an_expired_reservation_still_records_the_spend(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10_000)
    start = datetime.now(UTC)
    late = reserve(cast, at=start)
    services.budget_expire_stale(at=start + timedelta(seconds=500))
    services.budget_settle(reservation=late, input_tokens=1000, output_tokens=0)
    assert (counter(budget).reserved, counter(budget).settled) == (0, 500)
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_the_refusal_names_the_first_exhausted_budget_with_its_figures(cast: Cast) -> None:
    make_budget(cast.acme, name="a roomy one", limit=1_000_000)
    tight = make_budget(cast.acme, name="daily cap", limit=3_000, period=Budget.Period.DAY)
    at = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    reserve(cast, at=at)
    with pytest.raises(BudgetExceededError) as refused:
        reserve(cast, at=at)
    error = refused.value
    assert error.status_code == 402
    assert error.extra | {} == {
        "budget": str(tight.pk),
        "budget_name": "daily cap",
        "scope": "tenant",
        "scope_value": "",
        "period": "day",
        "limit": 3_000,
        "used": 0,
        "reserved": WORST_1K_1K,
        "requested": WORST_1K_1K,
        "remaining": 3_000 - WORST_1K_1K,
        "unit": "usd_micros",
        "on_exceed": "block",
        "resets_at": "2026-03-11T00:00:00+01:00",
    }
    # A sentence a client developer reads, in UTC and in the tenant's zone (Acme's is Paris).
    assert error.message == (
        "Budget 'daily cap' (tenant-wide, daily) has too little left for the tenant: $0.0000 of $0.0030 spent, "
        "$0.0020 more reserved by calls in flight, $0.0010 left; this call needs up to $0.0020. "
        "It resets at 2026-03-10 23:00 UTC (2026-03-11 00:00 Europe/Paris)."
    )
    # Nothing of the refused call was written: the roomy budget holds only the first call.
    assert Reservation.objects.for_tenant(cast.acme).count() == 1
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_an_alert_only_budget_counts_but_never_refuses(cast: Cast) -> None:
    soft = make_budget(cast.acme, limit=100, on_exceed=Budget.OnExceed.ALERT_ONLY)
    reserve(cast)
    reserve(cast)
    assert counter(soft).reserved == 2 * WORST_1K_1K


def test_per_end_user_budgets_count_each_end_user_separately(cast: Cast) -> None:
    make_budget(cast.acme, scope=Budget.Scope.END_USER, limit=WORST_1K_1K)
    reserve(cast, end_user_id="ann")
    reserve(cast, end_user_id="ben")
    with pytest.raises(BudgetExceededError) as refused:
        reserve(cast, end_user_id="ann")
    assert refused.value.extra["scope_value"] == "ann"


def test_per_session_budgets_count_each_session_separately(cast: Cast) -> None:
    make_budget(cast.acme, scope=Budget.Scope.SESSION, limit=WORST_1K_1K)
    reserve(cast, session_id="s1")
    reserve(cast, session_id="s2")
    with pytest.raises(BudgetExceededError):
        reserve(cast, session_id="s2")


def test_a_budget_narrowed_to_an_agent_ignores_other_requests(cast: Cast) -> None:
    from agents.models import Agent

    agent = Agent.objects.for_tenant(cast.acme).get(name="Support agent")
    make_budget(cast.acme, limit=WORST_1K_1K, agent=agent)
    reserve(cast, agent=agent, input_tokens=10, max_output_tokens=10)
    reserve(cast)
    reserve(cast)  # without the agent: not counted


def test_a_day_budget_starts_from_zero_at_the_tenants_midnight(cast: Cast) -> None:
    # Acme's time zone decides when its day turns over, not UTC.
    cast.acme.timezone = "America/New_York"
    cast.acme.save(update_fields=["timezone"])
    make_budget(cast.acme, limit=WORST_1K_1K, period=Budget.Period.DAY)
    late_evening = datetime(2026, 3, 10, 3, 59, tzinfo=UTC)  # 23:59 on the 9th in New York
    reserve(cast, at=late_evening)
    with pytest.raises(BudgetExceededError) as refused:
        reserve(cast, at=late_evening + timedelta(seconds=30))
    assert refused.value.extra["resets_at"] == "2026-03-10T00:00:00-04:00"
    reserve(cast, at=late_evening + timedelta(minutes=1))  # 00:00 on the 10th in New York


def test_a_month_budget_starts_from_zero_on_the_first_in_the_tenants_zone(cast: Cast) -> None:
    cast.acme.timezone = "Asia/Tokyo"
    cast.acme.save(update_fields=["timezone"])
    make_budget(cast.acme, limit=WORST_1K_1K, period=Budget.Period.MONTH)
    reserve(cast, at=datetime(2026, 1, 31, 14, 59, tzinfo=UTC))  # 23:59 on 31 January in Tokyo
    with pytest.raises(BudgetExceededError):
        reserve(cast, at=datetime(2026, 1, 31, 14, 59, 30, tzinfo=UTC))
    reserve(cast, at=datetime(2026, 1, 31, 15, 0, tzinfo=UTC))  # 1 February in Tokyo
    assert BudgetCounter.objects.for_tenant(cast.acme).count() == 2


def test_a_total_budget_never_resets(cast: Cast) -> None:
    make_budget(cast.acme, limit=WORST_1K_1K, period=Budget.Period.TOTAL)
    reserve(cast, at=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(BudgetExceededError) as refused:
        reserve(cast, at=datetime(2027, 6, 1, tzinfo=UTC))
    assert refused.value.extra["resets_at"] is None


def test_each_threshold_fires_once_per_period_and_scope_value(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10 * WORST_1K_1K, unit=Budget.Unit.USD_MICROS)
    for _ in range(7):
        services.budget_release(reservation=reserve(cast))  # up to 10 % and back down, repeatedly
    assert not BudgetAlert.objects.for_tenant(cast.acme).exists()
    held = [reserve(cast) for _ in range(8)]  # 80 %: crosses 70 and 80 together
    assert sorted(BudgetAlert.objects.for_tenant(cast.acme).values_list("threshold", flat=True)) == [70, 80]
    services.budget_release(reservation=held.pop())  # back to 70 %
    reserve(cast)  # 80 % again: no second alert
    reserve(cast)
    reserve(cast)  # 100 %
    thresholds = sorted(BudgetAlert.objects.for_tenant(cast.acme).values_list("threshold", flat=True))
    assert thresholds == [70, 80, 100]
    audited = AuditEvent.objects.for_tenant(cast.acme).filter(action="budget.alert", target_id=str(budget.pk))
    assert sorted((e.after or {})["threshold"] for e in audited) == [70, 80, 100]


def test_the_token_caps_of_an_agent_and_a_key_refuse_before_any_reservation(cast: Cast) -> None:
    from agents.models import Agent

    agent = Agent.objects.for_tenant(cast.acme).select_related("current_version").get(name="Support agent")
    assert agent.current_version is not None and agent.current_version.max_tokens_per_request == 1024
    with pytest.raises(TokenCapExceededError) as refused:
        reserve(cast, agent=agent, input_tokens=100, max_output_tokens=1000)
    assert "Support agent" in refused.value.message and refused.value.extra["cap"] == 1024
    key, _ = make_key(cast.acme, ["budgets:reserve"])
    key.max_tokens_per_request = 500
    key.save(update_fields=["max_tokens_per_request"])
    reserve(cast, api_key=key, input_tokens=100, max_output_tokens=400)
    with pytest.raises(TokenCapExceededError):
        reserve(cast, api_key=key, input_tokens=101, max_output_tokens=400)
    assert Reservation.objects.for_tenant(cast.acme).count() == 1


def test_budgets_verify_catches_a_tampered_counter(cast: Cast, capsys: pytest.CaptureFixture[str]) -> None:
    budget = make_budget(cast.acme, limit=10_000)
    services.budget_settle(reservation=reserve(cast), input_tokens=10, output_tokens=10)
    call_command("budgets_verify")
    assert "every one equals its ledger" in capsys.readouterr().out
    BudgetCounter.objects.filter(budget=budget).update(settled=1)
    # As an operator runs it: a command starts with no tenant (with TENANT_RLS on, a query there
    # sees no tenant's rows), so it reads every tenant's, or --tenant's, saying so.
    for arguments in ([], ["--tenant", cast.acme.slug]):
        with rls.no_tenant(), pytest.raises(CommandError) as failed:
            call_command("budgets_verify", *arguments)
        assert "1 of 1 counters differ" in str(failed.value)
        assert "settled 1 but ledger 20" in capsys.readouterr().err


def test_the_database_refuses_to_edit_or_delete_ledger_entries(cast: Cast) -> None:
    make_budget(cast.acme, limit=10_000)
    reserve(cast)
    entry = LedgerEntry.objects.for_tenant(cast.acme).get()
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        LedgerEntry.objects.for_tenant(cast.acme).update(settled_delta=5)
    for statement in ("UPDATE budgets_ledgerentry SET settled_delta = 5", "DELETE FROM budgets_ledgerentry"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)


def test_budget_configuration_changes_are_audited_and_validated(cast: Cast) -> None:
    budget = services.budget_create(actor=SYSTEM, tenant=cast.acme, name="Monthly", limit=5_000_000)
    services.budget_update(actor=SYSTEM, budget=budget, limit=6_000_000, thresholds=[50, 90])
    audited = AuditEvent.objects.for_tenant(cast.acme).filter(target_id=str(budget.pk)).order_by("created_at")
    assert [e.action for e in audited] == ["budget.create", "budget.update"]
    update = audited.last()
    assert update is not None and update.before is not None and update.after is not None
    assert (update.before["limit"], update.after["limit"]) == (5_000_000, 6_000_000)
    assert update.after["thresholds"] == [50, 90]
    with pytest.raises(BudgetFieldError) as bad:
        services.budget_update(actor=SYSTEM, budget=budget, unit="tokens")
    assert bad.value.field == "unit"
    with pytest.raises(BudgetFieldError) as bad:
        services.budget_create(actor=SYSTEM, tenant=cast.acme, name="x", limit=0)
    assert bad.value.field == "limit"
    with pytest.raises(ConflictError):
        services.budget_create(actor=SYSTEM, tenant=cast.acme, name="Monthly", limit=1)


def test_usage_sums_the_current_period_and_ranks_top_consumers(cast: Cast) -> None:
    budget = make_budget(cast.acme, scope=Budget.Scope.END_USER, limit=100_000)
    reserve(cast, end_user_id="ann")
    reserve(cast, end_user_id="ann")
    services.budget_settle(reservation=reserve(cast, end_user_id="ben"), input_tokens=2, output_tokens=0)
    usage = budget_usage(budget=budget)
    assert (usage.settled, usage.reserved) == (1, 2 * WORST_1K_1K)
    assert [c.scope_value for c in usage.counters] == ["ann", "ben"]


def test_the_beat_task_expires_reservations_past_their_ttl(cast: Cast) -> None:
    from budgets.tasks import expire_stale_reservations

    budget = make_budget(cast.acme, limit=10_000)
    crashed = reserve(cast, at=datetime.now(UTC) - timedelta(seconds=121))
    fresh = reserve(cast)
    assert expire_stale_reservations() == 1
    crashed.refresh_from_db()
    fresh.refresh_from_db()
    assert (crashed.status, fresh.status) == ("expired", "open")
    assert counter(budget).reserved == WORST_1K_1K
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_a_call_settles_at_the_price_it_was_reserved_at(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10_000)
    reservation = reserve(cast)
    LanguageModel.objects.filter(pk=reservation.model_id).update(input_price=None, output_price=None)
    services.budget_settle(reservation=reservation, input_tokens=1000, output_tokens=1000)
    assert counter(budget).settled == WORST_1K_1K


def test_a_crossed_threshold_is_emailed_once_to_the_budgets_addresses(
    cast: Cast, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    from budgets.tasks import email_budget_alert

    budget = make_budget(cast.acme, name="Ops", limit=2_500, thresholds=[50], notify_emails=["Ops@Acme.test"])
    assert budget.notify_emails == ["ops@acme.test"]
    with django_capture_on_commit_callbacks() as callbacks:
        reserve(cast)
    assert callbacks  # the email task is queued after commit, with the live push
    alert = BudgetAlert.objects.for_tenant(cast.acme).get()
    email_budget_alert(str(cast.acme.pk), str(alert.pk))
    email_budget_alert(str(cast.acme.pk), str(alert.pk))  # a redelivered task sends nothing more
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ops@acme.test"] and "'Ops' reached 50%" in mailoutbox[0].subject
    with pytest.raises(BudgetFieldError) as bad:
        make_budget(cast.acme, limit=5, notify_emails=["not an address"])
    assert bad.value.field == "notify_emails"
