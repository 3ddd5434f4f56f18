"""Budgets pages: contracts for every page, and what each page does."""

from __future__ import annotations

import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from budgets import services
from budgets.models import Budget, BudgetAlert, LedgerEntry
from tenants.audit import Actor
from tenants.models import Role
from tenants.testing import Cast, ConsolePageContract

HTMX = {"HX-Request": "true"}
SYSTEM = Actor.system_actor("tests")


def _budget(cast: Cast, name: str = "Monthly spend", **fields: Any) -> Budget:
    existing = Budget.objects.filter(tenant=cast.acme, name=name).first()
    return existing or services.budget_create(
        actor=SYSTEM, tenant=cast.acme, name=name, limit=fields.pop("limit", 10_000_000), **fields
    )


def _form(**overrides: str) -> dict[str, str]:
    return {
        "name": "Daily USD",
        "scope": "tenant",
        "agent": "",
        "period": "day",
        "unit": "usd_micros",
        "limit": "25.00",
        "thresholds": "70, 80, 100",
        "on_exceed": "block",
        "enabled": "on",
        **overrides,
    }


def _text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- Contracts ---------------------------------------------------------------------------------


class TestBudgetsPage(ConsolePageContract):
    url_name = "console:budgets"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestBudgetNewPage(ConsolePageContract):
    url_name = "console:budget_new"
    role = Role.ADMIN
    method = "post"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])

    def data(self, cast: Cast) -> dict[str, Any]:
        return _form()


class TestBudgetEditPage(ConsolePageContract):
    url_name = "console:budget_edit"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _budget(cast).pk])


class TestBudgetLedgerPage(ConsolePageContract):
    url_name = "console:budget_ledger"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


# --- The budgets page --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_shows_settled_reserved_and_limit_of_the_current_period(alice_client: Client, cast: Cast) -> None:
    _budget(cast, "Acme tokens", unit="tokens", limit=10_000, period="day")
    services.budget_reserve(tenant=cast.acme, model="default", input_tokens=1_000, max_output_tokens=1_000)
    settled = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=500, max_output_tokens=500)
    services.budget_settle(reservation=settled, input_tokens=500, output_tokens=200)

    response = alice_client.get(reverse("console:budgets", args=["acme"]))

    assert response.status_code == 200
    text = _text(response)
    assert 'data-testid="settled">700 tokens<' in text
    assert 'data-testid="reserved">2,000 tokens<' in text
    assert 'data-testid="limit">10,000 tokens<' in text
    assert 'data-testid="used-pct">27%<' in text
    assert "Resets <time" in text  # a daily budget names its next reset


@pytest.mark.django_db
def test_the_reset_time_is_shown_in_the_tenants_time_zone(alice_client: Client, cast: Cast) -> None:
    cast.acme.timezone = "Asia/Tokyo"
    cast.acme.save(update_fields=["timezone"])
    _budget(cast, "Daily", period="day")

    url = reverse("console:budgets", args=["acme"])
    text = _text(alice_client.get(url))
    fragment = _text(alice_client.get(url, headers=HTMX))

    assert "00:00 JST" in text and "Asia/Tokyo" in text
    assert "00:00 JST" in fragment  # the periodic refresh too


@pytest.mark.django_db
def test_a_per_end_user_budget_lists_its_top_consumers(alice_client: Client, cast: Cast) -> None:
    _budget(cast, "Per user", scope="end_user", unit="tokens", limit=1_000_000)
    for user, tokens in [("u-small", 10), ("u-big", 900), ("u-mid", 100)]:
        services.budget_reserve(
            tenant=cast.acme, model="default", input_tokens=tokens, max_output_tokens=1, end_user_id=user
        )

    text = _text(alice_client.get(reverse("console:budgets", args=["acme"])))

    order = [m.group(1) for m in re.finditer(r'data-consumer="([^"]+)"', text)]
    assert order == ["u-big", "u-mid", "u-small"]
    assert "<td>0 tokens</td><td>901 tokens</td>" in text  # u-big holds 900 input + 1 output, unsettled


