"""Model control pages: contracts for every page, and what each page does."""

from __future__ import annotations

import zoneinfo
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from catalog import selectors, services
from catalog.demo import DEMO_MODEL_ID
from catalog.models import LanguageModel, PinChange, Provider
from tenants.audit import Actor
from tenants.models import AuditEvent, Role
from tenants.testing import Cast, ConsolePageContract

HTMX = {"HX-Request": "true"}
SYSTEM = Actor.system_actor("tests")


def _provider(cast: Cast) -> Provider:
    provider = Provider.objects.filter(tenant=cast.acme, name="openai").first()
    return provider or services.provider_create(
        actor=SYSTEM, tenant=cast.acme, name="openai", kind=Provider.Kind.OPENAI_COMPATIBLE, api_key="sk-page-secret"
    )


def _model(cast: Cast, model_id: str = "gpt-4o-2024-08-06") -> LanguageModel:
    provider = _provider(cast)
    model = LanguageModel.objects.filter(tenant=cast.acme, provider=provider, model_id=model_id).first()
    return model or services.model_create(
        actor=SYSTEM,
        tenant=cast.acme,
        provider=provider,
        model_id=model_id,
        input_price=2_500_000,
        output_price=10_000_000,
        context_window=128_000,
        max_output_tokens=16_384,
    )


def _pending_change(cast: Cast) -> PinChange:
    change = PinChange.objects.filter(tenant=cast.acme, status=PinChange.Status.PENDING).first()
    return change or services.pin_change_request(
        actor=Actor(user=cast.alice), tenant=cast.acme, alias="default", to_model=_model(cast), reason="cheaper"
    )


# --- Contracts ---------------------------------------------------------------------------------


class TestCatalogPage(ConsolePageContract):
    url_name = "console:catalog"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestProviderCreatePage(ConsolePageContract):
    url_name = "console:provider_create"
    method = "post"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"name": "local", "kind": "demo", "timeout_seconds": "10", "max_retries": "1", "enabled": "on"}


class TestProviderEditPage(ConsolePageContract):
    url_name = "console:provider_edit"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _provider(cast).pk])


class TestModelCreatePage(ConsolePageContract):
    url_name = "console:model_create"
    method = "post"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {
            "provider": str(_provider(cast).pk),
            "model_id": f"gpt-4o-2024-08-{LanguageModel.objects.count() % 28 + 1:02d}",
            "input_price": "2.50",
            "output_price": "10",
            "context_window": "128000",
            "max_output_tokens": "16384",
        }


class TestModelEditPage(ConsolePageContract):
    url_name = "console:model_edit"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _model(cast).pk])


class TestPinsPage(ConsolePageContract):
    url_name = "console:pins"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestPinChangeRequestPage(ConsolePageContract):
    url_name = "console:pin_change_request"
    method = "post"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"alias": "default", "model": str(_model(cast).pk), "reason": "cheaper"}


class TestPinChangePage(ConsolePageContract):
    url_name = "console:pin_change"
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _pending_change(cast).pk])


class TestPinChangeDecidePage(ConsolePageContract):
    url_name = "console:pin_change_decide"
    method = "post"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _pending_change(cast).pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"approve": "1", "note": "ok"}

    @pytest.mark.django_db
    def test_it_requires_role(self, client: Client, cast: Cast) -> None:
        super().test_it_requires_role(client, cast)
        change = PinChange.objects.get(tenant=cast.acme, alias="default", to_model=_model(cast))
        assert change.status == PinChange.Status.APPLIED and change.decided_by == cast.alice


class TestPinChangeCancelPage(ConsolePageContract):
    url_name = "console:pin_change_cancel"
    method = "post"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, _pending_change(cast).pk])


# --- Providers and models ----------------------------------------------------------------------


@pytest.mark.django_db
def test_every_member_reads_the_catalog_but_only_admins_see_the_forms(client: Client, cast: Cast) -> None:
    _model(cast)
    client.force_login(cast.vera)
    html = client.get(reverse("console:catalog", args=["acme"])).content.decode()
    assert DEMO_MODEL_ID in html and "gpt-4o-2024-08-06" in html and "$2.50" in html
    assert "Add a provider" not in html and "provider-form" not in html
    client.force_login(cast.alice)
    html = client.get(reverse("console:catalog", args=["acme"])).content.decode()
    assert "Add a provider" in html and "Add a model" in html


