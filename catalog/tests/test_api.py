"""Model control over REST: providers, models, pins and pin changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from catalog import selectors, services
from catalog.demo import DEMO_MODEL_ID
from catalog.models import LanguageModel, ModelPin, PinChange, Provider
from tenants.audit import Actor
from tenants.models import AuditEvent, Scope
from tenants.testing import ApiClient, ApiContract, Cast, assert_error, make_key

SYSTEM = Actor.system_actor("tests")


def _provider(cast: Cast) -> Provider:
    provider = Provider.objects.filter(tenant=cast.acme, name="openai").first()
    return provider or services.provider_create(
        actor=SYSTEM, tenant=cast.acme, name="openai", kind=Provider.Kind.OPENAI_COMPATIBLE, api_key="sk-secret-1"
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


def _planner_pin(cast: Cast) -> ModelPin:
    """A pin only Acme has, so that another tenant's lookup of the same alias is a 404."""
    services.pin_set_by_system(actor=SYSTEM, tenant=cast.acme, alias="planner", model=_model(cast), reason="tests")
    return ModelPin.objects.get(tenant=cast.acme, alias="planner")


def _pending_change(cast: Cast) -> PinChange:
    change = PinChange.objects.filter(tenant=cast.acme, status=PinChange.Status.PENDING).first()
    if change is None:
        admin_key, _ = make_key(cast.acme, "admin", name="requester")
        change = services.pin_change_request(
            actor=Actor(api_key=admin_key), tenant=cast.acme, alias="default", to_model=_model(cast), reason="tests"
        )
    return change


def _model_body(cast: Cast, **overrides: Any) -> dict[str, Any]:
    body = {
        "provider": str(_provider(cast).pk),
        "model_id": "gpt-4.1-2025-04-14",
        "input_price": "2.00",
        "cached_input_price": "0.50",
        "output_price": "8.00",
        "context_window": 1_047_576,
        "max_output_tokens": 32_768,
        "deprecation_date": None,
    }
    return {**body, **overrides}


# --- Contracts ---------------------------------------------------------------------------------


class NamesAnAcmeObjectInTheBody(ApiContract):
    """A create whose body names one of Acme's objects: for another tenant's key that object does
    not exist, so the call is a 400 naming the field, and nothing is written."""

    acme_field: str

    @pytest.mark.django_db
    def test_it_checks_tenant(self, client: Client, cast: Cast) -> None:
        _, globex_key = make_key(cast.globex, [Scope.ADMIN])
        writes = AuditEvent.objects.filter(tenant=cast.globex).count()
        error = assert_error(self._call(client, globex_key, cast), 400, "validation_error")
        assert self.acme_field in error["fields"]
        assert AuditEvent.objects.filter(tenant=cast.globex).count() == writes


class TestProviderList(ApiContract):
    url_name = "provider-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)


class TestProviderCreate(ApiContract):
    url_name = "provider-list"
    method = "post"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return {
            "name": f"vllm-{Provider.objects.count()}",
            "kind": "openai_compatible",
            "base_url": "http://127.0.0.1:9/v1",
        }


class TestProviderDetail(ApiContract):
    url_name = "provider-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_provider(cast).pk])


class TestProviderUpdate(ApiContract):
    url_name = "provider-detail"
    method = "patch"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_provider(cast).pk])

    def body(self, cast: Cast) -> Any:
        return {"timeout_seconds": 30}


class TestProviderDelete(ApiContract):
    url_name = "provider-detail"
    method = "delete"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_provider(cast).pk])


class TestModelList(ApiContract):
    url_name = "model-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)


class TestModelCreate(NamesAnAcmeObjectInTheBody):
    url_name = "model-list"
    method = "post"
    acme_field = "provider"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return _model_body(cast)


class TestModelDetail(ApiContract):
    url_name = "model-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_model(cast).pk])


class TestModelUpdate(ApiContract):
    url_name = "model-detail"
    method = "patch"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_model(cast).pk])

    def body(self, cast: Cast) -> Any:
        return {"output_price": "9.00"}


