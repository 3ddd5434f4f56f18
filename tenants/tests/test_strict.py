"""A strict API (tenants.strict): an unknown request field is a 400 naming it, never dropped;
another API's name for one of ours is accepted where it means the same, else refused naming ours."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.urls import reverse
from rest_framework import serializers

from budgets.models import Reservation
from catalog.models import LanguageModel
from catalog.tests.test_api import _model_body
from tenants.models import Scope
from tenants.strict import StrictMixin
from tenants.testing import ApiClient, Cast, assert_error

RESERVE = {"model": "default", "input_tokens": 1000, "max_output_tokens": 1000}


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_serializer_of_the_project_is_strict() -> None:
    ours = {config.name for config in apps.get_app_configs() if not config.path.count("site-packages")}
    for name in ours:
        try:
            importlib.import_module(f"{name}.serializers")
        except ModuleNotFoundError:
            continue
    project = [
        cls
        for cls in _subclasses(serializers.Serializer)
        if cls.__module__.split(".")[0] in ours and cls.__module__ != "tenants.strict"
    ]
    assert len(project) > 50, "the project's serializers were not found"
    loose = sorted(f"{cls.__module__}.{cls.__name__}" for cls in project if not issubclass(cls, StrictMixin))
    assert loose == [], f"serializers that would drop unknown fields: {loose}"


@pytest.mark.django_db
def test_a_misnamed_price_is_refused_naming_ours_and_no_unpriced_model_is_created(
    acme_admin_api: ApiClient, cast: Cast
) -> None:
    body = _model_body(cast, input_price_per_million="2.50")
    del body["input_price"]
    error = assert_error(acme_admin_api.post("/api/v1/models", body), 400)
    assert error["fields"] == {"input_price_per_million": ["Unknown field; this API's is `input_price`."]}
    assert not LanguageModel.objects.filter(tenant=cast.acme, model_id=body["model_id"]).exists()


@pytest.mark.django_db
def test_an_unknown_field_is_refused_listing_the_fields_there_are(acme_admin_api: ApiClient, cast: Cast) -> None:
    error = assert_error(acme_admin_api.post("/api/v1/models", _model_body(cast, colour="blue")), 400)
    message = error["fields"]["colour"][0]
    assert message.startswith("Unknown field; the fields are: provider, model_id,") and "output_price" in message
    typo = assert_error(acme_admin_api.post("/api/v1/models", _model_body(cast, context_windw=8000)), 400)
    assert typo["fields"] == {"context_windw": ["Unknown field; did you mean `context_window`?"]}


@pytest.mark.django_db
def test_openai_names_on_a_reservation_and_its_settlement_are_accepted(api: Any, cast: Cast) -> None:
    reserver: ApiClient = api(Scope.BUDGETS_RESERVE)
    created = reserver.post(
        reverse("reservation-list"), {"model": "default", "prompt_tokens": 1000, "max_tokens": 500, "user": "u-1"}
    )
    assert created.status_code == 201, created.content
    reservation = Reservation.objects.get(pk=created.json()["id"])
    assert (reservation.input_tokens, reservation.max_output_tokens, reservation.end_user_id) == (1000, 500, "u-1")
    settled = reserver.post(
        reverse("reservation-settle", args=[reservation.pk]), {"prompt_tokens": 900, "completion_tokens": 20}
    )
    assert settled.status_code == 200, settled.content
    reservation.refresh_from_db()
    assert (reservation.actual_input_tokens, reservation.actual_output_tokens) == (900, 20)


@pytest.mark.django_db
def test_names_that_only_look_alike_or_clash_are_refused(api: Any, cast: Cast) -> None:
    reserver: ApiClient = api(Scope.BUDGETS_RESERVE)
    both = assert_error(reserver.post(reverse("reservation-list"), {**RESERVE, "max_tokens": 10}), 400)
    assert both["fields"] == {"max_tokens": ["Give `max_output_tokens` or `max_tokens`, not both."]}
    typo = assert_error(reserver.post(reverse("reservation-list"), {**RESERVE, "session": "s-1"}), 400)
    assert typo["fields"] == {"session": ["Unknown field; this API's is `session_id`."]}
    assert not Reservation.objects.filter(tenant=cast.acme).exists()
    created = reserver.post(reverse("reservation-list"), RESERVE).json()
    total = assert_error(
        reserver.post(
            reverse("reservation-settle", args=[created["id"]]),
            {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        ),
        400,
    )
    assert total["fields"] == {"total_tokens": ["Unknown field; this API's is `output_tokens`."]}
    assert Reservation.objects.get(pk=created["id"]).status == Reservation.Status.OPEN


@pytest.mark.django_db
def test_the_schema_says_request_bodies_refuse_unknown_fields(client: Any) -> None:
    schema = client.get("/api/v1/schema/?format=json").json()
    components = schema["components"]["schemas"]
    reserve = schema["paths"]["/api/v1/reservations/"]["post"]["requestBody"]["content"]["application/json"]
    name = reserve["schema"]["$ref"].rsplit("/", 1)[-1]
    assert components[name]["additionalProperties"] is False
    assert "max_tokens" in components[name]["properties"]["max_output_tokens"]["description"]
    assert components["LanguageModelWrite"]["additionalProperties"] is False


@pytest.mark.django_db
def test_a_lone_surrogate_or_deep_nesting_is_a_400_naming_what(acme_admin_api: ApiClient, cast: Cast) -> None:
    error = assert_error(acme_admin_api.post("/api/v1/models", _model_body(cast, display_name="a\ud800b")), 400)
    assert list(error["fields"]) == ["display_name"] and "surrogate" in error["fields"]["display_name"][0]
    deep = acme_admin_api.client.post(
        "/api/v1/models",
        data=b"[" * 100_000 + b"]" * 100_000,
        content_type="application/json",
        headers={"Authorization": f"Bearer {acme_admin_api.key}"},
    )
    assert assert_error(deep, 400, "parse_error")["message"] == "JSON parse error - the body is nested too deeply."


@pytest.mark.django_db
def test_every_list_refuses_a_filter_it_does_not_have_or_a_bad_value(acme_admin_api: ApiClient, cast: Cast) -> None:
    refused = {
        "/api/v1/audit-events?colour=red": "colour",
        "/api/v1/pin-changes?status=maybe": "status",
        "/api/v1/evals/runs?suite=not-a-uuid": "suite",
        "/api/v1/evals/runs?colour=red": "colour",
        "/api/v1/members?role=admin": "role",
        "/api/v1/api-keys?name=ci": "name",
        "/api/v1/evals/reviews?score=5": "score",
    }
    for path, name in refused.items():
        error = assert_error(acme_admin_api.get(path), 400, "validation_error")
        assert list(error["fields"]) == [name], (path, error)
    for path in (
        "/api/v1/audit-events?action=api_key.&actor=a",
        "/api/v1/pin-changes?status=pending&alias=default",
        "/api/v1/members?page_size=5",
    ):
        assert acme_admin_api.get(path).status_code == 200, path
