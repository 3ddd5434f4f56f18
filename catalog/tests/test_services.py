"""Model control services: providers, exact models, pins changed only through reviewed requests."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.utils import timezone

from catalog import selectors, services
from catalog.demo import DEMO_MODEL_ID, seed_catalog
from catalog.models import LanguageModel, ModelPin, PinChange, Provider
from catalog.services import NotAllowedError, PinChangeGateError
from tenants import rls
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError
from tenants.models import AuditEvent
from tenants.testing import Cast, make_key

SYSTEM = Actor.system_actor("tests")


def alice(cast: Cast) -> Actor:
    return Actor(user=cast.alice)


def make_provider(cast: Cast, name: str = "openai", **kwargs: Any) -> Provider:
    defaults: dict[str, Any] = {"kind": Provider.Kind.OPENAI_COMPATIBLE, "api_key": "sk-test-secret"}
    return services.provider_create(actor=alice(cast), tenant=cast.acme, name=name, **{**defaults, **kwargs})


def make_model(cast: Cast, provider: Provider, model_id: str = "gpt-4o-2024-08-06", **kwargs: Any) -> LanguageModel:
    defaults: dict[str, Any] = {
        "input_price": 2_500_000,
        "cached_input_price": 1_250_000,
        "output_price": 10_000_000,
        "context_window": 128_000,
        "max_output_tokens": 16_384,
    }
    return services.model_create(
        actor=alice(cast), tenant=cast.acme, provider=provider, model_id=model_id, **{**defaults, **kwargs}
    )


# --- Prices ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usd", "micros"),
    [("2.50", 2_500_000), ("0.05", 50_000), ("0.000001", 1), ("15", 15_000_000), (0.1, 100_000), ("", None)],
)
def test_usd_prices_convert_to_exact_micros(usd: Any, micros: int | None) -> None:
    assert services.usd_to_micros(usd, field="input_price") == micros


@pytest.mark.parametrize("bad", ["0.0000001", "-1", "two", "NaN", "Infinity", True])
def test_a_bad_price_is_refused_naming_the_field(bad: Any) -> None:
    with pytest.raises(FieldError) as exc:
        services.usd_to_micros(bad, field="output_price")
    assert exc.value.field == "output_price"
    assert exc.value.extra["fields"]["output_price"]


def test_micros_read_back_as_usd_with_two_decimals_at_least() -> None:
    assert services.micros_to_usd(2_500_000) == "2.50"
    assert services.micros_to_usd(1) == "0.000001"
    assert services.micros_to_usd(15_000_000) == "15.00"
    assert services.micros_to_usd(None) is None


# --- Providers ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_provider_keeps_its_api_key_encrypted_and_out_of_the_audit_log(cast: Cast) -> None:
    provider = make_provider(cast)
    provider.refresh_from_db()
    assert provider.api_key == "sk-test-secret"
    assert "sk-test-secret" not in provider.api_key_encrypted
    event = AuditEvent.objects.get(tenant=cast.acme, action="provider.create", target_id=str(provider.pk))
    assert event.after is not None and event.after["api_key"] == "set"
    assert "sk-test" not in str(event.after)


@pytest.mark.django_db
def test_a_provider_key_can_be_replaced_and_cleared_and_each_is_audited(cast: Cast) -> None:
    provider = make_provider(cast)
    services.provider_update(actor=alice(cast), provider=provider, api_key="sk-new")
    provider.refresh_from_db()
    assert provider.api_key == "sk-new"
    services.provider_update(actor=alice(cast), provider=provider, clear_api_key=True)
    provider.refresh_from_db()
    assert not provider.has_api_key
    updates = AuditEvent.objects.filter(tenant=cast.acme, action="provider.update").order_by("created_at")
    assert [e.after["api_key"] for e in updates if e.after] == ["replaced", "not set"]


@pytest.mark.django_db
def test_an_unchanged_provider_update_writes_no_audit_row(cast: Cast) -> None:
    provider = make_provider(cast)
    services.provider_update(actor=alice(cast), provider=provider, name="openai", api_key="")
    assert not AuditEvent.objects.filter(tenant=cast.acme, action="provider.update").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": " "}, "name"),
        ({"kind": "bedrock"}, "kind"),
        ({"base_url": "ftp://example.test"}, "base_url"),
        ({"base_url": "not a url"}, "base_url"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"max_retries": 11}, "max_retries"),
    ],
)
def test_a_bad_provider_is_refused_naming_the_field(cast: Cast, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as exc:
        make_provider(cast, **{"name": "p", **kwargs})
    assert exc.value.field == field


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("https://169.254.169.254/latest", "internal address (169.254.169.254)"),  # cloud metadata
        ("https://10.0.0.5/v1", "internal address (10.0.0.5)"),
        ("https://127.0.0.1:6379/", "internal address (127.0.0.1)"),
        ("https://[::1]/v1", "internal address (::1)"),
        ("http://93.184.215.14/v1", "must use https://"),  # a public host, but the key would go in clear
    ],
)
def test_a_provider_url_that_reaches_inside_is_refused_unless_allow_listed(
    cast: Cast, settings: Any, base_url: str, reason: str
) -> None:
    settings.PROVIDER_ALLOWED_HOSTS = []
    with pytest.raises(FieldError) as exc:
        make_provider(cast, name="inside", base_url=base_url)
    assert exc.value.field == "base_url" and reason in exc.value.detail
    assert "PROVIDER_ALLOWED_HOSTS" in exc.value.detail
    # An operator who runs a model server there says so.
    settings.PROVIDER_ALLOWED_HOSTS = [urlsplit(base_url).hostname]
    assert make_provider(cast, name="inside", base_url=base_url).base_url == base_url


@pytest.mark.django_db
def test_a_provider_url_is_checked_again_before_each_call(cast: Cast, settings: Any) -> None:
    from catalog.clients import ChatRequest, client_for
    from catalog.clients.base import ProviderError
    from catalog.fake_openai import FakeOpenAI

    with FakeOpenAI() as fake:
        provider = make_provider(cast, name="vllm", base_url=fake.base_url)  # 127.0.0.1: allow-listed
        client = client_for(selectors.provider_config(provider))
        request = ChatRequest(model_id="m", messages=[{"role": "user", "content": "hi"}], max_output_tokens=8)
        assert client.chat(request).content
        settings.PROVIDER_ALLOWED_HOSTS = []  # the operator takes loopback off the list
        with pytest.raises(ProviderError) as exc:
            client.chat(request)
        assert exc.value.type == "unsafe_url" and "must use https://" in exc.value.message
        assert len(fake.requests) == 1  # the refused call never reached the server


@pytest.mark.django_db
def test_a_second_provider_with_the_same_name_is_a_conflict(cast: Cast) -> None:
    make_provider(cast)
    with pytest.raises(ConflictError):
        make_provider(cast)


@pytest.mark.django_db
def test_a_provider_with_models_cannot_be_deleted_or_moved(cast: Cast) -> None:
    provider = make_provider(cast)
    make_model(cast, provider)
    with pytest.raises(ConflictError, match="1 model"):
        services.provider_delete(actor=alice(cast), provider=provider)
    with pytest.raises(FieldError) as exc:
        services.provider_update(actor=alice(cast), provider=provider, base_url="http://127.0.0.1:9/v1")
    assert exc.value.field == "base_url"
    empty = make_provider(cast, name="spare")
    services.provider_delete(actor=alice(cast), provider=empty)
    assert not Provider.objects.filter(pk=empty.pk).exists()
    assert AuditEvent.objects.filter(tenant=cast.acme, action="provider.delete").count() == 1


# --- Models ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("floating", ["gpt-4o", "gpt-4o-latest", "chatgpt-4o-latest", "o3-mini"])
def test_floating_openai_names_are_refused(cast: Cast, floating: str) -> None:
    provider = make_provider(cast)
    with pytest.raises(FieldError) as exc:
        make_model(cast, provider, model_id=floating)
    assert exc.value.field == "model_id"
    assert "floating" in exc.value.message or "dated snapshot" in exc.value.message


@pytest.mark.django_db
@pytest.mark.parametrize("floating", ["claude-sonnet-4-5", "claude-3-5-sonnet-latest"])
def test_floating_anthropic_names_are_refused(cast: Cast, floating: str) -> None:
    provider = make_provider(cast, name="anthropic", kind=Provider.Kind.ANTHROPIC)
    with pytest.raises(FieldError) as exc:
        make_model(cast, provider, model_id=floating)
    assert exc.value.field == "model_id"


@pytest.mark.django_db
def test_dated_snapshots_are_accepted(cast: Cast) -> None:
    anthropic = make_provider(cast, name="anthropic", kind=Provider.Kind.ANTHROPIC)
    model = make_model(cast, anthropic, model_id="claude-sonnet-4-5-20250929")
    assert model.model_id == "claude-sonnet-4-5-20250929"
    assert AuditEvent.objects.filter(tenant=cast.acme, action="model.create", target_id=str(model.pk)).exists()


@pytest.mark.django_db
def test_a_self_hosted_model_needs_a_revision(cast: Cast) -> None:
    vllm = make_provider(cast, name="vllm", base_url="http://127.0.0.1:8001/v1", api_key="")
    for revision in ("", "latest", "main"):
        with pytest.raises(FieldError) as exc:
            make_model(cast, vllm, model_id="meta-llama/Llama-3.1-8B-Instruct", revision=revision)
        assert exc.value.field == "revision"
    model = make_model(cast, vllm, model_id="meta-llama/Llama-3.1-8B-Instruct", revision="0e9e39f")
    assert str(model) == "meta-llama/Llama-3.1-8B-Instruct@0e9e39f"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"context_window": 0}, "context_window"),
        ({"max_output_tokens": 200_000}, "max_output_tokens"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"input_price": None}, "input_price"),
        ({"output_price": None}, "output_price"),
    ],
)
def test_bad_limits_and_half_prices_are_refused_naming_the_field(
    cast: Cast, kwargs: dict[str, Any], field: str
) -> None:
    provider = make_provider(cast)
    with pytest.raises(FieldError) as exc:
        make_model(cast, provider, **kwargs)
    assert exc.value.field == field


@pytest.mark.django_db
def test_a_model_of_another_tenants_provider_is_refused(cast: Cast) -> None:
    globex_provider = Provider.objects.get(tenant=cast.globex, name="demo")
    with pytest.raises(FieldError) as exc:
        make_model(cast, globex_provider, model_id="demo-x-2025-01-01")
    assert exc.value.field == "provider"


@pytest.mark.django_db
def test_the_same_exact_version_twice_is_a_conflict(cast: Cast) -> None:
    provider = make_provider(cast)
    make_model(cast, provider)
    with pytest.raises(ConflictError):
        make_model(cast, provider)


@pytest.mark.django_db
def test_a_model_update_changes_prices_and_is_audited_but_a_pinned_model_keeps_its_prices(cast: Cast) -> None:
    demo = selectors.pinned_model(tenant=cast.acme, alias="default")
    updated = services.model_update(actor=alice(cast), model=demo, output_price=2_000_000)
    assert updated.output_price == 2_000_000
    event = AuditEvent.objects.get(tenant=cast.acme, action="model.update")
    assert event.before and event.after
    assert (event.before["output_price"], event.after["output_price"]) == (1_500_000, 2_000_000)
    with pytest.raises(FieldError, match="without prices cannot be used"):
        services.model_update(
            actor=alice(cast), model=demo, input_price=None, cached_input_price=None, output_price=None
        )


@pytest.mark.django_db
def test_a_pinned_model_cannot_be_deleted_but_an_unused_one_can(cast: Cast) -> None:
    demo = selectors.pinned_model(tenant=cast.acme, alias="default")
    with pytest.raises(ConflictError):
        services.model_delete(actor=alice(cast), model=demo)
    spare = make_model(cast, make_provider(cast))
    services.model_delete(actor=alice(cast), model=spare)
    assert not LanguageModel.objects.filter(pk=spare.pk).exists()


# --- Pin changes -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_alice_requests_and_approves_a_pin_change_which_moves_the_pin(cast: Cast) -> None:
    new = make_model(cast, make_provider(cast))
    change = services.pin_change_request(
        actor=alice(cast), tenant=cast.acme, alias="default", to_model=new, reason="Better answers on the eval set"
    )
    assert change.status == PinChange.Status.PENDING
    assert change.from_model is not None and change.from_model.model_id == DEMO_MODEL_ID
    assert selectors.pinned_model(tenant=cast.acme, alias="default").model_id == DEMO_MODEL_ID

    decided = services.pin_change_decide(actor=alice(cast), change=change, approve=True, note="ok")
    assert decided.status == PinChange.Status.APPLIED and decided.decided_by == cast.alice
    assert selectors.pinned_model(tenant=cast.acme, alias="default") == new
    # The classifier alias did not move, nor did Globex's default.
    assert selectors.pinned_model(tenant=cast.acme, alias="classifier").model_id == DEMO_MODEL_ID
    assert selectors.pinned_model(tenant=cast.globex, alias="default").model_id == DEMO_MODEL_ID
    actions = set(AuditEvent.objects.filter(tenant=cast.acme).values_list("action", flat=True))
    assert {"pin_change.request", "pin_change.approve", "pin.set"} <= actions
    history = list(selectors.pin_history(tenant=cast.acme, alias="default"))
    assert [h.to_model.model_id for h in history] == ["gpt-4o-2024-08-06", DEMO_MODEL_ID]


@pytest.mark.django_db
def test_the_first_pin_of_an_alias_is_a_change_request_too(cast: Cast) -> None:
    new = make_model(cast, make_provider(cast))
    change = services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="planner", to_model=new, reason="x")
    assert change.from_model is None
    assert not ModelPin.objects.filter(tenant=cast.acme, alias="planner").exists()
    services.pin_change_decide(actor=alice(cast), change=change, approve=True)
    assert selectors.pinned_model(tenant=cast.acme, alias="planner") == new


@pytest.mark.django_db
def test_a_rejected_change_leaves_the_pin_alone_and_is_not_history(cast: Cast) -> None:
    new = make_model(cast, make_provider(cast))
    change = services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=new, reason="x")
    services.pin_change_decide(actor=alice(cast), change=change, approve=False, note="not now")
    change.refresh_from_db()
    assert change.status == PinChange.Status.REJECTED and change.decision_note == "not now"
    assert selectors.pinned_model(tenant=cast.acme, alias="default").model_id == DEMO_MODEL_ID
    assert change not in selectors.pin_history(tenant=cast.acme, alias="default")
    assert AuditEvent.objects.filter(tenant=cast.acme, action="pin_change.reject").count() == 1


@pytest.mark.django_db
def test_an_unpriced_model_cannot_be_requested(cast: Cast) -> None:
    unpriced = make_model(cast, make_provider(cast), input_price=None, cached_input_price=None, output_price=None)
    with pytest.raises(FieldError, match="a model without prices cannot be used") as exc:
        services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=unpriced, reason="x")
    assert exc.value.field == "model"


@pytest.mark.django_db
def test_a_model_of_a_disabled_provider_cannot_be_requested(cast: Cast) -> None:
    provider = make_provider(cast, enabled=False)
    with pytest.raises(FieldError, match="disabled"):
        services.pin_change_request(
            actor=alice(cast), tenant=cast.acme, alias="default", to_model=make_model(cast, provider), reason="x"
        )


@pytest.mark.django_db
def test_approval_rechecks_that_the_model_is_still_usable(cast: Cast) -> None:
    provider = make_provider(cast)
    change = services.pin_change_request(
        actor=alice(cast), tenant=cast.acme, alias="default", to_model=make_model(cast, provider), reason="x"
    )
    services.provider_update(actor=alice(cast), provider=provider, enabled=False)
    with pytest.raises(FieldError, match="disabled"):
        services.pin_change_decide(actor=alice(cast), change=change, approve=True)
    change.refresh_from_db()
    assert change.is_open


@pytest.mark.django_db
def test_a_second_open_request_for_an_alias_is_a_conflict(cast: Cast) -> None:
    provider = make_provider(cast)
    first, second = make_model(cast, provider), make_model(cast, provider, model_id="gpt-4o-2024-11-20")
    services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=first, reason="x")
    with pytest.raises(ConflictError, match="already has an open change request"):
        services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=second, reason="y")
    # Another alias is independent.
    services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="classifier", to_model=second, reason="y")


@pytest.mark.django_db
@pytest.mark.parametrize(("alias", "reason", "field"), [("Not An Alias", "x", "alias"), ("default", "  ", "reason")])
def test_a_bad_request_is_refused_naming_the_field(cast: Cast, alias: str, reason: str, field: str) -> None:
    new = make_model(cast, make_provider(cast))
    with pytest.raises(FieldError) as exc:
        services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias=alias, to_model=new, reason=reason)
    assert exc.value.field == field


@pytest.mark.django_db
def test_only_admins_request_and_decide(cast: Cast) -> None:
    new = make_model(cast, make_provider(cast))
    with pytest.raises(NotAllowedError):
        services.pin_change_request(
            actor=Actor(user=cast.bob), tenant=cast.acme, alias="default", to_model=new, reason="x"
        )
    change = services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=new, reason="x")
    for outsider in (Actor(user=cast.bob), Actor(user=cast.vera), Actor(user=cast.charlie)):
        with pytest.raises(NotAllowedError):
            services.pin_change_decide(actor=outsider, change=change, approve=True)
    read_key, _ = make_key(cast.acme, "read")
    with pytest.raises(NotAllowedError):
        services.pin_change_decide(actor=Actor(api_key=read_key), change=change, approve=True)
    admin_key, _ = make_key(cast.acme, "admin")
    decided = services.pin_change_decide(actor=Actor(api_key=admin_key), change=change, approve=True)
    assert decided.decided_by is None and decided.decided_by_label.startswith("key ")


@pytest.mark.django_db
def test_a_second_decision_is_refused_naming_who_decided(cast: Cast) -> None:
    new = make_model(cast, make_provider(cast))
    change = services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=new, reason="x")
    services.pin_change_decide(actor=alice(cast), change=change, approve=False)
    with pytest.raises(ConflictError, match=r"alice@acme\.test") as exc:
        services.pin_change_decide(actor=alice(cast), change=change, approve=True)
    assert exc.value.extra["decided_by"] == "alice@acme.test"
    assert selectors.pinned_model(tenant=cast.acme, alias="default").model_id == DEMO_MODEL_ID


@pytest.mark.django_db
def test_the_requester_cancels_an_open_request_once(cast: Cast) -> None:
    new = make_model(cast, make_provider(cast))
    change = services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=new, reason="x")
    with pytest.raises(NotAllowedError):
        services.pin_change_cancel(actor=Actor(user=cast.vera), change=change)
    services.pin_change_cancel(actor=alice(cast), change=change)
    change.refresh_from_db()
    assert change.status == PinChange.Status.CANCELLED
    with pytest.raises(ConflictError):
        services.pin_change_cancel(actor=alice(cast), change=change)
    # The alias is free for a new request.
    services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=new, reason="again")


@pytest.mark.django_db
def test_a_gate_can_refuse_an_approval_and_the_change_stays_pending(cast: Cast, monkeypatch: Any) -> None:
    def eval_gate(change: PinChange) -> str | None:
        return f"{change.to_model} has not passed the regression suite"

    monkeypatch.setattr(services, "PIN_CHANGE_GATES", [eval_gate])
    new = make_model(cast, make_provider(cast))
    change = services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=new, reason="x")
    with pytest.raises(PinChangeGateError, match="regression suite") as exc:
        services.pin_change_decide(actor=alice(cast), change=change, approve=True)
    assert exc.value.status_code == 409 and exc.value.extra["gate"] == "eval_gate"
    change.refresh_from_db()
    assert change.is_open
    assert selectors.pinned_model(tenant=cast.acme, alias="default").model_id == DEMO_MODEL_ID
    # Rejection is never gated.
    services.pin_change_decide(actor=alice(cast), change=change, approve=False)


@pytest.mark.django_db
def test_only_the_system_pins_without_review(cast: Cast) -> None:
    new = make_model(cast, make_provider(cast))
    with pytest.raises(NotAllowedError):
        services.pin_set_by_system(actor=alice(cast), tenant=cast.acme, alias="default", model=new, reason="x")
    services.pin_set_by_system(actor=SYSTEM, tenant=cast.acme, alias="default", model=new, reason="migration")
    latest = selectors.pin_history(tenant=cast.acme, alias="default").first()
    assert latest is not None and latest.to_model == new and latest.decided_by_label == "tests"


@pytest.mark.django_db
def test_the_demo_seed_is_idempotent_and_audited(cast: Cast) -> None:
    before = AuditEvent.objects.filter(tenant=cast.acme).count()
    seed_catalog(cast.acme)
    seed_catalog(cast.acme)
    assert AuditEvent.objects.filter(tenant=cast.acme).count() == before
    model = selectors.pinned_model(tenant=cast.acme, alias="classifier")
    assert (model.model_id, model.input_price, model.cached_input_price, model.output_price) == (
        DEMO_MODEL_ID,
        500_000,
        50_000,
        1_500_000,
    )
    assert (model.context_window, model.max_output_tokens, model.provider.kind) == (32_768, 4_096, "demo")
    seeded = AuditEvent.objects.filter(tenant=cast.acme, action="pin.set", actor_label="demo seed")
    assert seeded.count() == 2


@pytest.mark.django_db
def test_pinned_models_deprecating_within_30_days_are_listed_soonest_first(cast: Cast) -> None:
    today = timezone.localdate()
    demo = selectors.pinned_model(tenant=cast.acme, alias="default")
    assert not selectors.pinned_models_deprecating(tenant=cast.acme).exists()
    services.model_update(actor=alice(cast), model=demo, deprecation_date=today + timedelta(days=12))
    soon = [p.alias for p in selectors.pinned_models_deprecating(tenant=cast.acme)]
    assert soon == ["classifier", "default", "judge"]  # the evals demo seed pins `judge` to it too
    assert not selectors.pinned_models_deprecating(tenant=cast.acme, days=11).exists()
    assert not selectors.pinned_models_deprecating(tenant=cast.globex).exists()
    # An unpinned model deprecating tomorrow is not a warning.
    make_model(cast, make_provider(cast), deprecation_date=today + timedelta(days=1))
    assert selectors.pinned_models_deprecating(tenant=cast.acme).count() == 3


# --- Decide once, under real concurrency -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_admins_deciding_at_once_apply_the_change_exactly_once(cast: Cast, monkeypatch: Any) -> None:
    """Two threads, each on its own PostgreSQL connection, approve the same change at the same
    moment. A slow gate holds the winner inside its transaction, so the loser really waits on the
    row lock, then sees the decision and gets 409."""

    def slow_gate(change: PinChange) -> None:
        time.sleep(0.3)
        return None

    monkeypatch.setattr(services, "PIN_CHANGE_GATES", [slow_gate])
    new = make_model(cast, make_provider(cast))
    change = services.pin_change_request(actor=alice(cast), tenant=cast.acme, alias="default", to_model=new, reason="x")
    admin_key, _ = make_key(cast.acme, "admin", name="second admin")
    actors = [alice(cast), Actor(api_key=admin_key)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(actor: Actor) -> None:
        try:
            barrier.wait()
            services.pin_change_decide(actor=actor, change=PinChange.objects.get(pk=change.pk), approve=True)
            outcomes.append("applied")
        except ConflictError as exc:
            outcomes.append(f"conflict: {exc.message}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=rls.carried(decide), args=(actor,)) for actor in actors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(o.split(":")[0] for o in outcomes) == ["applied", "conflict"], outcomes
    assert "already approved and applied by" in next(o for o in outcomes if o.startswith("conflict"))
    assert AuditEvent.objects.filter(tenant=cast.acme, action="pin_change.approve").count() == 1
    assert (
        AuditEvent.objects.filter(tenant=cast.acme, action="pin.set", target_label__startswith="default").count() == 2
    )
    assert selectors.pinned_model(tenant=cast.acme, alias="default") == new


def test_a_provider_host_that_does_not_resolve_is_a_retried_connection_error_never_a_cached_verdict(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    import socket

    from catalog.clients import ChatRequest, OpenAICompatibleClient, ProviderConfig
    from catalog.clients.base import ProviderError

    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror("Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    config = ProviderConfig(
        kind="openai_compatible", base_url="https://models.example.com/v1", max_retries=1, check_address=True
    )
    client = OpenAICompatibleClient(config, sleep=lambda seconds: None)
    request = ChatRequest(model_id="m", messages=[{"role": "user", "content": "hi"}], max_output_tokens=8)
    with pytest.raises(ProviderError) as exc:
        client.chat(request)
    assert (exc.value.type, exc.value.retryable) == ("connection", True)
    assert "does not resolve" in exc.value.message and "gave up after 2 attempts" in exc.value.message


@pytest.mark.django_db
def test_a_provider_call_goes_to_the_address_the_guard_approved(
    cast: Cast, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host is resolved once by the guard (then its verdict is reused), and the connection is
    made to that address with the real Host header: a later DNS answer cannot redirect the call."""
    import ipaddress
    import socket

    from catalog.clients import ChatRequest, client_for, transport
    from catalog.fake_openai import FakeOpenAI

    real = socket.getaddrinfo
    looked_up: list[str] = []

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            looked_up.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    monkeypatch.setattr(transport, "_verdicts", {})
    settings.PROVIDER_ALLOWED_HOSTS = ["localhost"]
    with FakeOpenAI() as fake:
        port = fake.base_url.split(":")[2].split("/")[0]
        provider = make_provider(cast, name="local", base_url=f"http://localhost:{port}/v1")
        client = client_for(selectors.provider_config(provider))
        request = ChatRequest(model_id="m", messages=[{"role": "user", "content": "hi"}], max_output_tokens=8)
        client.chat(request)
        client.chat(request)
        hosts = [r.headers.get("host") for r in fake.requests]
    assert hosts == [f"localhost:{port}"] * 2
    # Resolved once, when the provider was saved; the calls reused that verdict and its address,
    # and httpx never resolved the name itself.
    assert looked_up == ["localhost"]