@pytest.mark.django_db
def test_an_htmx_refresh_renders_only_the_usage_bars(alice_client: Client, cast: Cast) -> None:
    _budget(cast, "Polled")

    response = alice_client.get(reverse("console:budgets", args=["acme"]), headers=HTMX)

    text = response.content.decode().strip()
    assert text.startswith('<section id="budgets"') and text.endswith("</section>")
    assert 'data-budget="Polled"' in text and "spend-data" not in text


@pytest.mark.django_db
def test_a_tenant_budget_lists_no_consumers(alice_client: Client, cast: Cast) -> None:
    _budget(cast, "Whole tenant")
    text = _text(alice_client.get(reverse("console:budgets", args=["acme"])))
    assert "Top end users" not in text and "Whole tenant" in text


@pytest.mark.django_db
def test_the_page_takes_a_bounded_number_of_queries(
    alice_client: Client, cast: Cast, django_assert_max_num_queries: Any
) -> None:
    for i in range(12):
        _budget(cast, f"Per user {i}", scope="end_user" if i % 2 else "tenant", unit="tokens", limit=10**9)
        services.budget_reserve(
            tenant=cast.acme, model="default", input_tokens=10, max_output_tokens=10, end_user_id=f"u{i}"
        )
    url = reverse("console:budgets", args=["acme"])
    alice_client.get(url)  # warm the session and membership caches alike for both counts
    with django_assert_max_num_queries(14):
        response = alice_client.get(url)
    assert response.content.decode().count("data-budget=") == 12


@pytest.mark.django_db
def test_budget_names_and_end_user_ids_are_escaped(alice_client: Client, cast: Cast) -> None:
    _budget(cast, "<b>bold</b>", scope="end_user")
    services.budget_reserve(
        tenant=cast.acme, model="default", input_tokens=1, max_output_tokens=1, end_user_id="<script>x</script>"
    )

    body = alice_client.get(reverse("console:budgets", args=["acme"])).content.decode()

    assert "<b>bold</b>" not in body and "&lt;b&gt;bold&lt;/b&gt;" in body
    assert "<script>x</script>" not in body


@pytest.mark.django_db
def test_a_viewer_sees_budgets_but_no_way_to_change_them(client: Client, cast: Cast) -> None:
    budget = _budget(cast)
    client.force_login(cast.vera)

    body = client.get(reverse("console:budgets", args=["acme"])).content.decode()

    assert "Monthly spend" in body
    assert reverse("console:budget_edit", args=["acme", budget.pk]) not in body
    assert reverse("console:budget_new", args=["acme"]) not in body


@pytest.mark.django_db
def test_the_alerts_feed_shows_a_crossed_threshold(alice_client: Client, cast: Cast) -> None:
    _budget(cast, "Small", unit="tokens", limit=100, thresholds=[50])
    services.budget_reserve(tenant=cast.acme, model="default", input_tokens=40, max_output_tokens=20)
    assert BudgetAlert.objects.filter(tenant=cast.acme, threshold=50).exists()

    text = _text(alice_client.get(reverse("console:budgets", args=["acme"])))

    assert 'data-alert="Small"' in text and "<td>50%</td>" in text
    assert "<td>60 tokens</td><td>100 tokens</td>" in text


