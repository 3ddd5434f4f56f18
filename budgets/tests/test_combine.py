"""Concurrent reservations admitted together (budgets.combine, budgets_reserve_many): in arrival
order, exactly, one tenant per batch, and each alone again when a batch fails; and reservations
ended ahead together (budgets_finish_many), read back by each settlement."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from django.db import connection, transaction
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from budgets import combine, services
from budgets.errors import BudgetExceededError
from budgets.models import Budget, BudgetCounter, LedgerEntry, Reservation
from budgets.selectors import ledger_discrepancies
from budgets.tests.factories import make_budget
from budgets.tests.test_concurrency import WORST, hammer
from tenants import rls
from tenants.errors import ConflictError
from tenants.models import Tenant
from tenants.testing import Cast


@contextlib.contextmanager
def occupied(tenant: Tenant, combiner: combine.Combiner = combine.reservations) -> Iterator[list[threading.Thread]]:
    """The process's combiner as if a batch of `tenant` were running: what the tenant makes
    meanwhile waits. On leaving, the first waiting one leads the next batch, as when a real batch
    ends."""
    with combiner._lock:
        assert tenant.pk not in combiner._waiting
        combiner._waiting[tenant.pk] = []
    threads: list[threading.Thread] = []
    try:
        yield threads
    finally:
        combiner._hand_over(tenant.pk)  # as when a real batch ends
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


def queued(combiner: combine.Combiner, tenant: Tenant) -> int:
    with combiner._lock:
        return len(combiner._waiting.get(tenant.pk, []))


def reserve_in_thread(
    threads: list[threading.Thread], outcomes: dict[int, str], i: int, tenant: Tenant, end_user_id: str = ""
) -> None:
    """Start a thread that reserves (autocommit, its own connection), and wait until it is queued."""
    before = queued(combine.reservations, tenant)

    def run() -> None:
        try:
            with rls.tenant_context(tenant.pk):
                services.budget_reserve(
                    tenant=tenant, model="default", input_tokens=1000, max_output_tokens=1000, end_user_id=end_user_id
                )
            outcomes[i] = "admitted"
        except BudgetExceededError as refused:
            outcomes[i] = f"refused:{refused.extra['budget_name']}"
        except Exception as exc:  # reported by the test's assertion on outcomes
            outcomes[i] = f"error:{exc!r}"
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    threads.append(thread)
    deadline = time.monotonic() + 10
    while queued(combine.reservations, tenant) == before:
        assert time.monotonic() < deadline, "the reservation did not queue behind the running batch"
        time.sleep(0.005)


@pytest.mark.django_db(transaction=True)
def test_a_batch_admits_in_arrival_order_exactly_and_writes_the_ledger(cast: Cast) -> None:
    budget = make_budget(cast.acme, name="room for three", limit=3 * WORST + WORST // 2)
    stats = replace(combine.reservations.stats)
    outcomes: dict[int, str] = {}
    with occupied(cast.acme) as threads:
        for i in range(5):
            reserve_in_thread(threads, outcomes, i, cast.acme)
    assert outcomes == {
        0: "admitted",
        1: "admitted",
        2: "admitted",
        3: "refused:room for three",
        4: "refused:room for three",
    }
    now = combine.reservations.stats
    assert (now.batches - stats.batches, now.batched - stats.batched, now.failed - stats.failed) == (1, 5, 0)
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert (counter.reserved, counter.settled) == (3 * WORST, 0)
    assert Reservation.objects.for_tenant(cast.acme).filter(status="open").count() == 3
    assert LedgerEntry.objects.for_tenant(cast.acme).filter(counter=counter, kind="reserve").count() == 3
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_a_batch_item_no_budget_counts_is_admitted_without_holds(cast: Cast) -> None:
    # Per end user, anonymous calls not metered: the items without an end user hold nothing.
    per_user = make_budget(cast.acme, name="per user", scope=Budget.Scope.END_USER, limit=WORST + 1)
    outcomes: dict[int, str] = {}
    with occupied(cast.acme) as threads:
        reserve_in_thread(threads, outcomes, 0, cast.acme)
        reserve_in_thread(threads, outcomes, 1, cast.acme, end_user_id="ann")
        reserve_in_thread(threads, outcomes, 2, cast.acme)
        reserve_in_thread(threads, outcomes, 3, cast.acme, end_user_id="ann")
    assert outcomes == {0: "admitted", 1: "admitted", 2: "admitted", 3: "refused:per user"}
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=per_user, scope_value="ann")
    assert counter.reserved == WORST
    assert Reservation.objects.for_tenant(cast.acme).filter(status="open").count() == 3
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_a_failed_batch_makes_each_reservation_alone(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    budget = make_budget(cast.acme, name="room for two", limit=2 * WORST + 1)
    monkeypatch.setattr(services, "RESERVE_MANY_SQL", "SELECT * FROM budgets_reserve_many_that_does_not_exist(%s)")
    stats = replace(combine.reservations.stats)
    outcomes: dict[int, str] = {}
    with occupied(cast.acme) as threads:
        for i in range(4):
            reserve_in_thread(threads, outcomes, i, cast.acme)
    assert sorted(outcomes.values()) == ["admitted", "admitted", "refused:room for two", "refused:room for two"]
    assert combine.reservations.stats.failed - stats.failed == 1
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert counter.reserved == 2 * WORST
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_a_reservation_inside_a_transaction_is_made_alone_at_once(cast: Cast) -> None:
    make_budget(cast.acme, limit=10 * WORST)
    with occupied(cast.acme), transaction.atomic():  # a batch "runs", yet this one does not wait for it
        reservation = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=1, max_output_tokens=1)
    assert Reservation.objects.for_tenant(cast.acme).filter(pk=reservation.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_tenant_never_waits_for_another_tenants_batch(cast: Cast) -> None:
    with rls.tenant_context(cast.globex.pk):
        make_budget(cast.globex, limit=10 * WORST)
    with occupied(cast.acme), rls.tenant_context(cast.globex.pk):  # Acme's batch "runs" throughout
        reservation = services.budget_reserve(tenant=cast.globex, model="default", input_tokens=1, max_output_tokens=1)
    assert reservation.tenant_id == cast.globex.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_of_two_tenants_batch_per_tenant_and_stay_exact(cast: Cast) -> None:
    limits = {}
    for tenant in (cast.acme, cast.globex):
        with rls.tenant_context(tenant.pk):
            tenant_budget = make_budget(tenant, name="tenant", limit=20 * WORST + 1)
            per_user = make_budget(tenant, name="per user", scope=Budget.Scope.END_USER, limit=4 * WORST + 1)
            limits[tenant.pk] = (tenant_budget, per_user)
    stats = replace(combine.reservations.stats)
    tenants = [cast.acme, cast.globex]

    def work(i: int) -> list[str]:
        tenant = tenants[i % 2]
        results = []
        with rls.tenant_context(tenant.pk):
            for round_ in range(4):
                try:
                    services.budget_reserve(
                        tenant=tenant,
                        model="default",
                        input_tokens=1000,
                        max_output_tokens=1000,
                        end_user_id=f"user-{(i + round_) % 5}",
                    )
                    results.append("admitted")
                except BudgetExceededError:
                    results.append("refused")
        return results

    outcomes, errors = hammer(32, work)
    assert errors == []
    assert len(outcomes) == 32 * 4
    now = combine.reservations.stats
    assert now.batches > stats.batches, "no batch formed under 32 concurrent clients"
    assert now.failed == stats.failed, "a batch failed: it mixed tenants, or deadlocked"
    for tenant in tenants:
        with rls.tenant_context(tenant.pk):
            tenant_budget, per_user = limits[tenant.pk]
            held = BudgetCounter.objects.for_tenant(tenant).get(budget=tenant_budget).reserved
            assert held == 20 * WORST  # 64 tries, room for 20: full, never past
            for counter in BudgetCounter.objects.for_tenant(tenant).filter(budget=per_user):
                assert counter.reserved <= 4 * WORST
            assert Reservation.objects.for_tenant(tenant).filter(status="open").count() == 20
            assert ledger_discrepancies(tenant=tenant) == []


def reserve(tenant: Tenant, end_user_id: str = "") -> Reservation:
    return services.budget_reserve(
        tenant=tenant, model="default", input_tokens=1000, max_output_tokens=1000, end_user_id=end_user_id
    )


@pytest.mark.django_db(transaction=True)
def test_reservations_ended_ahead_together_are_read_back_by_each_settlement(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10 * WORST)
    first, second, third = reserve(cast.acme), reserve(cast.acme), reserve(cast.acme)
    endings = [
        services.Ending(first.pk, "settle", input_tokens=1000, output_tokens=500),
        services.Ending(second.pk, "release"),
        services.Ending(third.pk, "settle", input_tokens=10, output_tokens=10),
    ]
    with services.finished_ahead(cast.acme.pk, endings):
        with CaptureQueriesContext(connection) as queries:
            settled = services.budget_settle(
                reservation=first.pk, tenant=cast.acme, input_tokens=1000, output_tokens=500
            )
            released = services.budget_release(reservation=second.pk, tenant=cast.acme)
        assert len(queries) == 0  # both read back from the one statement
        assert (settled.status, settled.actual_micros, released.status) == (
            "settled",
            first.model.cost_micros(input_tokens=1000, output_tokens=500),
            "released",
        )
        # Other figures than those it was ended with: ended alone, so found settled already (409).
        with pytest.raises(ConflictError):
            services.budget_settle(reservation=third.pk, tenant=cast.acme, input_tokens=999, output_tokens=999)
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    third.refresh_from_db()
    assert counter.reserved == 0
    assert counter.settled == (settled.actual_micros or 0) + (third.actual_micros or 0) > 0
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_an_unknown_reservation_ended_ahead_is_still_a_404(cast: Cast) -> None:
    make_budget(cast.acme, limit=10 * WORST)
    held = reserve(cast.acme)
    missing = uuid.uuid4()
    with services.finished_ahead(
        cast.acme.pk, [services.Ending(missing, "release"), services.Ending(held.pk, "release")]
    ):
        with pytest.raises(Http404):
            services.budget_release(reservation=missing, tenant=cast.acme)
        assert services.budget_release(reservation=held.pk, tenant=cast.acme).status == "released"
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_when_ending_ahead_fails_each_reservation_is_ended_alone(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    budget = make_budget(cast.acme, limit=10 * WORST)
    first, second = reserve(cast.acme), reserve(cast.acme)
    monkeypatch.setattr(services, "FINISH_MANY_SQL", "SELECT * FROM budgets_finish_many_that_does_not_exist(%s, %s)")
    endings = [
        services.Ending(first.pk, "release"),
        services.Ending(second.pk, "settle", input_tokens=5, output_tokens=5),
    ]
    with services.finished_ahead(cast.acme.pk, endings):
        with CaptureQueriesContext(connection) as queries:
            services.budget_release(reservation=first.pk, tenant=cast.acme)
            services.budget_settle(reservation=second.pk, tenant=cast.acme, input_tokens=5, output_tokens=5)
        assert len(queries) == 2  # each alone
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert counter.reserved == 0 and counter.settled > 0
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_settlements_and_releases_end_in_one_batch(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10 * WORST)
    held = [reserve(cast.acme) for _ in range(3)]
    stats = replace(combine.endings.stats)
    outcomes: dict[int, str] = {}

    def end(i: int) -> None:
        try:
            with rls.tenant_context(cast.acme.pk):
                if i == 1:
                    services.budget_release(reservation=held[i].pk, tenant=cast.acme)
                else:
                    services.budget_settle(
                        reservation=held[i].pk, tenant=cast.acme, input_tokens=100, output_tokens=100
                    )
            outcomes[i] = "ended"
        except Exception as exc:  # reported by the assertion on outcomes
            outcomes[i] = f"error:{exc!r}"
        finally:
            connection.close()

    with occupied(cast.acme, combine.endings) as threads:
        for i in range(3):
            before = queued(combine.endings, cast.acme)
            thread = threading.Thread(target=end, args=(i,))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 10
            while queued(combine.endings, cast.acme) == before:
                assert time.monotonic() < deadline, "the settlement did not queue behind the running batch"
                time.sleep(0.005)
    assert outcomes == {0: "ended", 1: "ended", 2: "ended"}
    now = combine.endings.stats
    assert (now.batches - stats.batches, now.batched - stats.batched, now.failed - stats.failed) == (1, 3, 0)
    statuses = dict(Reservation.objects.for_tenant(cast.acme).values_list("pk", "status"))
    assert [statuses[r.pk] for r in held] == ["settled", "released", "settled"]
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert counter.reserved == 0 and counter.settled == 2 * held[0].model.cost_micros(
        input_tokens=100, output_tokens=100
    )
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_with_combining_off_each_reservation_is_made_alone(cast: Cast, settings: Any) -> None:
    settings.BUDGETS_COMBINE = False
    make_budget(cast.acme, limit=10 * WORST)
    with occupied(cast.acme):  # a batch "runs", yet this one neither waits for it nor joins it
        reservation = reserve(cast.acme)
    assert Reservation.objects.for_tenant(cast.acme).filter(pk=reservation.pk, status="open").exists()
