"""The budgets and reservations REST API: contracts, validation naming the field, the 402 payload."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from budgets import services
from budgets.models import Budget, BudgetCounter, Reservation
from budgets.selectors import ledger_discrepancies
from budgets.tests.factories import make_budget
from tenants.models import AuditEvent, Scope
from tenants.testing import ApiClient, ApiContract, Cast, assert_error

RESERVE = {"model": "default", "input_tokens": 1000, "max_output_tokens": 1000}
WORST = 2_000


def a_budget(cast: Cast) -> Budget:
    return Budget.objects.for_tenant(cast.acme).first() or make_budget(cast.acme, limit=1_000_000)


def a_reservation(cast: Cast) -> Reservation:
    return services.budget_reserve(tenant=cast.acme, model="default", input_tokens=10, max_output_tokens=10)


class TestBudgetList(ApiContract):
    url_name = "budget-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        a_budget(cast)
        return reverse(self.url_name)


class TestBudgetCreate(ApiContract):
    url_name = "budget-list"
    method = "post"
    _n = 0

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        TestBudgetCreate._n += 1
        return {"name": f"budget {TestBudgetCreate._n}", "limit": 5_000_000}


class TestBudgetDetail(ApiContract):
    url_name = "budget-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_budget(cast).pk])


class TestBudgetUsage(ApiContract):
    url_name = "budget-usage"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_budget(cast).pk])


class TestBudgetAdjust(ApiContract):
    url_name = "budget-adjust"
    method = "post"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_budget(cast).pk])

    def body(self, cast: Cast) -> Any:
        return {"settled_delta": 100, "note": "Provider invoice: a call made outside the console."}


class TestReservationCreate(ApiContract):
    url_name = "reservation-list"
    method = "post"
    scope = Scope.BUDGETS_RESERVE

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return RESERVE


class TestReservationDetail(ApiContract):
    url_name = "reservation-detail"
    scope = Scope.BUDGETS_RESERVE
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_reservation(cast).pk])


class TestReservationSettle(ApiContract):
    url_name = "reservation-settle"
    method = "post"
    scope = Scope.BUDGETS_RESERVE
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_reservation(cast).pk])

    def body(self, cast: Cast) -> Any:
        return {"input_tokens": 10, "output_tokens": 5}


class TestReservationRelease(ApiContract):
    url_name = "reservation-release"
    method = "post"
    scope = Scope.BUDGETS_RESERVE
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_reservation(cast).pk])


# --- Behaviour ------------------------------------------------------------------------------------


@pytest.fixture
def reserver(api: Any) -> ApiClient:
    client: ApiClient = api(Scope.BUDGETS_RESERVE)
    return client


@pytest.mark.django_db
def test_reserve_settle_over_rest(cast: Cast, reserver: ApiClient) -> None:
    budget = make_budget(cast.acme, limit=10_000)
    created = reserver.post(reverse("reservation-list"), RESERVE)
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["amount"], body["unit"], body["status"]) == (WORST, "usd_micros", "open")
    assert body["expires_at"] and body["id"]
    settled = reserver.post(
        reverse("reservation-settle", args=[body["id"]]), {"input_tokens": 100, "output_tokens": 10}
    )
    assert settled.status_code == 200 and settled.json()["actual_micros"] == 50 + 15
    again = reserver.post(reverse("reservation-settle", args=[body["id"]]), {"input_tokens": 1, "output_tokens": 1})
    assert_error(again, 409, "conflict")
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget)
    assert (counter.settled, counter.reserved) == (65, 0)


@pytest.mark.django_db
def test_release_over_rest_frees_the_room(cast: Cast, reserver: ApiClient) -> None:
    make_budget(cast.acme, limit=WORST)
    first = reserver.post(reverse("reservation-list"), RESERVE).json()
    assert_error(reserver.post(reverse("reservation-list"), RESERVE), 402, "budget_exceeded")
    assert reserver.post(reverse("reservation-release", args=[first["id"]])).json()["status"] == "released"
    assert reserver.post(reverse("reservation-list"), RESERVE).status_code == 201


@pytest.mark.django_db
def test_the_402_names_the_budget_with_every_figure(cast: Cast, reserver: ApiClient) -> None:
    budget = make_budget(cast.acme, name="Per user daily", scope="end_user", period="day", limit=3_000)
    assert reserver.post(reverse("reservation-list"), {**RESERVE, "end_user_id": "ann"}).status_code == 201
    error = assert_error(reserver.post(reverse("reservation-list"), {**RESERVE, "end_user_id": "ann"}), 402)
    assert error["type"] == "budget_exceeded"
    assert error["budget"] == str(budget.pk)
    assert (error["scope"], error["scope_value"], error["unit"]) == ("end_user", "ann", "usd_micros")
    assert (error["limit"], error["used"], error["reserved"]) == (3_000, 0, WORST)
    assert error["resets_at"].endswith("T00:00:00Z") or "T00:00:00" in error["resets_at"]
    assert "Per user daily" in error["message"]
    assert reserver.post(reverse("reservation-list"), {**RESERVE, "end_user_id": "ben"}).status_code == 201
    assert error["on_exceed"] == "block"


@pytest.mark.django_db
def test_a_full_require_approval_budget_refuses_a_rest_client_saying_so(cast: Cast, reserver: ApiClient) -> None:
    """Only the run engine pauses for a reviewer; an agent client reserving directly is refused."""
    make_budget(cast.acme, name="Ask first", limit=1, on_exceed="require_approval")
    error = assert_error(reserver.post(reverse("reservation-list"), RESERVE), 402, "budget_exceeded")
    assert error["on_exceed"] == "require_approval" and "Ask first" in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input_tokens": 1, "max_output_tokens": 1}, "model"),
        ({**RESERVE, "model": "no-such-alias"}, "model"),
        ({"model": "default", "max_output_tokens": 1}, "input_tokens"),
        ({**RESERVE, "input_tokens": -1}, "input_tokens"),
        ({**RESERVE, "input_tokens": "many"}, "input_tokens"),
        ({**RESERVE, "max_output_tokens": None}, "max_output_tokens"),
        ({**RESERVE, "max_output_tokens": 10**12}, "max_output_tokens"),
        ({**RESERVE, "agent": "Nobody"}, "agent"),
        ({**RESERVE, "end_user_id": "x" * 201}, "end_user_id"),
    ],
)
def test_a_bad_reservation_is_a_400_naming_the_field(
    cast: Cast, reserver: ApiClient, body: dict[str, Any], field: str
) -> None:
    error = assert_error(reserver.post(reverse("reservation-list"), body), 400, "validation_error")
    assert field in error["fields"], error
    assert field in error["message"]


@pytest.mark.django_db
def test_a_key_over_its_token_cap_is_refused_naming_the_cap(cast: Cast, reserver: ApiClient) -> None:
    from tenants.models import ApiKey

    ApiKey.objects.filter(tenant=cast.acme).update(max_tokens_per_request=1500)
    error = assert_error(reserver.post(reverse("reservation-list"), RESERVE), 400, "token_cap_exceeded")
    assert error["cap"] == 1500 and error["requested"] == 2000


@pytest.mark.django_db
def test_a_bad_settle_is_a_400_naming_the_field(cast: Cast, reserver: ApiClient) -> None:
    reservation = a_reservation(cast)
    error = assert_error(reserver.post(reverse("reservation-settle", args=[reservation.pk]), {"input_tokens": 1}), 400)
    assert "output_tokens" in error["fields"]


@pytest.mark.django_db
def test_budget_crud_over_rest_is_validated_and_audited(cast: Cast, acme_admin_api: ApiClient) -> None:
    created = acme_admin_api.post(
        reverse("budget-list"),
        {"name": "Tokens per session", "scope": "session", "unit": "tokens", "limit": 50_000, "thresholds": [90]},
    )
    assert created.status_code == 201, created.content
    budget_id = created.json()["id"]
    assert created.json()["thresholds"] == [90]
    changed = acme_admin_api.patch(reverse("budget-detail", args=[budget_id]), {"limit": 60_000, "enabled": False})
    assert changed.status_code == 200 and changed.json()["limit"] == 60_000 and changed.json()["enabled"] is False
    put = acme_admin_api.request(
        "put", reverse("budget-detail", args=[budget_id]), {"name": "Tokens per session", "limit": 70_000}
    )
    assert put.status_code == 200 and put.json()["unit"] == "tokens", put.content
    error = assert_error(acme_admin_api.patch(reverse("budget-detail", args=[budget_id]), {"unit": "usd_micros"}), 400)
    assert "unit" in error["fields"]
    for bad, field in [
        ({"name": "x", "limit": 0}, "limit"),
        ({"name": "x", "limit": 5, "scope": "galaxy"}, "scope"),
        ({"name": "x", "limit": 5, "thresholds": [0]}, "thresholds"),
        ({"name": "x", "limit": 5, "agent": "Nobody"}, "agent"),
        ({"limit": 5}, "name"),
    ]:
        error = assert_error(acme_admin_api.post(reverse("budget-list"), bad), 400)
        assert field in error["fields"], (bad, error)
    assert_error(acme_admin_api.post(reverse("budget-list"), {"name": "Tokens per session", "limit": 1}), 409)
    actions = set(AuditEvent.objects.for_tenant(cast.acme).filter(target_id=budget_id).values_list("action", flat=True))
    assert actions == {"budget.create", "budget.update"}
    assert acme_admin_api.delete(reverse("budget-detail", args=[budget_id])).status_code == 204


def test_an_alert_webhook_is_set_over_rest_and_its_secret_never_comes_back(acme_admin_api: ApiClient) -> None:
    body = {"name": "Hooked", "limit": 5_000_000, "webhook_url": "https://hooks.example.com/aoc", "webhook_secret": "k"}
    created = acme_admin_api.post(reverse("budget-list"), body)
    assert created.status_code == 201, created.content
    assert created.json()["webhook_url"] == "https://hooks.example.com/aoc"
    assert created.json()["webhook_secret_set"] is True and "webhook_secret" not in created.json()
    detail = reverse("budget-detail", args=[created.json()["id"]])
    cleared = acme_admin_api.patch(detail, {"webhook_secret": ""})
    assert cleared.status_code == 200 and cleared.json()["webhook_secret_set"] is False
    error = assert_error(acme_admin_api.patch(detail, {"webhook_url": "http://10.0.0.5/hook"}), 400)
    assert "webhook_url" in error["fields"] and "https" in error["fields"]["webhook_url"][0]


@pytest.mark.django_db
def test_a_budget_that_counted_cannot_be_deleted(cast: Cast, acme_admin_api: ApiClient) -> None:
    budget = make_budget(cast.acme, limit=10_000)
    a_reservation(cast)
    assert_error(acme_admin_api.delete(reverse("budget-detail", args=[budget.pk])), 409, "conflict")


@pytest.mark.django_db
def test_usage_over_rest_shows_the_top_consumers(cast: Cast, reserver: ApiClient, acme_admin_api: ApiClient) -> None:
    budget = make_budget(cast.acme, scope="end_user", limit=100_000)
    for user in ("ann", "ann", "ben"):
        reserver.post(reverse("reservation-list"), {**RESERVE, "end_user_id": user})
    usage = acme_admin_api.get(reverse("budget-usage", args=[budget.pk])).json()
    assert (usage["limit"], usage["settled"], usage["reserved"], usage["remaining"]) == (
        100_000,
        0,
        3 * WORST,
        100_000 - 2 * WORST,  # what the top end user (ann) has left, not the sum's
    )
    assert usage["member"]["member"] == "ann" and usage["members_metered"] == 2
    assert [(c["scope_value"], c["reserved"]) for c in usage["top"]] == [("ann", 2 * WORST), ("ben", WORST)]


@pytest.mark.django_db
def test_an_adjustment_is_a_ledger_entry_and_an_audit_row(cast: Cast, acme_admin_api: ApiClient) -> None:
    budget = make_budget(cast.acme, scope="end_user", limit=10_000)
    url = reverse("budget-adjust", args=[budget.pk])
    made = acme_admin_api.post(url, {"settled_delta": 700, "note": "invoice 42", "scope_value": "ann"})
    assert made.status_code == 201, made.content
    assert (made.json()["kind"], made.json()["settled_delta"]) == ("adjust", 700)
    error = assert_error(acme_admin_api.post(url, {"settled_delta": -701, "note": "refund", "scope_value": "ann"}), 400)
    assert "settled_delta" in error["fields"]
    assert "note" in assert_error(acme_admin_api.post(url, {"settled_delta": 5, "note": " "}), 400)["fields"]
    counter = BudgetCounter.objects.for_tenant(cast.acme).get(budget=budget, scope_value="ann")
    assert counter.settled == 700
    assert (
        AuditEvent.objects.for_tenant(cast.acme).filter(action="budget.adjust", target_id=str(budget.pk)).count() == 1
    )
    assert ledger_discrepancies(tenant=cast.acme) == []