class TestModelDelete(ApiContract):
    url_name = "model-detail"
    method = "delete"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_model(cast).pk])


class TestPinList(ApiContract):
    url_name = "pin-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)


class TestPinDetail(ApiContract):
    url_name = "pin-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_planner_pin(cast).alias])


class TestPinHistory(ApiContract):
    url_name = "pin-changes"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_planner_pin(cast).alias])


class TestPinChangeRequest(NamesAnAcmeObjectInTheBody):
    url_name = "pin-changes"
    method = "post"
    acme_field = "model"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=["default"])

    def body(self, cast: Cast) -> Any:
        return {"model": str(_model(cast).pk), "reason": "cheaper and as good"}


class TestPinChangeList(ApiContract):
    url_name = "pin-change-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        _pending_change(cast)
        return reverse(self.url_name)


class TestPinChangeDetail(ApiContract):
    url_name = "pin-change-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_pending_change(cast).pk])


class TestPinChangeDecision(ApiContract):
    url_name = "pin-change-decision"
    method = "post"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_pending_change(cast).pk])

    def body(self, cast: Cast) -> Any:
        return {"approve": True, "note": "looks good"}


class TestPinChangeCancel(ApiContract):
    url_name = "pin-change-cancel"
    method = "post"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_pending_change(cast).pk])


# --- Providers ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_provider_key_is_write_only(acme_admin_api: ApiClient, cast: Cast) -> None:
    response = acme_admin_api.post(
        "/api/v1/providers",
        {"name": "anthropic", "kind": "anthropic", "api_key": "sk-ant-very-secret", "timeout_seconds": 30},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["api_key_set"] is True and body["effective_base_url"] == "https://api.anthropic.com"
    assert "sk-ant-very-secret" not in response.content.decode()
    listing = acme_admin_api.get("/api/v1/providers").content.decode()
    assert "sk-ant-very-secret" not in listing and "api_key_encrypted" not in listing
    assert Provider.objects.get(pk=body["id"]).api_key == "sk-ant-very-secret"

    cleared = acme_admin_api.patch(f"/api/v1/providers/{body['id']}", {"api_key": None})
    assert cleared.status_code == 200 and cleared.json()["api_key_set"] is False
    unchanged = acme_admin_api.patch(f"/api/v1/providers/{body['id']}", {"enabled": False})
    assert unchanged.json()["enabled"] is False and unchanged.json()["name"] == "anthropic"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "bedrock"}, "kind"),
        ({"kind": "demo"}, "name"),
        ({"name": "x", "kind": "openai_compatible", "base_url": "gopher://x"}, "base_url"),
        ({"name": "x", "kind": "demo", "timeout_seconds": -1}, "timeout_seconds"),
    ],
)
def test_a_bad_provider_gets_400_naming_the_field(acme_admin_api: ApiClient, body: dict[str, Any], field: str) -> None:
    error = assert_error(acme_admin_api.post("/api/v1/providers", body), 400, "validation_error")
    assert field in error["fields"] and error["message"].startswith(field)


@pytest.mark.django_db
def test_a_duplicate_provider_name_is_a_conflict(acme_admin_api: ApiClient) -> None:
    assert_error(acme_admin_api.post("/api/v1/providers", {"name": "demo", "kind": "demo"}), 409, "conflict")


@pytest.mark.django_db
def test_a_provider_with_models_cannot_be_deleted(acme_admin_api: ApiClient, cast: Cast) -> None:
    demo = Provider.objects.get(tenant=cast.acme, name="demo")
    error = assert_error(acme_admin_api.delete(f"/api/v1/providers/{demo.pk}"), 409, "conflict")
    assert "1 model" in error["message"]
    spare = acme_admin_api.post("/api/v1/providers", {"name": "spare", "kind": "demo"}).json()
    assert acme_admin_api.delete(f"/api/v1/providers/{spare['id']}").status_code == 204


