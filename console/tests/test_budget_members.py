"""Budget views per scope: a per-end-user budget's bar shows its highest end user against the limit
each of them has, and how many are at it, never the sum of all end users against one limit."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from budgets import services
from tenants.audit import Actor
from tenants.testing import Cast

pytestmark = pytest.mark.django_db


def _reserve(cast: Cast, user: str, tokens: int) -> None:
    services.budget_reserve(
        tenant=cast.acme, model="default", input_tokens=tokens, max_output_tokens=1, end_user_id=user
    )


def _card(html: str, name: str) -> str:
    return html.split(f'data-budget="{name}"', 1)[1].split("</article>", 1)[0]


def test_a_per_end_user_budget_shows_its_highest_end_user_not_the_sum(alice_client: Client, cast: Cast) -> None:
    services.budget_create(
        actor=Actor.system_actor("tests"),
        tenant=cast.acme,
        name="Per user",
        scope="end_user",
        unit="tokens",
        limit=1_000,
        on_exceed="alert_only",
    )
    for user, tokens in [("u-big", 599), ("u-mid", 499), ("u-small", 9)]:
        _reserve(cast, user, tokens)  # 1,110 tokens in all: 111 % of one end user's limit

    card = _card(alice_client.get(reverse("console:budgets", args=["acme"])).content.decode(), "Per user")

    assert 'data-testid="used-pct">60%<' in card
    assert 'data-testid="worst-member">u-big<' in card
    assert 'data-testid="members-over">0 of 3<' in card
    assert re.search(r'class="usage-reserved"[^>]*width="60.00"', card)

    _reserve(cast, "u-over", 1_199)
    card = _card(alice_client.get(reverse("console:budgets", args=["acme"])).content.decode(), "Per user")
    assert 'data-testid="used-pct">120%<' in card and 'data-testid="worst-member">u-over<' in card
    assert 'data-testid="members-over">1 of 4<' in card