@pytest.mark.django_db
def test_the_api_key_is_write_only_in_the_console(alice_client: Client, cast: Cast) -> None:
    response = alice_client.post(
        reverse("console:provider_create", args=["acme"]),
        {
            "name": "anthropic",
            "kind": "anthropic",
            "api_key": "sk-ant-console-secret",
            "timeout_seconds": "30",
            "max_retries": "2",
            "enabled": "on",
        },
        headers=HTMX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Provider anthropic was added" in html and "sk-ant-console-secret" not in html
    provider = Provider.objects.get(tenant=cast.acme, name="anthropic")
    assert provider.api_key == "sk-ant-console-secret"
    edit = alice_client.get(reverse("console:provider_edit", args=["acme", provider.pk])).content.decode()
    assert "sk-ant-console-secret" not in edit and provider.api_key_encrypted not in edit
    assert 'data-testid="api-key-state">set<' in edit

    # Saving without typing a key keeps it; ticking "remove" clears it.
    form = {"name": "anthropic", "kind": "anthropic", "timeout_seconds": "30", "max_retries": "2", "enabled": "on"}
    alice_client.post(reverse("console:provider_edit", args=["acme", provider.pk]), form)
    provider.refresh_from_db()
    assert provider.api_key == "sk-ant-console-secret"
    alice_client.post(reverse("console:provider_edit", args=["acme", provider.pk]), {**form, "clear_api_key": "on"})
    provider.refresh_from_db()
    assert not provider.has_api_key


@pytest.mark.django_db
def test_a_floating_model_id_is_refused_beside_the_field(alice_client: Client, cast: Cast) -> None:
    data = TestModelCreatePage().data(cast) | {"model_id": "gpt-4o-latest"}
    response = alice_client.post(reverse("console:model_create", args=["acme"]), data, headers=HTMX)
    assert response.status_code == 400
    html = response.content.decode()
    assert "floating name" in html and 'id="model-form"' in html
    assert not LanguageModel.objects.filter(model_id="gpt-4o-latest").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_price": "2.5.0"}, "is not a price"),
        ({"max_output_tokens": "999999"}, "exceeds the context window"),
        ({"output_price": ""}, "Give both input and output prices"),
    ],
)
def test_bad_model_input_is_shown_inline(
    alice_client: Client, cast: Cast, overrides: dict[str, str], message: str
) -> None:
    data = TestModelCreatePage().data(cast) | overrides
    response = alice_client.post(reverse("console:model_create", args=["acme"]), data, headers=HTMX)
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.django_db
def test_a_provider_from_another_tenant_is_not_a_valid_choice(alice_client: Client, cast: Cast) -> None:
    globex_demo = Provider.objects.get(tenant=cast.globex, name="demo")
    data = TestModelCreatePage().data(cast) | {"provider": str(globex_demo.pk), "model_id": "demo-x-2025-01-01"}
    response = alice_client.post(reverse("console:model_create", args=["acme"]), data, headers=HTMX)
    assert response.status_code == 400
    assert not LanguageModel.objects.filter(model_id="demo-x-2025-01-01").exists()


@pytest.mark.django_db
def test_an_admin_edits_a_models_prices_and_deprecation(alice_client: Client, cast: Cast) -> None:
    model = _model(cast)
    response = alice_client.post(
        reverse("console:model_edit", args=["acme", model.pk]),
        {
            "input_price": "3",
            "output_price": "12.00",
            "context_window": "128000",
            "max_output_tokens": "8000",
            "deprecation_date": "2027-01-31",
        },
    )
    assert response.status_code == 302
    model.refresh_from_db()
    assert (model.input_price, model.output_price, model.max_output_tokens) == (3_000_000, 12_000_000, 8000)
    assert model.deprecation_date is not None and model.deprecation_date.isoformat() == "2027-01-31"
    assert AuditEvent.objects.filter(tenant=cast.acme, action="model.update", actor_user=cast.alice).exists()


@pytest.mark.django_db
def test_the_catalog_page_takes_a_fixed_number_of_queries(
    alice_client: Client, cast: Cast, django_assert_max_num_queries: Any
) -> None:
    for day in range(1, 10):
        _model(cast, model_id=f"gpt-4o-2024-08-0{day}")
    with django_assert_max_num_queries(14):
        assert alice_client.get(reverse("console:catalog", args=["acme"])).status_code == 200


# --- Pins --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_pins_page_names_each_aliases_exact_model_provider_and_price(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    html = client.get(reverse("console:pins", args=["acme"])).content.decode()
    assert 'data-pin="default"' in html and 'data-pin="classifier"' in html
    assert DEMO_MODEL_ID in html and "$0.50 / $1.50" in html
    assert "pin-change-form" not in html and 'name="approve"' not in html


