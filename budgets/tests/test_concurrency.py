"""No overspend under real concurrency: 64 threads, each with its own PostgreSQL connection,
released together by a barrier, reserving against one small budget."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from budgets import services
from budgets.errors import BudgetExceededError
from budgets.models import Budget, BudgetCounter, LedgerEntry, Reservation
from budgets.selectors import ledger_discrepancies
from budgets.tests.factories import make_budget
from tenants import rls
from tenants.testing import Cast

CLIENTS = 64
WORST = 2_000  # 1 000 input + 1 000 output tokens of the demo model, in micro-USD


def free_connections() -> int:
    with connection.cursor() as cursor:
        # A superuser may also take the slots reserved for superusers.
        cursor.execute(
            "SELECT current_setting('max_connections')::int - count(*)"
            " - CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN 0"
            " ELSE current_setting('superuser_reserved_connections')::int END"
            " FROM pg_stat_activity"
        )
        return int(cursor.fetchone()[0])


def wait_for_connections(needed: int, timeout: float = 90) -> None:
    """A shared PostgreSQL may be busy with other test runs: wait for `needed` free connections,
    then fail with the reason rather than with 64 connection errors."""
    deadline = time.monotonic() + timeout
    while (free := free_connections()) < needed:
        if time.monotonic() > deadline:
            pytest.fail(f"this test needs {needed} free PostgreSQL connections; only {free} are free")
        time.sleep(1)


def hammer(clients: int, work: Callable[[int], list[str]]) -> tuple[list[str], list[BaseException]]:
    """Run `work(i)` in `clients` threads that start together, each on its own connection (closed
    at the end)."""
    wait_for_connections(clients + 2)
    barrier = threading.Barrier(clients)
    outcomes: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            result = work(i)
            with lock:
                outcomes.extend(result)
        except BaseException as exc:  # any error is a failure the test reports, deadlocks included
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    # Each in the test's tenant context (row-level security), as each request would have its own.
    threads = [threading.Thread(target=rls.carried(client), args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    return outcomes, errors


@pytest.mark.django_db(transaction=True)
def test_64_concurrent_clients_never_reserve_more_than_the_limit(cast: Cast) -> None:
    budget = make_budget(cast.acme, limit=10 * WORST + WORST // 2)  # room for exactly 10 reservations

    def work(i: int) -> list[str]:
        try:
            services.budget_reserve(tenant=cast.acme, model="default", input_tokens=1000, max_output_tokens=1000)
        except BudgetExceededError:
            return ["refused"]
        return ["admitted"]

    outcomes, errors = hammer(CLIENTS, work)
    assert errors == []
    assert outcomes.count("admitted") == 10 and outcomes.count("refused") == CLIENTS - 10
    admitted = Reservation.objects.for_tenant(cast.acme).filter(status="open")
    assert sum(r.worst_case_micros for r in admitted) == 10 * WORST <= budget.limit
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert (counter.reserved, counter.settled) == (10 * WORST, 0)
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_reserve_settle_and_release_on_overlapping_budgets_keep_the_ledger_exact(cast: Cast) -> None:
    # Every call locks two counters (the tenant's and its end user's), in id order: no deadlock.
    tenant_budget = make_budget(cast.acme, name="tenant", limit=40 * WORST)
    per_user = make_budget(cast.acme, name="per user", scope=Budget.Scope.END_USER, limit=12 * WORST)
    soft = make_budget(
        cast.acme, name="soft", limit=5 * WORST, unit=Budget.Unit.TOKENS, on_exceed=Budget.OnExceed.ALERT_ONLY
    )

    def work(i: int) -> list[str]:
        rng = random.Random(i)
        results = []
        for _ in range(6):
            try:
                reservation = services.budget_reserve(
                    tenant=cast.acme,
                    model="default",
                    input_tokens=1000,
                    max_output_tokens=1000,
                    end_user_id=f"user-{i % 4}",
                )
            except BudgetExceededError as refused:
                results.append(f"refused:{refused.extra['budget_name']}")
                continue
            if rng.random() < 0.3:
                services.budget_release(reservation=reservation)
                results.append("released")
            else:
                # Actual usage never exceeds the worst case here, so spend stays within the limits.
                services.budget_settle(
                    reservation=reservation, input_tokens=rng.randint(0, 1000), output_tokens=rng.randint(0, 1000)
                )
                results.append("settled")
        return results

    outcomes, errors = hammer(CLIENTS, work)
    assert errors == []
    assert len(outcomes) == CLIENTS * 6
    assert any(o.startswith("refused:") for o in outcomes) and "settled" in outcomes and "released" in outcomes
    assert "refused:soft" not in outcomes  # an alert-only budget never refuses
    counters = {c.budget_id: c for c in BudgetCounter.objects.for_tenant(cast.acme).filter(scope_value="")}
    tenant_counter = counters[tenant_budget.pk]
    assert tenant_counter.reserved == 0
    assert tenant_counter.settled <= tenant_budget.limit
    for user_counter in BudgetCounter.objects.for_tenant(cast.acme).filter(budget=per_user):
        assert user_counter.reserved == 0 and user_counter.settled <= per_user.limit
    assert counters[soft.pk].settled > soft.limit  # it counted everything and let it through
    assert ledger_discrepancies(tenant=cast.acme) == []
    assert not Reservation.objects.for_tenant(cast.acme).filter(status="open").exists()
    settled_spend: Any = sum(
        r.actual_micros or 0 for r in Reservation.objects.for_tenant(cast.acme).filter(status="settled")
    )
    assert tenant_counter.settled == settled_spend
    assert LedgerEntry.objects.for_tenant(cast.acme).filter(counter=tenant_counter).count() > CLIENTS


@pytest.fixture
def threaded_server(transactional_db: None) -> Iterator[str]:
    """Django's WSGI app under a threaded server (a thread, so a database connection, per request)
    whose listen backlog takes 64 simultaneous connects (the live_server fixture's takes 10).
    Yields its base URL."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadedWSGIServer):
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Quiet)
    server.set_app(get_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_64_concurrent_http_clients_never_reserve_more_than_the_limit(cast: Cast, threaded_server: str) -> None:
    """The same claim over REST: 64 HTTP clients against a live threaded server, each reserving;
    then the admitted ones settle or release."""
    import httpx

    from tenants.testing import make_key

    budget = make_budget(cast.acme, limit=8 * WORST + 1)
    _, key = make_key(cast.acme, ["budgets:reserve"])
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{threaded_server}/api/v1/reservations"

    def work(i: int) -> list[str]:
        with httpx.Client(headers=headers, timeout=60) as http:
            reply = http.post(url, json={"model": "default", "input_tokens": 1000, "max_output_tokens": 1000})
            if reply.status_code == 402:
                assert reply.json()["error"]["budget"] == str(budget.pk)
                return ["refused"]
            assert reply.status_code == 201, reply.text
            return [f"admitted:{reply.json()['id']}"]

    outcomes, errors = hammer(CLIENTS, work)
    assert errors == []
    admitted = [o.split(":", 1)[1] for o in outcomes if o.startswith("admitted:")]
    assert len(admitted) == 8 and outcomes.count("refused") == CLIENTS - 8
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert counter.reserved == 8 * WORST <= budget.limit
    with httpx.Client(headers=headers, timeout=60) as http:
        for n, reservation_id in enumerate(admitted):
            action = "settle" if n % 2 else "release"
            body = {"input_tokens": 1000, "output_tokens": 1000} if action == "settle" else None
            assert http.post(f"{url}/{reservation_id}/{action}", json=body).status_code == 200
    counter.refresh_from_db()
    assert (counter.reserved, counter.settled) == (0, 4 * WORST)
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_expiry_racing_reservations_on_shared_counters_neither_deadlocks_nor_drifts(cast: Cast) -> None:
    from datetime import UTC, datetime, timedelta

    make_budget(cast.acme, name="tenant", limit=10**9)
    make_budget(cast.acme, name="per user", scope=Budget.Scope.END_USER, limit=10**9)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    for i in range(60):  # crashed clients: their holds span the tenant's counter and 6 users'
        services.budget_reserve(
            tenant=cast.acme,
            model="default",
            input_tokens=10,
            max_output_tokens=10,
            end_user_id=f"u{i % 6}",
            at=long_ago,
        )

    def work(i: int) -> list[str]:
        if i % 8 == 0:
            return [f"expired:{services.budget_expire_stale(batch=5)}"]
        for n in range(3):
            reservation = services.budget_reserve(
                tenant=cast.acme, model="default", input_tokens=10, max_output_tokens=10, end_user_id=f"u{(i + n) % 6}"
            )
            services.budget_settle(reservation=reservation, input_tokens=5, output_tokens=5)
        return ["worked"]

    outcomes, errors = hammer(CLIENTS, work)
    assert errors == []
    assert sum(int(o.split(":")[1]) for o in outcomes if o.startswith("expired:")) == 60
    assert Reservation.objects.for_tenant(cast.acme).filter(status="expired").count() == 60
    assert not Reservation.objects.for_tenant(cast.acme).filter(status="open").exists()
    assert set(BudgetCounter.objects.for_tenant(cast.acme).values_list("reserved", flat=True)) == {0}
    assert ledger_discrepancies(tenant=cast.acme) == []


@pytest.mark.django_db(transaction=True)
def test_the_first_concurrent_calls_of_end_users_never_seen_before_are_admitted_exactly(cast: Cast) -> None:
    """48 gateway calls (the budget hook, no Run) at once for four end users with no counter row
    yet: every thread races to create the same counter. Each end user gets exactly floor(limit /
    cost) calls, no error, one counter each, and the counters equal the ledger."""
    from agents.hooks import CallContext
    from budgets.hooks import BudgetHooks
    from budgets.tests.factories import demo_model
    from catalog.clients import ChatRequest

    clients, users = 48, 4
    per_user = make_budget(
        cast.acme, name="Support daily", scope=Budget.Scope.END_USER, period="day", limit=3 * WORST + WORST - 1
    )
    tenant_wide = make_budget(cast.acme, name="Tenant", limit=10**9)
    model = demo_model(cast.acme)
    # 3 998 characters and "[]": estimated at 1 000 input tokens; with 1 000 output, WORST.
    request = ChatRequest(model_id=model.model_id, messages=[{"role": "user", "content": "x" * 3998}])
    request = ChatRequest(model_id=model.model_id, messages=request.messages, max_output_tokens=1000)

    def work(i: int) -> list[str]:
        user = f"new-{i % users}"
        call = CallContext(tenant=cast.acme, trace_id=f"{i:032x}", end_user_id=user, source="gateway")
        decision = BudgetHooks.instance.reserve_before_model_call(call=call, model=model, request=request)
        if decision.admitted:
            assert decision.tightest is not None and decision.tightest["id"] == str(per_user.pk)
            return [f"admitted:{user}"]
        assert decision.details["budget"] == str(per_user.pk), decision.message
        return [f"refused:{user}"]

    outcomes, errors = hammer(clients, work)
    assert errors == []
    for n in range(users):
        assert outcomes.count(f"admitted:new-{n}") == 3  # floor((4 * WORST - 1) / WORST)
        assert outcomes.count(f"refused:new-{n}") == clients // users - 3
    counters = BudgetCounter.objects.for_tenant(cast.acme).filter(budget=per_user)
    assert sorted(counters.values_list("scope_value", "reserved", "settled")) == [
        (f"new-{n}", 3 * WORST, 0) for n in range(users)
    ]
    tenant_counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=tenant_wide)
    assert tenant_counter.reserved == 3 * users * WORST
    assert Reservation.objects.for_tenant(cast.acme).filter(status="open").count() == 3 * users
    assert ledger_discrepancies(tenant=cast.acme) == []