# --- Models ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_model_is_created_with_exact_prices(acme_admin_api: ApiClient, cast: Cast) -> None:
    response = acme_admin_api.post(
        "/api/v1/models", _model_body(cast, input_price="2.50", deprecation_date="2026-12-01")
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["input_price"], body["input_price_micros"]) == ("2.50", 2_500_000)
    assert (body["cached_input_price"], body["output_price_micros"]) == ("0.50", 8_000_000)
    assert body["provider_name"] == "openai" and body["deprecation_date"] == "2026-12-01" and body["is_priced"]
    assert AuditEvent.objects.filter(tenant=cast.acme, action="model.create", target_id=body["id"]).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("floating", ["gpt-4o", "gpt-4o-latest", "gpt-4o-mini"])
def test_a_floating_model_id_gets_400_naming_model_id(acme_admin_api: ApiClient, cast: Cast, floating: str) -> None:
    error = assert_error(acme_admin_api.post("/api/v1/models", _model_body(cast, model_id=floating)), 400)
    assert list(error["fields"]) == ["model_id"] and floating in error["message"]


@pytest.mark.django_db
def test_a_floating_anthropic_id_gets_400_naming_model_id(acme_admin_api: ApiClient, cast: Cast) -> None:
    anthropic = acme_admin_api.post("/api/v1/providers", {"name": "anthropic", "kind": "anthropic"}).json()
    body = _model_body(cast, provider=anthropic["id"], model_id="claude-sonnet-4-5")
    error = assert_error(acme_admin_api.post("/api/v1/models", body), 400, "validation_error")
    assert "model_id" in error["fields"]
    body["model_id"] = "claude-sonnet-4-5-20250929"
    assert acme_admin_api.post("/api/v1/models", body).status_code == 201


@pytest.mark.django_db
def test_a_self_hosted_model_without_revision_gets_400_naming_revision(acme_admin_api: ApiClient, cast: Cast) -> None:
    ollama = acme_admin_api.post(
        "/api/v1/providers", {"name": "ollama", "kind": "openai_compatible", "base_url": "http://127.0.0.1:11434/v1"}
    ).json()
    body = _model_body(cast, provider=ollama["id"], model_id="llama3.1:8b")
    error = assert_error(acme_admin_api.post("/api/v1/models", body), 400, "validation_error")
    assert "revision" in error["fields"]
    body["revision"] = "sha256:46e0c10c039e"
    assert acme_admin_api.post("/api/v1/models", body).json()["revision"] == "sha256:46e0c10c039e"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"input_price": "two"}, "input_price"),
        ({"output_price": "0.0000001"}, "output_price"),
        ({"cached_input_price": "-1"}, "cached_input_price"),
        ({"input_price": True}, "input_price"),
        ({"max_output_tokens": 2_000_000}, "max_output_tokens"),
        ({"context_window": 0}, "context_window"),
        ({"provider": "not-a-uuid"}, "provider"),
        ({"deprecation_date": "soon"}, "deprecation_date"),
        ({"model_id": ""}, "model_id"),
    ],
)
def test_a_bad_model_gets_400_naming_the_field(
    acme_admin_api: ApiClient, cast: Cast, overrides: dict[str, Any], field: str
) -> None:
    error = assert_error(acme_admin_api.post("/api/v1/models", _model_body(cast, **overrides)), 400)
    assert field in error["fields"], error


@pytest.mark.django_db
def test_another_tenants_provider_gets_400_naming_provider(acme_admin_api: ApiClient, cast: Cast) -> None:
    globex_demo = Provider.objects.get(tenant=cast.globex, name="demo")
    body = _model_body(cast, provider=str(globex_demo.pk), model_id="demo-x-2025-01-01")
    error = assert_error(acme_admin_api.post("/api/v1/models", body), 400, "validation_error")
    assert "provider" in error["fields"]
    assert not LanguageModel.objects.filter(model_id="demo-x-2025-01-01").exists()


