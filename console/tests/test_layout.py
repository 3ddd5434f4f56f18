"""The console's shared layout (issue 19): grouped sidebar and user menu, a title per page, one
time-zone rule, one money and duration format, flash messages after htmx actions, the operations
dashboard."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents.models import Run
from console.templatetags.fmt import format_seconds, format_usd
from guardrails.models import GuardrailEvent
from tenants.models import Tenant
from tenants.testing import Cast

HTMX = {"HX-Request": "true"}


def test_money_is_dollars_with_cents_and_sub_cent_amounts_keep_two_digits() -> None:
    assert format_usd(0) == "$0.00"
    assert format_usd(10_000) == "$0.01"
    assert format_usd(349_500_000) == "$349.50"
    assert format_usd(1_234_567_891) == "$1,234.57"
    assert format_usd(453) == "$0.00045"
    assert format_usd(4_500) == "$0.0045"
    assert format_usd(1) == "$0.000001"
    assert format_usd(-2_500_000) == "-$2.50"
    assert format_usd(None) == "—"


def test_durations_read_as_a_person_would_say_them() -> None:
    assert format_seconds(28.1873) == "28 s"
    assert format_seconds(1.024257) == "1.0 s"
    assert format_seconds(0.4123) == "412 ms"
    assert format_seconds(0.0042) == "4.2 ms"
    assert format_seconds(0.000_3) == "300 µs"
    assert format_seconds(243) == "4 min 3 s"
    assert format_seconds(4320) == "1 h 12 min"
    assert format_seconds(90_000) == "1 d 1 h"
    rendered = Template("{% load fmt %}{{ a|ms }} · {{ b|us }} · {{ c|seconds }}").render(
        Context({"a": 28187.3, "b": 1024257, "c": timedelta(minutes=2)})
    )
    assert rendered == "28 s · 1.0 s · 2 min"


def test_a_timestamp_is_one_line_relative_with_the_exact_time_in_the_tenants_zone_on_hover() -> None:
    tenant = Tenant(name="Acme", slug="acme", timezone="Asia/Tokyo")
    now = timezone.now()
    template = Template("{% load fmt %}{% when value %}")
    recent = template.render(Context({"tenant": tenant, "value": now - timedelta(minutes=4)}))
    assert ">4 min ago</time>" in recent and 'class="when"' in recent
    exact = (now - timedelta(minutes=4)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert f'title="{exact:%Y-%m-%d %H:%M:%S} Asia/Tokyo"' in recent
    old = template.render(Context({"tenant": tenant, "value": datetime(2024, 3, 5, 23, 30, tzinfo=UTC)}))
    assert ">6 Mar 2024 08:30</time>" in old  # the next morning in Tokyo
    assert template.render(Context({"value": None})) == "—"


@pytest.mark.django_db
def test_the_sidebar_groups_the_sections_and_hides_what_the_role_cannot_open(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    page = client.get(reverse("console:runs", args=["acme"])).content.decode()
    sidebar = page[page.index('<aside class="sidebar"') : page.index("</aside>")]
    groups = re.findall(r'class="nav-group"[^>]*>([^<]+)<', sidebar)
    assert groups == ["Operate", "Build", "Govern", "Tenant"]
    links = re.findall(r"<a href=\"[^\"]+\"(?: aria-current=\"page\")?>([^<]+)", sidebar)
    assert links == [
        *("Overview", "Runs", "Traces", "Agents", "Tools", "Models", "Gateway"),
        *("Budgets", "Guardrails", "Evals", "Members"),
    ]
    assert 'aria-current="page">Runs' in sidebar
    assert 'id="user-menu"' in page and "Sign out" in page and 'id="tenant-switcher"' in page


@pytest.mark.django_db
def test_each_page_has_its_own_title_and_states_the_time_zone_rule(alice_client: Client, cast: Cast) -> None:
    cast.acme.timezone = "Europe/Paris"
    cast.acme.save(update_fields=["timezone"])
    titles = {}
    for name in ("console:dashboard", "console:runs", "console:budgets", "console:traces", "console:approvals"):
        page = alice_client.get(reverse(name, args=["acme"])).content.decode()
        titles[name] = re.search(r"<title>([^<]+)</title>", page).group(1)  # type: ignore[union-attr]
        assert "Times are in Acme's time zone, Europe/Paris" in page
    assert titles["console:runs"] == "Runs · Acme · Agent Operations Console"
    assert titles["console:dashboard"] == "Overview · Acme · Agent Operations Console"
    assert len(set(titles.values())) == len(titles)


@pytest.mark.django_db
def test_pages_print_times_in_the_tenants_zone(alice_client: Client, cast: Cast) -> None:
    cast.acme.timezone = "Asia/Tokyo"
    cast.acme.save(update_fields=["timezone"])
    at = datetime(2024, 3, 5, 23, 30, tzinfo=UTC)
    GuardrailEvent.objects.create(tenant=cast.acme, stage="input", action="block", reason="test", created_at=at)
    page = alice_client.get(reverse("console:guardrail_events", args=["acme"])).content.decode()
    assert "2024-03-06 08:30" in page and "2024-03-05 23:30" not in page


@pytest.mark.django_db
def test_an_htmx_action_answers_with_its_flash_message_out_of_band(alice_client: Client, cast: Cast) -> None:
    from tenants.models import Membership

    vera = Membership.objects.get(user=cast.vera, tenant=cast.acme)
    response = alice_client.post(
        reverse("console:member_role", args=["acme", vera.pk]), {"role": "reviewer"}, headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("vera@acme.test is now reviewer") == 1
    # Whether the fragment rendered it or the middleware added it, the next page does not repeat it.
    page = alice_client.get(reverse("console:members", args=["acme"])).content.decode()
    assert "is now reviewer" not in page


@pytest.mark.django_db
def test_a_message_the_fragment_does_not_show_arrives_as_an_out_of_band_swap(
    alice_client: Client, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.contrib import messages
    from django.http import HttpResponse

    from console import middleware

    def view(request: Any) -> HttpResponse:
        messages.success(request, "Saved the thing.")
        return HttpResponse("<tr><td>row</td></tr>")

    request_factory = __import__("django.test", fromlist=["RequestFactory"]).RequestFactory()
    request = request_factory.post("/x/", headers=HTMX)
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.cache import SessionStore
    from django_htmx.middleware import HtmxDetails

    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    request.htmx = HtmxDetails(request)
    response = middleware.ConsoleMiddleware(view)(request)
    html = response.content.decode()
    assert html.startswith('<tr><td>row</td></tr><template data-flash><article class="message success"')
    assert "Saved the thing." in html
    # Not on a redirect, whose page shows them.
    redirected = request_factory.post("/x/", headers=HTMX)
    redirected.session = SessionStore()
    redirected._messages = FallbackStorage(redirected)
    redirected.htmx = HtmxDetails(redirected)

    def moved(request: Any) -> HttpResponse:
        messages.success(request, "Saved the thing.")
        response = HttpResponse("")
        response["HX-Redirect"] = "/y/"
        return response

    assert b"Saved" not in middleware.ConsoleMiddleware(moved)(redirected).content
    assert [str(m) for m in redirected._messages] == ["Saved the thing."]
    # Not for a full page, nor for a boosted navigation.
    plain = request_factory.post("/x/")
    plain.session = SessionStore()
    plain._messages = FallbackStorage(plain)
    plain.htmx = HtmxDetails(plain)
    assert "Saved the thing." not in middleware.ConsoleMiddleware(view)(plain).content.decode()


@pytest.mark.django_db
def test_the_dashboard_shows_todays_operations(alice_client: Client, cast: Cast) -> None:
    from agents.models import Agent

    agent = Agent.objects.for_tenant(cast.acme).first()
    assert agent is not None
    version = agent.versions.order_by("-number").first()
    assert version is not None
    for status in ("succeeded", "succeeded", "failed"):
        Run.objects.create(
            tenant=cast.acme, agent=agent, agent_version=version, input="hi", status=status, cost_micros=1_250_000
        )
    GuardrailEvent.objects.create(tenant=cast.acme, stage="input", action="block", reason="test")
    page = alice_client.get(reverse("console:dashboard", args=["acme"])).content.decode()
    runs = page[page.index('data-testid="ops-runs"') :]
    assert re.search(r'class="figure">3\b', runs)
    assert ">1 failed</a>" in runs and "33 % of today" in runs
    spend = page[page.index('data-testid="ops-spend"') :]
    assert "$3.75" in spend[:300]
    blocks = page[page.index('data-testid="ops-blocks"') :]
    assert re.search(r'class="figure bad">1<', blocks)
    assert 'data-testid="ops-budgets"' in page and 'data-testid="ops-evals"' in page


@pytest.mark.django_db
def test_a_viewer_sees_no_approvals_card(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    page = client.get(reverse("console:dashboard", args=["acme"])).content.decode()
    assert 'data-testid="ops-runs"' in page and 'data-testid="ops-approvals"' not in page


@pytest.mark.django_db
def test_an_empty_page_says_what_it_is_for_and_how_to_fill_it(alice_client: Client, cast: Cast) -> None:
    page = alice_client.get(reverse("console:runs", args=["acme"])).content.decode()
    empty = page[page.index('id="runs-empty"') :]
    assert "No runs yet." in empty and "every model and tool step" in empty
    assert f'href="{reverse("console:agents", args=["acme"])}"' in empty[:1000]
    assert "curl -X POST http://testserver/api/v1/runs" in empty
    filtered = alice_client.get(reverse("console:runs", args=["acme"]) + "?status=failed").content.decode()
    assert "No runs match these filters." in filtered and "curl" not in filtered


@pytest.mark.django_db
def test_a_viewer_is_not_offered_an_action_they_cannot_take(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    page = client.get(reverse("console:budgets", args=["acme"])).content.decode()
    empty = page[page.index('data-testid="empty-state"') :]
    assert "No budgets yet." in empty and "spend is unlimited" in empty
    assert reverse("console:budget_new", args=["acme"]) not in empty and "/api/v1/budgets" in empty
