"""reserve() against the live server: the reservation, its settlement or release, as the ledger
and the counters record them."""

from __future__ import annotations

import pytest
from aoc_client import AsyncConsole, BudgetExceededError, ConflictError, Console, PermissionDeniedError

from budgets.models import Budget, BudgetCounter, LedgerEntry, Reservation

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def budget(setup) -> Budget:
    return Budget.objects.create(tenant=setup.tenant, name="Agents daily", period=Budget.Period.DAY, limit=1_000_000)


def _ledger(reservation_id: str) -> list[tuple[str, int, int]]:
    entries = LedgerEntry.objects.filter(reservation_id=reservation_id).order_by("id")
    return [(e.kind, e.reserved_delta, e.settled_delta) for e in entries]


def _counter(budget: Budget) -> tuple[int, int]:
    counter = BudgetCounter.objects.get(budget=budget, scope_value="")
    return counter.settled, counter.reserved


def test_it_settles_with_the_usage_the_body_reports(console: Console, setup, budget: Budget) -> None:
    worst = setup.model.cost_micros(input_tokens=1200, output_tokens=500)
    actual = setup.model.cost_micros(input_tokens=1180, output_tokens=140)

    with console.reserve("default", input_tokens=1200, max_output_tokens=500, end_user_id="customer-42") as r:
        assert r.state is not None and (r.state.status, r.state.amount, r.state.model) == (
            "open",
            worst,
            "client-model-2025-01-01",
        )
        assert _counter(budget) == (0, worst)
        r.set_usage(input_tokens=1180, output_tokens=140)

    assert r.state.status == "settled" and r.state.actual_micros == actual
    row = Reservation.objects.for_tenant(setup.tenant).get(pk=r.id)
    assert (row.status, row.end_user_id, row.actual_input_tokens, row.actual_output_tokens) == (
        "settled",
        "customer-42",
        1180,
        140,
    )
    assert _ledger(r.id) == [("reserve", worst, 0), ("settle", -worst, actual)]
    assert _counter(budget) == (actual, 0)


def test_an_explicit_settle_is_not_settled_again_at_the_end(console: Console, setup, budget: Budget) -> None:
    with console.reserve("default", input_text="Where is my order?", max_output_tokens=200) as r:
        settled = r.settle(input_tokens=9, output_tokens=31, cached_input_tokens=0)
        assert settled.status == "settled"
        with pytest.raises(ConflictError) as twice:
            r.settle(input_tokens=9, output_tokens=31)

    assert twice.value.status == 409 and twice.value.message
    assert [kind for kind, *_ in _ledger(r.id)] == ["reserve", "settle"]
    assert _counter(budget) == (setup.model.cost_micros(input_tokens=9, output_tokens=31), 0)


def test_it_releases_when_the_body_raises(console: Console, budget: Budget) -> None:
    with pytest.raises(RuntimeError, match="provider timed out"):  # noqa: SIM117 (the raise is the point)
        with console.reserve("default", input_tokens=800, max_output_tokens=300) as r:
            raise RuntimeError("provider timed out")

    assert r.state is not None and r.state.status == "released"
    ledger = _ledger(r.id)
    assert [kind for kind, *_ in ledger] == ["reserve", "release"]
    assert sum(reserved for _, reserved, _ in ledger) == 0 and sum(settled for *_, settled in ledger) == 0
    assert _counter(budget) == (0, 0)


def test_a_body_that_reports_nothing_is_settled_at_the_worst_case(console: Console, setup, budget: Budget) -> None:
    with console.reserve("default", input_tokens=100, max_output_tokens=50) as r:
        pass

    worst = setup.model.cost_micros(input_tokens=100, output_tokens=50)
    row = Reservation.objects.for_tenant(setup.tenant).get(pk=r.id)
    assert (row.status, row.actual_micros, row.usage_estimated) == ("settled", worst, True)
    assert _counter(budget) == (worst, 0)


def test_a_full_budget_raises_with_the_servers_figures(console: Console, setup) -> None:
    Budget.objects.create(tenant=setup.tenant, name="Tiny", period=Budget.Period.DAY, limit=100)

    with pytest.raises(BudgetExceededError) as refused:  # noqa: SIM117 (the raise is the point)
        with console.reserve("default", input_tokens=1000, max_output_tokens=1000):
            pytest.fail("the body ran without a reservation")

    error = refused.value
    assert (error.status, error.type, error.budget_name) == (402, "budget_exceeded", "Tiny")
    assert error.details["limit"] == 100 and error.details["requested"] > 100
    assert "Tiny" in error.message
    assert not Reservation.objects.for_tenant(setup.tenant).exists()


def test_a_key_without_the_scope_is_refused_by_name(live_asgi: str, setup) -> None:
    from tenants.models import Scope
    from tenants.testing import make_key

    _, reader = make_key(setup.tenant, [Scope.READ], name="reader")
    with Console(live_asgi, reader) as console, pytest.raises(PermissionDeniedError) as refused:  # noqa: SIM117
        with console.reserve("default", input_tokens=1, max_output_tokens=1):
            pass

    assert refused.value.status == 403 and "budgets:reserve" in refused.value.message


async def test_the_async_reservation_settles_and_releases(async_console: AsyncConsole, setup, budget: Budget) -> None:
    from asgiref.sync import sync_to_async

    async with async_console:
        async with async_console.reserve("default", input_tokens=10, max_output_tokens=20) as settled:
            settled.set_usage(input_tokens=10, output_tokens=5)
        with pytest.raises(ValueError, match="bad answer"):
            async with async_console.reserve("default", input_tokens=10, max_output_tokens=20) as released:
                raise ValueError("bad answer")

    assert settled.state is not None and settled.state.status == "settled"
    assert released.state is not None and released.state.status == "released"
    assert await sync_to_async(_counter)(budget) == (setup.model.cost_micros(input_tokens=10, output_tokens=5), 0)