@pytest.mark.django_db
def test_the_chart_data_block_holds_settled_spend_by_model_and_end_user(alice_client: Client, cast: Cast) -> None:
    reservation = services.budget_reserve(
        tenant=cast.acme, model="default", input_tokens=1_000, max_output_tokens=100, end_user_id="u-7"
    )
    services.budget_settle(reservation=reservation, input_tokens=1_000, output_tokens=50)
    reservation.refresh_from_db()

    body = alice_client.get(reverse("console:budgets", args=["acme"])).content.decode()

    block = re.search(r'<script id="spend-data" type="application/json">(.*?)</script>', body, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    assert len(data["days"]) == 30
    (by_model,) = data["model"]
    assert by_model["label"] == reservation.model.model_id
    assert by_model["data"][-1] == pytest.approx((reservation.actual_micros or 0) / 1_000_000)
    assert [s["label"] for s in data["end_user"]] == ["u-7"]
    # The chart is drawn by static files only: the CSP allows no inline script.
    assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", body) == []


# --- Create and edit ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_creates_a_budget_in_usd(alice_client: Client, cast: Cast) -> None:
    response = alice_client.post(reverse("console:budget_new", args=["acme"]), _form(limit="25.50"))

    assert response.status_code == 302
    budget = Budget.objects.get(tenant=cast.acme, name="Daily USD")
    assert (budget.limit, budget.period, budget.thresholds) == (25_500_000, "day", [70, 80, 100])
    assert "Daily USD" in alice_client.get(response["Location"]).content.decode()


@pytest.mark.django_db
def test_a_per_end_user_budget_may_opt_in_to_metering_anonymous_calls(alice_client: Client, cast: Cast) -> None:
    url = reverse("console:budget_new", args=["acme"])
    assert "Meter calls without an end user or session" in alice_client.get(url).content.decode()
    response = alice_client.post(url, _form(scope="end_user", meter_anonymous="on"))
    assert response.status_code == 302
    budget = Budget.objects.get(tenant=cast.acme, name="Daily USD")
    assert budget.meter_anonymous is True
    edit = reverse("console:budget_edit", args=["acme", budget.pk])
    assert re.search(r'<input[^>]*name="meter_anonymous"[^>]*checked', _text(alice_client.get(edit)))
    refused = alice_client.post(url, _form(name="Tenant wide", meter_anonymous="on"))
    assert refused.status_code == 400 and not Budget.objects.filter(tenant=cast.acme, name="Tenant wide").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"limit": "lots"}, "limit", "Enter a number"),
        ({"limit": "0"}, "limit", "more than zero"),
        ({"limit": "0.0000001"}, "limit", "at most 6 decimals"),
        ({"unit": "tokens", "limit": "1.5"}, "limit", "Tokens are whole"),
        ({"thresholds": "70, abc"}, "thresholds", "Whole percentages"),
        ({"thresholds": "150"}, "thresholds", "from 1 to 100"),
        ({"name": ""}, "name", "This field is required"),
    ],
)
def test_an_invalid_form_is_refused_with_a_message_next_to_the_field(
    alice_client: Client, cast: Cast, overrides: dict[str, str], field: str, message: str
) -> None:
    response = alice_client.post(reverse("console:budget_new", args=["acme"]), _form(**overrides))

    assert response.status_code == 400
    text = _text(response)
    error = re.search(rf'id="id_{field}_error"[^>]*>(.*?)</div>', text)
    assert error is not None and message in error.group(1), text[:3000]
    assert not Budget.objects.filter(tenant=cast.acme, name=overrides.get("name", "Daily USD")).exists()


@pytest.mark.django_db
def test_a_duplicate_name_is_refused_next_to_the_name(alice_client: Client, cast: Cast) -> None:
    _budget(cast, "Daily USD")

    response = alice_client.post(reverse("console:budget_new", args=["acme"]), _form())

    assert response.status_code == 409  # the refusal's own status, as on every console form (console.forms.base)
    error = re.search(r'id="id_name_error"[^>]*>(.*?)</div>', _text(response))
    assert error is not None and "exists already" in error.group(1)