@pytest.mark.django_db
def test_a_models_identity_cannot_be_patched_but_its_prices_can(acme_admin_api: ApiClient, cast: Cast) -> None:
    model = _model(cast)
    error = assert_error(acme_admin_api.patch(f"/api/v1/models/{model.pk}", {"model_id": "gpt-4o-2024-11-20"}), 400)
    assert "model_id" in error["fields"]
    response = acme_admin_api.patch(f"/api/v1/models/{model.pk}", {"output_price": "12.5", "model_id": model.model_id})
    assert response.status_code == 200 and response.json()["output_price"] == "12.50"


@pytest.mark.django_db
def test_a_pinned_models_prices_cannot_be_removed(acme_admin_api: ApiClient, cast: Cast) -> None:
    demo = selectors.pinned_model(tenant=cast.acme, alias="default")
    body = {"input_price": None, "cached_input_price": None, "output_price": None}
    error = assert_error(acme_admin_api.patch(f"/api/v1/models/{demo.pk}", body), 400)
    assert "without prices cannot be used" in error["message"]


@pytest.mark.django_db
def test_the_model_list_costs_a_bounded_number_of_queries(
    acme_admin_api: ApiClient, cast: Cast, django_assert_max_num_queries: Any
) -> None:
    for day in range(1, 8):
        _model(cast, model_id=f"gpt-4o-2024-08-0{day}")
    with django_assert_max_num_queries(6):
        body = acme_admin_api.get("/api/v1/models?page_size=100").json()
    assert len(body["results"]) == 8


# --- Pins and changes --------------------------------------------------------------------------


@pytest.mark.django_db
def test_pins_name_the_exact_model_and_provider(acme_admin_api: ApiClient, django_assert_max_num_queries: Any) -> None:
    with django_assert_max_num_queries(6):
        body = acme_admin_api.get("/api/v1/pins").json()
    pins = {p["alias"]: p for p in body["results"]}
    assert set(pins) == {"default", "classifier", "judge"}  # `judge`: the evals demo seed
    assert pins["default"]["model"]["model_id"] == DEMO_MODEL_ID
    assert pins["default"]["model"]["provider_name"] == "demo"
    assert pins["default"]["model"]["input_price"] == "0.50"


@pytest.mark.django_db
def test_the_pin_change_journey_over_the_api(api: Callable[..., ApiClient], cast: Cast) -> None:
    admin = api(Scope.ADMIN)
    model = _model(cast)
    created = admin.post("/api/v1/pins/default/changes", {"model": str(model.pk), "reason": "better at tools"})
    assert created.status_code == 201, created.content
    change = created.json()
    assert change["status"] == "pending" and change["from_model"]["model_id"] == DEMO_MODEL_ID
    assert change["to_model"]["model_id"] == "gpt-4o-2024-08-06" and change["requested_by"].startswith("key ")

    # A second open request for the alias is refused.
    again = admin.post("/api/v1/pins/default/changes", {"model": str(model.pk), "reason": "again"})
    assert "open change request" in assert_error(again, 409, "conflict")["message"]
    # Still pending: the pin has not moved.
    assert admin.get("/api/v1/pins/default").json()["model"]["model_id"] == DEMO_MODEL_ID

    # A read-only key can see it but not decide it.
    reader = api(Scope.READ)
    assert reader.get("/api/v1/pin-changes?status=pending").json()["results"][0]["id"] == change["id"]
    assert_error(reader.post(f"/api/v1/pin-changes/{change['id']}/decision", {"approve": True}), 403)

    decided = admin.post(f"/api/v1/pin-changes/{change['id']}/decision", {"approve": True, "note": "evals pass"})
    assert decided.status_code == 200 and decided.json()["status"] == "applied"
    assert admin.get("/api/v1/pins/default").json()["model"]["model_id"] == "gpt-4o-2024-08-06"

    second = admin.post(f"/api/v1/pin-changes/{change['id']}/decision", {"approve": False})
    error = assert_error(second, 409, "conflict")
    assert "already approved and applied by key" in error["message"] and error["decided_by"].startswith("key ")

    history = admin.get("/api/v1/pins/default/changes").json()["results"]
    assert [h["to_model"]["model_id"] for h in history] == ["gpt-4o-2024-08-06", DEMO_MODEL_ID]
    assert history[0]["decision_note"] == "evals pass"


