"""The reservation protocol as one statement each way (budgets_reserve, budgets_finish): what a
reservation and a settlement cost in statements, that the SQL agrees with the Python rules it
carries (prices and rounding, units, thresholds, ids), and that the REST answers are exactly what
ReservationSerializer would write."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.renderers import JSONRenderer

from agents.hooks import CallContext
from agents.models import Agent
from budgets import services
from budgets.errors import BudgetExceededError
from budgets.hooks import BudgetHooks
from budgets.models import Budget, BudgetAlert, BudgetCounter, LedgerEntry, Reservation
from budgets.selectors import ledger_discrepancies
from budgets.serializers import ReservationSerializer, reservation_body
from budgets.tests.factories import SYSTEM, demo_model, make_budget
from catalog.clients import ChatRequest, Usage
from catalog.models import LanguageModel
from tenants.models import AuditEvent, Scope
from tenants.testing import ApiClient, Cast

pytestmark = pytest.mark.django_db

RESERVE = {"model": "default", "input_tokens": 1000, "max_output_tokens": 1000}


def two_budgets(cast: Cast) -> None:
    make_budget(cast.acme, name="Tenant", limit=10**9)
    make_budget(cast.acme, name="Per user", scope=Budget.Scope.END_USER, limit=10**9, unit=Budget.Unit.TOKENS)


def test_a_reservation_and_its_settlement_are_one_statement_each(cast: Cast) -> None:
    two_budgets(cast)
    model = demo_model(cast.acme)
    with CaptureQueriesContext(connection) as first:  # its counters do not exist yet
        held = services.budget_reserve(tenant=cast.acme, model=model, input_tokens=10, max_output_tokens=10)
    with CaptureQueriesContext(connection) as new_member:
        services.budget_reserve(tenant=cast.acme, model=model, input_tokens=10, max_output_tokens=10, end_user_id="u-1")
    with CaptureQueriesContext(connection) as settling:
        services.budget_settle(reservation=held.pk, tenant=cast.acme, input_tokens=10, output_tokens=3)
    with CaptureQueriesContext(connection) as releasing:
        services.budget_release(
            reservation=services.budget_reserve(tenant=cast.acme, model=model, input_tokens=1, max_output_tokens=1),
            tenant=cast.acme,
        )
    assert [len(first), len(new_member), len(settling), len(releasing) - 1] == [1, 1, 1, 1]
    assert BudgetCounter.objects.for_tenant(cast.acme).count() == 2  # the tenant's and u-1's
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_the_model_call_hooks_reserve_and_settle_in_one_statement_each(cast: Cast) -> None:
    """The gateway's path: a CallContext without a Run; settling takes the reservation's id."""
    two_budgets(cast)
    model = demo_model(cast.acme)
    call = CallContext(tenant=cast.acme, trace_id="2" * 32, end_user_id="u-9", source="gateway")
    request = ChatRequest(model_id=model.model_id, messages=[{"role": "user", "content": "hi"}], max_output_tokens=50)
    with CaptureQueriesContext(connection) as reserving:
        decision = BudgetHooks.instance.reserve_before_model_call(call=call, model=model, request=request)
    with CaptureQueriesContext(connection) as settling:
        BudgetHooks.instance.settle_after_model_call(
            call=call, model=model, reservation=decision, usage=Usage(input_tokens=5, output_tokens=7), cost_micros=0
        )
    assert decision.admitted and (len(reserving), len(settling)) == (1, 1)
    settled = Reservation.objects.for_tenant(cast.acme).get(pk=decision.reservation_id)
    assert (settled.status, settled.actual_input_tokens, settled.actual_output_tokens) == ("settled", 5, 7)


def test_a_rest_pair_costs_at_most_six_statements(cast: Cast, api: Any) -> None:
    """Issue 14's bar, authentication included (a key's last use is written at most once a minute)."""
    two_budgets(cast)
    client: ApiClient = api(Scope.BUDGETS_RESERVE)
    client.post(reverse("reservation-list"), {**RESERVE, "end_user_id": "u-1"})  # warm: counters, key touch
    with CaptureQueriesContext(connection) as pair:
        created = client.post(reverse("reservation-list"), {**RESERVE, "end_user_id": "u-1"})
        settled = client.post(
            reverse("reservation-settle", args=[created.json()["id"]]), {"input_tokens": 10, "output_tokens": 10}
        )
    assert (created.status_code, settled.status_code) == (201, 200)
    assert len(pair) <= 6, [q["sql"][:120] for q in pair.captured_queries]


def rendered(data: Any) -> Any:
    return json.loads(JSONRenderer().render(data))


def test_the_reservation_endpoints_answer_what_the_serializer_would(cast: Cast, api: Any) -> None:
    two_budgets(cast)
    client: ApiClient = api(Scope.BUDGETS_RESERVE)
    agent = Agent.objects.for_tenant(cast.acme).get(name="Support agent")
    created = client.post(reverse("reservation-list"), {**RESERVE, "max_output_tokens": 10, "agent": agent.name})
    assert created.status_code == 201, created.content
    body = created.json()
    stored = Reservation.objects.select_related("model").get(pk=body["id"])
    assert body == rendered(ReservationSerializer(stored).data)
    assert body["agent"] == str(agent.pk)
    settle = reverse("reservation-settle", args=[body["id"]])
    settled = client.post(settle, {"input_tokens": 7, "output_tokens": 3, "estimated": True}).json()
    stored.refresh_from_db()
    assert settled == rendered(ReservationSerializer(stored).data) and settled["finished_at"]
    released = client.post(
        reverse("reservation-release", args=[client.post(reverse("reservation-list"), RESERVE).json()["id"]])
    )
    assert released.json() == rendered(ReservationSerializer(Reservation.objects.get(pk=released.json()["id"])).data)
    # And for what the services hand back, whatever zone the caller's clock was in.
    paris = datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    held = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=1, max_output_tokens=1, at=paris)
    assert rendered(reservation_body(held)) == rendered(ReservationSerializer(held).data)
    assert reservation_body(held)["created_at"] == "2026-03-10T11:00:00Z"


def test_a_settle_or_release_by_id_answers_404_for_another_tenants_reservation_and_a_bad_id(
    cast: Cast, api: Any
) -> None:
    make_budget(cast.acme, limit=10**9)
    held = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=1, max_output_tokens=1)
    with pytest.raises(Http404):
        services.budget_settle(reservation=held.pk, tenant=cast.globex, input_tokens=1, output_tokens=1)
    with pytest.raises(Http404):
        services.budget_release(reservation=uuid.uuid4(), tenant=cast.acme)
    client: ApiClient = api(Scope.BUDGETS_RESERVE)
    assert client.post(reverse("reservation-release", args=["not-a-uuid"])).status_code == 404
    held.refresh_from_db()
    assert held.status == "open" and LedgerEntry.objects.for_tenant(cast.acme).count() == 1


@pytest.mark.parametrize(
    ("prices", "usage"),
    [
        ((500_000, None, 1_500_000), (1000, 1000, 0)),
        ((1_234_567, None, 7_654_321), (3, 1, 0)),  # rounds up a fraction of a micro-USD
        ((2_500_000, 1_250_000, 10_000_000), (900, 77, 500)),  # cached input at its own price
        ((2_500_000, 1_250_000, 10_000_000), (100, 0, 400)),  # more cached than input: as the model does
        ((1, 0, 1), (9_999_999, 9_999_999, 0)),
        ((10**9, None, 10**9), (10_000_000, 10_000_000, 0)),  # large: no overflow
    ],
)
def test_settling_costs_the_call_as_the_catalog_prices_it(
    cast: Cast, prices: tuple[int, int | None, int], usage: tuple[int, int, int]
) -> None:
    micros_budget = make_budget(cast.acme, name="Money", limit=2**62)
    tokens_budget = make_budget(cast.acme, name="Tokens", limit=2**62, unit=Budget.Unit.TOKENS)
    model = demo_model(cast.acme)
    model.input_price, model.cached_input_price, model.output_price = prices
    model.save()
    input_tokens, output_tokens, cached = usage
    held = services.budget_reserve(tenant=cast.acme, model=model, input_tokens=1, max_output_tokens=1)
    settled = services.budget_settle(
        reservation=held, input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached
    )
    expected = LanguageModel(input_price=prices[0], cached_input_price=prices[1], output_price=prices[2]).cost_micros(
        input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached
    )
    assert settled.actual_micros == expected
    counters = {c.budget_id: c for c in BudgetCounter.objects.for_tenant(cast.acme)}
    assert counters[micros_budget.pk].settled == expected
    assert counters[tokens_budget.pk].settled == input_tokens + output_tokens
    assert ledger_discrepancies(tenant=cast.acme) == []


def test_a_settlement_that_overruns_fires_the_thresholds_it_crosses_once(cast: Cast) -> None:
    budget = make_budget(cast.acme, name="Ops", limit=10_000, thresholds=[50, 100, 150], on_exceed="alert_only")
    held = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=1000, max_output_tokens=10)
    assert not BudgetAlert.objects.for_tenant(cast.acme).exists()  # 515 of 10 000
    services.budget_settle(reservation=held, input_tokens=1000, output_tokens=6000)  # 9 500: crosses 50 %
    again = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=0, max_output_tokens=0)
    services.budget_settle(reservation=again, input_tokens=0, output_tokens=4000)  # 15 500: 100 and 150 %
    alerts = BudgetAlert.objects.for_tenant(cast.acme).order_by("threshold")
    assert [(a.threshold, a.used, a.limit) for a in alerts] == [
        (50, 9_500, 10_000),
        (100, 15_500, 10_000),
        (150, 15_500, 10_000),
    ]
    audited = AuditEvent.objects.for_tenant(cast.acme).filter(action="budget.alert", target_id=str(budget.pk))
    assert sorted((e.after or {})["threshold"] for e in audited) == [50, 100, 150]
    # Ids made in SQL are time-ordered UUIDv7, like every id the application makes.
    for made in [*alerts, BudgetCounter.objects.for_tenant(cast.acme).get()]:
        assert made.pk.version == 7
        assert abs(datetime.fromtimestamp((made.pk.int >> 80) / 1000, UTC) - datetime.now(UTC)) < timedelta(minutes=5)


def test_thresholds_of_a_huge_limit_are_compared_without_overflow(cast: Cast) -> None:
    make_budget(cast.acme, name="Huge", limit=2**62, thresholds=[1, 1000], on_exceed="alert_only")
    held = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=10, max_output_tokens=10)
    services.budget_settle(reservation=held, input_tokens=10, output_tokens=10)
    assert not BudgetAlert.objects.for_tenant(cast.acme).exists()


def test_a_budget_change_applies_to_the_very_next_call(cast: Cast) -> None:
    """Nothing about budgets is cached: the statement reads them."""
    model = demo_model(cast.acme)

    def reserve() -> Reservation:
        return services.budget_reserve(tenant=cast.acme, model=model, input_tokens=1000, max_output_tokens=1000)

    reserve()  # no budget: nothing counted
    budget = make_budget(cast.acme, name="New", limit=3_000)
    reserve()
    with pytest.raises(BudgetExceededError):
        reserve()
    services.budget_update(actor=SYSTEM, budget=budget, limit=4_000)
    reserve()
    Budget.objects.filter(pk=budget.pk).update(enabled=False)  # even behind the services' back
    reserve()
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert counter.reserved == 4_000


RESERVATION_BODIES: list[Any] = [
    RESERVE,
    {**RESERVE, "end_user_id": "u-1", "session_id": "s-1", "agent": "Support agent"},
    {**RESERVE, "end_user_id": "  u-1 ", "agent": " Support agent "},
    {**RESERVE, "end_user_id": "", "session_id": "   ", "agent": None},
    {**RESERVE, "input_tokens": None, "input_text": "hello"},
    {**RESERVE, "input_tokens": None, "input_text": ""},
    {"model": "default", "input_text": "  spaced  ", "max_output_tokens": 0},
    {"model": "default", "max_output_tokens": 1},
    {**RESERVE, "input_tokens": None},
    {**RESERVE, "model": ""},
    {**RESERVE, "model": "   "},
    {**RESERVE, "model": " default "},
    {**RESERVE, "model": "x" * 201},
    {**RESERVE, "model": 7},
    {**RESERVE, "model": None},
    {**RESERVE, "input_tokens": True},
    {**RESERVE, "input_tokens": -1},
    {**RESERVE, "input_tokens": 10_000_001},
    {**RESERVE, "input_tokens": 10_000_000},
    {**RESERVE, "input_tokens": "12"},
    {**RESERVE, "input_tokens": 12.0},
    {**RESERVE, "max_output_tokens": None},
    {**RESERVE, "end_user_id": None},
    {**RESERVE, "end_user_id": "x" * 200},
    {**RESERVE, "end_user_id": "x" * 201},
    {**RESERVE, "end_user_id": " " + "x" * 200 + " "},
    {**RESERVE, "end_user_id": "nul\x00"},
    {**RESERVE, "end_user_id": "ünïcode"},
    {**RESERVE, "end_user_id": "\ud800"},
    {**RESERVE, "agent": ""},
    {**RESERVE, "agent": 5},
    {**RESERVE, "input_text": None},
    {**RESERVE, "unknown": "ignored"},
    ["not", "an", "object"],
]
SETTLE_BODIES: list[Any] = [
    {"input_tokens": 1, "output_tokens": 2},
    {"input_tokens": 1, "output_tokens": 2, "cached_input_tokens": 1, "estimated": True},
    {"input_tokens": 1, "output_tokens": 2, "estimated": "true"},
    {"input_tokens": 1, "output_tokens": 2, "estimated": None},
    {"input_tokens": 1, "output_tokens": 2, "cached_input_tokens": None},
    {"input_tokens": 1},
    {"input_tokens": False, "output_tokens": 2},
    {"input_tokens": 1, "output_tokens": -2},
    {"input_tokens": "1", "output_tokens": 2},
    "text",
]


@pytest.mark.parametrize("body", RESERVATION_BODIES)
def test_a_plain_reservation_body_is_read_as_the_serializer_reads_it(body: Any) -> None:
    from budgets.serializers import ReservationCreateSerializer, plain_reservation_input

    plain = plain_reservation_input(body)
    form = ReservationCreateSerializer(data=body)
    if plain is not None:
        assert form.is_valid(), form.errors
        assert plain == dict(form.validated_data)


@pytest.mark.parametrize("body", SETTLE_BODIES)
def test_a_plain_settle_body_is_read_as_the_serializer_reads_it(body: Any) -> None:
    from budgets.serializers import SettleSerializer, plain_settle_input

    plain = plain_settle_input(body)
    form = SettleSerializer(data=body)
    if plain is not None:
        assert form.is_valid(), form.errors
        assert plain == dict(form.validated_data)


def test_ordinary_bodies_take_the_plain_path() -> None:
    from budgets.serializers import plain_reservation_input, plain_settle_input

    assert plain_reservation_input(RESERVATION_BODIES[1]) is not None
    assert plain_reservation_input({**RESERVE, "input_tokens": None, "input_text": "hello"}) is not None
    assert plain_settle_input(SETTLE_BODIES[1]) is not None
    accepted = sum(plain_reservation_input(b) is not None for b in RESERVATION_BODIES)
    assert 8 <= accepted < len(RESERVATION_BODIES)