@pytest.mark.django_db
def test_an_admin_edits_a_budget_and_its_form_starts_from_its_settings(alice_client: Client, cast: Cast) -> None:
    budget = _budget(cast, "Edit me", limit=2_500_000, thresholds=[50, 90])
    url = reverse("console:budget_edit", args=["acme", budget.pk])

    form_page = _text(alice_client.get(url))
    assert 'value="2.5"' in form_page and 'value="50, 90"' in form_page

    response = alice_client.post(url, _form(name="Edited", limit="3", period="month", on_exceed="alert_only"))
    assert response.status_code == 302
    budget.refresh_from_db()
    assert (budget.name, budget.limit, budget.on_exceed) == ("Edited", 3_000_000, "alert_only")


@pytest.mark.django_db
def test_changing_a_budgets_unit_is_refused_next_to_the_unit(alice_client: Client, cast: Cast) -> None:
    budget = _budget(cast)

    response = alice_client.post(
        reverse("console:budget_edit", args=["acme", budget.pk]), _form(name=budget.name, unit="tokens", limit="5")
    )

    assert response.status_code == 400
    error = re.search(r'id="id_unit_error"[^>]*>(.*?)</div>', _text(response))
    assert error is not None and "cannot change" in error.group(1)


# --- The ledger --------------------------------------------------------------------------------


def _ledger_fixture(cast: Cast) -> tuple[Budget, Budget]:
    usd = _budget(cast, "USD")
    tokens = _budget(cast, "Tokens", unit="tokens", limit=10**9)
    kept = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=100, max_output_tokens=100)
    services.budget_settle(reservation=kept, input_tokens=100, output_tokens=10)
    dropped = services.budget_reserve(tenant=cast.acme, model="default", input_tokens=100, max_output_tokens=100)
    services.budget_release(reservation=dropped)
    return usd, tokens


@pytest.mark.django_db
def test_the_ledger_lists_every_entry_newest_first(alice_client: Client, cast: Cast) -> None:
    _ledger_fixture(cast)

    text = _text(alice_client.get(reverse("console:budget_ledger", args=["acme"])))

    ids = [int(m.group(1)) for m in re.finditer(r'data-entry="(\d+)"', text)]
    assert ids == sorted(LedgerEntry.objects.filter(tenant=cast.acme).values_list("id", flat=True), reverse=True)
    assert len(ids) == 8  # reserve, settle, reserve, release on each of the two budgets


@pytest.mark.django_db
def test_the_ledger_filters_by_budget_and_kind(alice_client: Client, cast: Cast) -> None:
    _, tokens = _ledger_fixture(cast)

    response = alice_client.get(
        reverse("console:budget_ledger", args=["acme"]), {"budget": str(tokens.pk), "kind": "release"}, headers=HTMX
    )

    assert response.status_code == 200
    text = _text(response)
    assert text.lstrip().startswith('<section id="ledger">')  # only the fragment for htmx
    kinds = re.findall(r'data-kind="(\w+)"', text)
    assert kinds == ["release"]
    assert "<td>Tokens</td>" in text


@pytest.mark.django_db
def test_the_ledger_filters_by_time(alice_client: Client, cast: Cast) -> None:
    _ledger_fixture(cast)

    text = _text(alice_client.get(reverse("console:budget_ledger", args=["acme"]), {"since": "2999-01-01T00:00"}))

    assert "No ledger entries match." in text


@pytest.mark.django_db
def test_a_bad_ledger_filter_answers_400_with_a_message(alice_client: Client, cast: Cast) -> None:
    response = alice_client.get(
        reverse("console:budget_ledger", args=["acme"]), {"since": "2026-02-01T00:00", "until": "2026-01-01T00:00"}
    )

    assert response.status_code == 400
    assert "Until must be after since." in response.content.decode()


@pytest.mark.django_db
def test_the_ledger_refuses_another_tenants_budget_as_a_filter(client: Client, cast: Cast) -> None:
    budget = _budget(cast)
    client.force_login(cast.charlie)

    response = client.get(reverse("console:budget_ledger", args=["globex"]), {"budget": str(budget.pk)})

    assert response.status_code == 400
    assert "Monthly spend" not in response.content.decode()