@pytest.mark.django_db
def test_a_new_alias_is_pinned_through_a_change_request(acme_admin_api: ApiClient, cast: Cast) -> None:
    assert_error(acme_admin_api.get("/api/v1/pins/planner"), 404, "not_found")
    change = acme_admin_api.post("/api/v1/pins/planner/changes", {"model": str(_model(cast).pk), "reason": "new"})
    assert change.json()["from_model"] is None
    acme_admin_api.post(f"/api/v1/pin-changes/{change.json()['id']}/decision", {"approve": True})
    assert acme_admin_api.get("/api/v1/pins/planner").json()["model"]["model_id"] == "gpt-4o-2024-08-06"


@pytest.mark.django_db
def test_an_unpriced_or_unknown_model_cannot_be_requested(acme_admin_api: ApiClient, cast: Cast) -> None:
    unpriced = services.model_create(
        actor=SYSTEM,
        tenant=cast.acme,
        provider=_provider(cast),
        model_id="gpt-4o-2024-05-13",
        context_window=128_000,
        max_output_tokens=4_096,
    )
    error = assert_error(
        acme_admin_api.post("/api/v1/pins/default/changes", {"model": str(unpriced.pk), "reason": "x"}), 400
    )
    assert "model" in error["fields"] and "a model without prices cannot be used" in error["message"]
    error = assert_error(
        acme_admin_api.post(
            "/api/v1/pins/default/changes", {"model": "01a21479-0000-7000-8000-000000000000", "reason": "x"}
        ),
        400,
    )
    assert "model" in error["fields"]
    error = assert_error(acme_admin_api.post("/api/v1/pins/default/changes", {"model": str(_model(cast).pk)}), 400)
    assert "reason" in error["fields"]


@pytest.mark.django_db
def test_a_decision_needs_approve_as_a_boolean(acme_admin_api: ApiClient, cast: Cast) -> None:
    change = _pending_change(cast)
    for body in ({}, {"approve": "perhaps"}):
        error = assert_error(acme_admin_api.post(f"/api/v1/pin-changes/{change.pk}/decision", body), 400)
        assert "approve" in error["fields"]
    change.refresh_from_db()
    assert change.is_open


@pytest.mark.django_db
def test_a_cancelled_request_frees_the_alias(acme_admin_api: ApiClient, cast: Cast) -> None:
    change = _pending_change(cast)
    response = acme_admin_api.post(f"/api/v1/pin-changes/{change.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert_error(acme_admin_api.post(f"/api/v1/pin-changes/{change.pk}/cancel"), 409, "conflict")
    again = acme_admin_api.post("/api/v1/pins/default/changes", {"model": str(_model(cast).pk), "reason": "y"})
    assert again.status_code == 201


@pytest.mark.django_db
def test_each_tenant_sees_only_its_own_pins_and_history(api: Callable[..., ApiClient], cast: Cast) -> None:
    _planner_pin(cast)
    globex = api(Scope.READ, tenant=cast.globex)
    aliases = {p["alias"] for p in globex.get("/api/v1/pins").json()["results"]}
    assert aliases == {"default", "classifier", "judge"}
    assert globex.get("/api/v1/pins/planner/changes").json()["results"] == []
    assert_error(globex.get("/api/v1/pins/planner"), 404, "not_found")
    globex_default = globex.get("/api/v1/pins/default").json()
    assert globex_default["model"]["id"] == str(selectors.pinned_model(tenant=cast.globex, alias="default").pk)


@pytest.mark.django_db
def test_the_schema_lists_the_catalog_paths(client: Client) -> None:
    paths = set(client.get("/api/v1/schema/?format=json").json()["paths"])
    assert {
        "/api/v1/providers/",
        "/api/v1/models/{id}/",
        "/api/v1/pins/{alias}/changes/",
        "/api/v1/pin-changes/{id}/decision/",
    } <= paths
