"""`GET /v1/models` through the OpenAI SDK against a live server: the key's aliases with their exact
models, and every refusal as the SDK's own exception type."""

from __future__ import annotations

import openai
import pytest

from catalog.models import ModelPin
from tenants.models import Scope
from tenants.testing import Cast, make_key

pytestmark = pytest.mark.django_db(transaction=True)


def sdk(live_server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0)


def aoc(model: openai.types.Model) -> str:
    """The exact model id behind an alias (our extension of OpenAI's model object)."""
    return str((model.model_extra or {})["aoc"]["model"])


def test_it_lists_the_tenants_aliases_with_the_exact_model_each_is_pinned_to(live_server, cast: Cast) -> None:
    _, key = make_key(cast.acme, [Scope.GATEWAY])
    listed = sdk(live_server, key).models.list()
    pins = {pin.alias: pin.model.model_id for pin in ModelPin.objects.for_tenant(cast.acme).select_related("model")}
    assert pins, "the demo tenant pins at least one alias"
    assert {m.id: aoc(m) for m in listed.data} == pins
    assert all(m.object == "model" and m.owned_by for m in listed.data)


def test_it_never_shows_another_tenants_aliases(live_server, cast: Cast) -> None:
    _, key = make_key(cast.globex, [Scope.GATEWAY])
    acme = set(ModelPin.objects.for_tenant(cast.acme).values_list("model__model_id", flat=True))
    globex = set(ModelPin.objects.for_tenant(cast.globex).values_list("model__model_id", flat=True))
    seen = {aoc(m) for m in sdk(live_server, key).models.list().data}
    assert seen == globex and not (seen & (acme - globex))


def test_a_bad_key_is_the_sdks_authentication_error(live_server, cast: Cast) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(live_server, "aoc_nope_nope").models.list()
    assert raised.value.status_code == 401
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert isinstance(raised.value.body, dict) and raised.value.body["code"] == "invalid_api_key"


def test_a_key_without_the_gateway_scope_is_refused_naming_it(live_server, cast: Cast) -> None:
    _, key = make_key(cast.acme, [Scope.READ])
    with pytest.raises(openai.PermissionDeniedError) as raised:
        sdk(live_server, key).models.list()
    assert "`gateway` scope" in raised.value.message


def test_a_revoked_key_is_refused_with_the_reason(live_server, cast: Cast) -> None:
    from tenants.audit import Actor
    from tenants.services import api_key_revoke

    api_key, key = make_key(cast.acme, [Scope.GATEWAY])
    api_key_revoke(actor=Actor.system_actor("tests"), api_key=api_key)
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(live_server, key).models.list()
    assert "revoked" in raised.value.message


def test_a_post_to_the_list_is_a_405(client, cast: Cast) -> None:
    _, key = make_key(cast.acme, [Scope.GATEWAY])
    response = client.post("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 405 and response["Allow"] == "GET"
    assert response.json()["error"]["message"] == "Use GET to list models."
