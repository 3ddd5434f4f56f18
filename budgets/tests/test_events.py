"""A threshold crossing reaches the tenant's live group through the real Redis channel layer."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from budgets import services
from budgets.tests.factories import make_budget
from tenants.testing import Cast


@pytest.mark.django_db(transaction=True)
async def test_a_crossed_threshold_is_pushed_to_the_tenants_live_group_once(cast: Cast) -> None:
    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel()
    await layer.group_add(cast.acme.live_group, channel)
    budget = await sync_to_async(make_budget)(cast.acme, name="Alerting", limit=2_500, thresholds=[50])

    def reserve() -> None:
        services.budget_reserve(tenant=cast.acme, model="default", input_tokens=1000, max_output_tokens=1000)

    await sync_to_async(reserve)()  # 2 000 of 2 500: crosses 50 %
    events = []
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(channel), timeout=1)
        except TimeoutError:
            break
        events.append(message["event"])
    alerts = [e for e in events if e["type"] == "budget.alert"]
    assert len(alerts) == 1
    assert alerts[0] | {"alert_id": ""} == {
        "type": "budget.alert",
        "alert_id": "",
        "budget_id": str(budget.pk),
        "budget_name": "Alerting",
        "threshold": 50,
        "scope_value": "",
        "used": 2_000,
        "limit": 2_500,
        "unit": "usd_micros",
    }
    await layer.group_discard(cast.acme.live_group, channel)