@pytest.mark.django_db
def test_an_admin_requests_then_approves_and_the_history_shows_it(alice_client: Client, cast: Cast) -> None:
    model = _model(cast)
    url = reverse("console:pin_change_request", args=["acme"])
    response = alice_client.post(url, {"alias": "default", "model": str(model.pk), "reason": "cheaper"}, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Change of default to gpt-4o-2024-08-06 requested" in html and 'data-change="default"' in html
    change = PinChange.objects.get(tenant=cast.acme, status=PinChange.Status.PENDING)

    again = alice_client.post(url, {"alias": "default", "model": str(model.pk), "reason": "twice"}, headers=HTMX)
    assert again.status_code == 409 and "already has an open change request" in again.content.decode()

    decided = alice_client.post(
        reverse("console:pin_change_decide", args=["acme", change.pk]), {"approve": "1", "note": "ok"}, headers=HTMX
    )
    assert decided.status_code == 200
    html = decided.content.decode()
    assert "Approved: default now points at gpt-4o-2024-08-06" in html
    assert selectors.pinned_model(tenant=cast.acme, alias="default") == model
    detail = alice_client.get(reverse("console:pin_change", args=["acme", change.pk])).content.decode()
    assert "Approved and applied" in detail and "alice@acme.test" in detail

    second = alice_client.post(
        reverse("console:pin_change_decide", args=["acme", change.pk]), {"approve": "0"}, headers=HTMX
    )
    assert second.status_code == 409 and "already approved and applied by alice@acme.test" in second.content.decode()


@pytest.mark.django_db
def test_an_unpriced_model_is_not_offered_and_is_refused_if_posted(alice_client: Client, cast: Cast) -> None:
    unpriced = services.model_create(
        actor=SYSTEM,
        tenant=cast.acme,
        provider=_provider(cast),
        model_id="gpt-4o-2024-05-13",
        context_window=128_000,
        max_output_tokens=4_096,
    )
    page = alice_client.get(reverse("console:pins", args=["acme"])).content.decode()
    assert str(unpriced.pk) not in page
    response = alice_client.post(
        reverse("console:pin_change_request", args=["acme"]),
        {"alias": "default", "model": str(unpriced.pk), "reason": "x"},
        headers=HTMX,
    )
    assert response.status_code == 400
    assert not PinChange.objects.filter(to_model=unpriced).exists()


@pytest.mark.django_db
def test_a_rejection_and_a_cancellation_leave_the_pin_alone(alice_client: Client, cast: Cast) -> None:
    change = _pending_change(cast)
    response = alice_client.post(reverse("console:pin_change_decide", args=["acme", change.pk]), {"approve": "0"})
    assert response.status_code == 302 and response["Location"].endswith(f"/pins/changes/{change.pk}/")
    change = _pending_change(cast)
    alice_client.post(reverse("console:pin_change_cancel", args=["acme", change.pk]))
    change.refresh_from_db()
    assert change.status == PinChange.Status.CANCELLED
    assert selectors.pinned_model(tenant=cast.acme, alias="default").model_id == DEMO_MODEL_ID


@pytest.mark.django_db
def test_untrusted_text_in_a_reason_is_escaped(alice_client: Client, cast: Cast) -> None:
    services.pin_change_request(
        actor=Actor(user=cast.alice),
        tenant=cast.acme,
        alias="default",
        to_model=_model(cast),
        reason='<script>alert("x")</script>',
    )
    for name in ("console:pins",):
        html = alice_client.get(reverse(name, args=["acme"])).content.decode()
        assert '<script>alert("x")</script>' not in html and "&lt;script&gt;" in html


@pytest.mark.django_db
def test_the_pins_page_takes_a_fixed_number_of_queries(
    alice_client: Client, cast: Cast, django_assert_max_num_queries: Any
) -> None:
    actor = Actor(user=cast.alice)
    for day in range(1, 6):
        model = _model(cast, model_id=f"gpt-4o-2024-08-0{day}")
        change = services.pin_change_request(actor=actor, tenant=cast.acme, alias=f"a{day}", to_model=model, reason="x")
        services.pin_change_decide(actor=actor, change=change, approve=True)
        services.pin_change_request(actor=actor, tenant=cast.acme, alias=f"b{day}", to_model=model, reason="y")
    with django_assert_max_num_queries(14):
        assert alice_client.get(reverse("console:pins", args=["acme"])).status_code == 200


# --- Dashboard ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_dashboard_warns_of_a_pinned_model_deprecating_within_30_days(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    url = reverse("console:dashboard", args=["acme"])
    assert 'data-testid="deprecation-warning"' not in client.get(url).content.decode()
    demo = selectors.pinned_model(tenant=cast.acme, alias="default")
    # The page counts days in the tenant's time zone (Acme: Europe/Paris), which is a day ahead of
    # UTC from 23:00 to midnight UTC: "today" must be the tenant's, or the test fails in that hour.
    day = timezone.localdate(timezone=zoneinfo.ZoneInfo(cast.acme.timezone)) + timedelta(days=12)
    services.model_update(actor=SYSTEM, model=demo, deprecation_date=day)
    html = client.get(url).content.decode()
    assert 'data-testid="deprecation-warning"' in html
    assert day.isoformat() in html and "12 days left" in html and DEMO_MODEL_ID in html
    # Globex pins the same model id in its own catalog: no warning there.
    client.force_login(cast.charlie)
    assert (
        'data-testid="deprecation-warning"'
        not in client.get(reverse("console:dashboard", args=["globex"])).content.decode()
    )


@pytest.mark.django_db
def test_the_dashboard_is_quiet_about_a_deprecation_further_away(client: Client, cast: Cast) -> None:
    demo = selectors.pinned_model(tenant=cast.acme, alias="default")
    services.model_update(actor=SYSTEM, model=demo, deprecation_date=timezone.localdate() + timedelta(days=45))
    client.force_login(cast.alice)
    assert (
        'data-testid="deprecation-warning"'
        not in client.get(reverse("console:dashboard", args=["acme"])).content.decode()
    )
