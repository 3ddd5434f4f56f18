"""The usage API of a per-member budget answers per member, never the sum against one limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import reverse
from django.utils.http import urlencode

from budgets import services
from budgets.tests.factories import SYSTEM, make_budget
from tenants.models import Scope
from tenants.testing import ApiClient, Cast, assert_error

pytestmark = pytest.mark.django_db


def test_a_per_end_user_budget_answers_per_member(cast: Cast, api: Callable[..., ApiClient]) -> None:
    budget = make_budget(cast.acme, name="Per user", scope="end_user", limit=10_000)
    for user, spent in [("u-7", 5_300), ("u-1", 4_000), ("u-2", 3_000)]:
        services.budget_adjust(actor=SYSTEM, budget=budget, settled_delta=spent, note="spend", scope_value=user)
    reader = api(Scope.READ)
    url = reverse("budget-usage", args=[budget.pk])
    body = reader.get(url).json()
    # The sum (123 %) is kept as the total it is; what is left is the top member's.
    assert (body["settled"], body["reserved"], body["limit"]) == (12_300, 0, 10_000)
    assert body["remaining"] == 4_700 and body["member"] == {
        "member": "u-7",
        "used": 5_300,
        "reserved": 0,
        "remaining": 4_700,
    }
    assert (body["members_metered"], body["members_over"], body["scope"]) == (3, 0, "end_user")
    assert [m["member"] for m in body["members"]] == ["u-7", "u-1", "u-2"]
    assert reader.get(f"{url}?{urlencode({'member': 'u-2'})}").json()["remaining"] == 7_000
    assert reader.get(f"{url}?{urlencode({'member': 'never-seen'})}").json()["remaining"] == 10_000
    assert len(reader.get(f"{url}?{urlencode({'top': '1'})}").json()["members"]) == 1
    for params, field in [({"top": "0"}, "top"), ({"top": "x"}, "top"), ({"user": "u-7"}, "user")]:
        assert field in assert_error(reader.get(f"{url}?{urlencode(params)}"), 400)["fields"]


def test_a_tenant_budget_keeps_its_remaining_and_refuses_a_member(cast: Cast, api: Callable[..., ApiClient]) -> None:
    budget = make_budget(cast.acme, name="Tenant", limit=10_000)
    services.budget_adjust(actor=SYSTEM, budget=budget, settled_delta=2_500, note="spend")
    reader = api(Scope.READ)
    url = reverse("budget-usage", args=[budget.pk])
    body = reader.get(url).json()
    assert (body["remaining"], body["member"], body["members"], body["members_metered"]) == (7_500, None, [], 0)
    assert "member" in assert_error(reader.get(f"{url}?{urlencode({'member': 'u-1'})}"), 400)["fields"]