@pytest.mark.django_db
def test_the_ledger_takes_a_bounded_number_of_queries(
    alice_client: Client, cast: Cast, django_assert_max_num_queries: Any
) -> None:
    for _ in range(5):
        _ledger_fixture(cast)
    url = reverse("console:budget_ledger", args=["acme"])
    alice_client.get(url)
    with django_assert_max_num_queries(10):
        response = alice_client.get(url)
    assert response.content.decode().count("data-entry=") == 40


@pytest.mark.django_db
def test_the_ledger_pages_to_older_entries_keeping_the_filters(
    alice_client: Client, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("console.views.budgets.LEDGER_PAGE", 3)
    _, tokens = _ledger_fixture(cast)
    url = reverse("console:budget_ledger", args=["acme"])

    first = _text(alice_client.get(url, {"budget": str(tokens.pk)}))
    older = re.search(r'id="ledger-older"', first) and re.search(r'href="\?([^"]+)" hx-get', first)
    assert older is not None
    second = _text(alice_client.get(url + "?" + older.group(1).replace("&amp;", "&")))

    ids = [int(m.group(1)) for text in (first, second) for m in re.finditer(r'data-entry="(\d+)"', text)]
    expected = LedgerEntry.objects.filter(tenant=cast.acme, counter__budget=tokens).order_by("-id")
    assert ids == list(expected.values_list("id", flat=True))
    assert 'id="ledger-older"' not in second


@pytest.mark.django_db
def test_ledger_times_are_in_the_tenants_time_zone_in_the_page_and_its_fragment(
    alice_client: Client, cast: Cast
) -> None:
    cast.acme.timezone = "Asia/Kathmandu"  # UTC+05:45: no other zone shares its minutes
    cast.acme.save(update_fields=["timezone"])
    _ledger_fixture(cast)
    entry = LedgerEntry.objects.filter(tenant=cast.acme).latest("id")
    local = entry.created_at.astimezone(ZoneInfo("Asia/Kathmandu")).strftime("%Y-%m-%d %H:%M:%S")
    url = reverse("console:budget_ledger", args=["acme"])

    assert local in _text(alice_client.get(url))
    assert local in _text(alice_client.get(url, {"kind": ""}, headers=HTMX))


@pytest.mark.django_db
def test_a_budget_narrowed_to_an_agent_stays_editable_after_the_agent_is_archived(
    alice_client: Client, cast: Cast
) -> None:
    from agents import services as agent_services

    agent = agent_services.agent_create(actor=SYSTEM, tenant=cast.acme, name="Narrow agent")
    response = alice_client.post(reverse("console:budget_new", args=["acme"]), _form(agent=str(agent.pk)))
    assert response.status_code == 302
    budget = Budget.objects.get(tenant=cast.acme, name="Daily USD")
    assert budget.agent_id == agent.pk
    agent_services.agent_archive(actor=SYSTEM, agent=agent)

    url = reverse("console:budget_edit", args=["acme", budget.pk])
    assert alice_client.post(url, _form(agent=str(agent.pk), limit="30")).status_code == 302
    budget.refresh_from_db()
    assert budget.limit == 30_000_000
    # A new budget cannot pick the archived agent.
    refused = alice_client.post(reverse("console:budget_new", args=["acme"]), _form(name="New", agent=str(agent.pk)))
    assert refused.status_code == 400


@pytest.mark.django_db
def test_another_tenants_agent_cannot_be_chosen(alice_client: Client, cast: Cast) -> None:
    from agents import services as agent_services

    foreign = agent_services.agent_create(actor=SYSTEM, tenant=cast.globex, name="Globex agent")

    response = alice_client.post(reverse("console:budget_new", args=["acme"]), _form(agent=str(foreign.pk)))

    assert response.status_code == 400
    error = re.search(r'id="id_agent_error"[^>]*>(.*?)</div>', _text(response))
    assert error is not None and "Select a valid choice" in error.group(1)
    assert not Budget.objects.filter(name="Daily USD").exists()


@pytest.mark.django_db
def test_a_soft_budget_past_its_limit_shows_the_real_percentage_and_a_full_bar(
    alice_client: Client, cast: Cast
) -> None:
    _budget(cast, "Soft", unit="tokens", limit=100, on_exceed="alert_only")
    services.budget_reserve(tenant=cast.acme, model="default", input_tokens=200, max_output_tokens=100)

    text = _text(alice_client.get(reverse("console:budgets", args=["acme"])))

    assert 'data-testid="used-pct">300%<' in text and "budget-over" in text
    assert 'class="usage-reserved" fill="#93c5fd" x="0.00" y="0" width="100.00"' in text


@pytest.mark.django_db
def test_the_chart_keeps_the_eight_biggest_end_users_and_sums_the_rest(alice_client: Client, cast: Cast) -> None:
    for i in range(10):
        reservation = services.budget_reserve(
            tenant=cast.acme, model="default", input_tokens=100 * (i + 1), max_output_tokens=1, end_user_id=f"u{i}"
        )
        services.budget_settle(reservation=reservation, input_tokens=100 * (i + 1), output_tokens=0)

    body = alice_client.get(reverse("console:budgets", args=["acme"])).content.decode()

    block = re.search(r'<script id="spend-data" type="application/json">(.*?)</script>', body, re.S)
    assert block is not None
    labels = [s["label"] for s in json.loads(block.group(1))["end_user"]]
    assert labels == [f"u{i}" for i in range(9, 1, -1)] + ["others"]


@pytest.mark.django_db
def test_alert_emails_are_saved_and_a_bad_one_is_refused_beside_the_field(alice_client: Client, cast: Cast) -> None:
    url = reverse("console:budget_new", args=["acme"])

    refused = alice_client.post(url, _form(notify_emails="ops@acme.test, not-an-address"))
    assert refused.status_code == 400
    error = re.search(r'id="id_notify_emails_error"[^>]*>(.*?)</div>', _text(refused))
    assert error is not None and "not-an-address" in error.group(1)

    assert alice_client.post(url, _form(notify_emails="ops@acme.test, Finance@Acme.test")).status_code == 302
    budget = Budget.objects.get(tenant=cast.acme, name="Daily USD")
    assert budget.notify_emails == ["finance@acme.test", "ops@acme.test"]
    edit = _text(alice_client.get(reverse("console:budget_edit", args=["acme", budget.pk])))
    assert 'value="finance@acme.test, ops@acme.test"' in edit


def test_the_edit_form_sets_a_webhook_and_keeps_its_secret_write_only(alice_client: Client, cast: Cast) -> None:
    budget = _budget(cast, name="Hooked")
    url = reverse("console:budget_edit", args=["acme", budget.pk])
    form = _form(name="Hooked", webhook_url="https://hooks.example.com/aoc", webhook_secret="hush")
    assert alice_client.post(url, form).status_code == 302
    budget.refresh_from_db()
    assert budget.webhook_url == "https://hooks.example.com/aoc" and budget.webhook_secret_encrypted
    page = alice_client.get(url).content.decode()
    assert 'data-testid="secret-set"' in page and "hush" not in page
    kept = dict(form, webhook_secret="")
    assert alice_client.post(url, kept).status_code == 302
    budget.refresh_from_db()
    assert budget.webhook_secret_encrypted  # empty means keep
    bad = alice_client.post(url, dict(form, webhook_url="http://10.0.0.5/hook"))
    assert bad.status_code == 400 and "https://" in bad.content.decode()
    assert alice_client.post(url, dict(kept, remove_webhook_secret="on")).status_code == 302
    budget.refresh_from_db()
    assert budget.webhook_secret_encrypted == ""
