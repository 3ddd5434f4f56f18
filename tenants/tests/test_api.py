"""The kernel's REST API: /me, members, API keys, audit events, and the error contract."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tenants.models import ApiKey, AuditEvent, Membership, Role, Tenant
from tenants.testing import ApiClient, ApiContract, Cast, assert_error, make_key

# --- Contracts: 401 / 403 / 404 for every endpoint ---------------------------------------------


class TestMe(ApiContract):
    url_name = "me"
    scope = None

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)


class TestMembersList(ApiContract):
    url_name = "member-list"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)


class TestMemberInvite(ApiContract):
    url_name = "member-list"
    method = "post"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return {"email": f"new-{timezone.now().timestamp()}@example.test", "role": "viewer"}


class TestMemberDetail(ApiContract):
    url_name = "member-detail"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[cast.membership(cast.vera).pk])


class TestMemberRoleChange(ApiContract):
    url_name = "member-detail"
    method = "patch"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[cast.membership(cast.vera).pk])

    def body(self, cast: Cast) -> Any:
        return {"role": "reviewer"}


class TestMemberRemove(ApiContract):
    url_name = "member-detail"
    method = "delete"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        membership = Membership.objects.filter(user=cast.vera, tenant=cast.acme).first()
        return reverse(self.url_name, args=[membership.pk if membership else "01a21479-0000-7000-8000-000000000000"])

    @pytest.mark.django_db
    def test_it_requires_role(self, client: Client, cast: Cast) -> None:
        super().test_it_requires_role(client, cast)
        assert not Membership.objects.filter(user=cast.vera, tenant=cast.acme).exists()


class TestApiKeysList(ApiContract):
    url_name = "api-key-list"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)


class TestApiKeyCreate(ApiContract):
    url_name = "api-key-list"
    method = "post"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return {"name": "ci", "scopes": ["runs:write"]}


def _acme_key(cast: Cast) -> ApiKey:
    key = ApiKey.objects.filter(tenant=cast.acme, name="target").first()
    return key or make_key(cast.acme, "read", name="target")[0]


class TestApiKeyDetail(ApiContract):
    url_name = "api-key-detail"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_acme_key(cast).pk])


class TestApiKeyRevoke(ApiContract):
    url_name = "api-key-revoke"
    method = "post"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_acme_key(cast).pk])


class TestApiKeyDelete(ApiContract):
    url_name = "api-key-detail"
    method = "delete"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[_acme_key(cast).pk])


class TestAuditList(ApiContract):
    url_name = "audit-event-list"

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name)


class TestAuditDetail(ApiContract):
    url_name = "audit-event-detail"
    object_scoped = True

    def path(self, cast: Cast) -> str:
        event = AuditEvent.objects.filter(tenant=cast.acme).first() or (
            make_key(cast.acme, "read")[0] and (AuditEvent.objects.filter(tenant=cast.acme).first())
        )
        assert event is not None
        return reverse(self.url_name, args=[event.pk])


# --- Behaviour ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_me_names_the_keys_tenant_and_scopes(api: Callable[..., ApiClient], cast: Cast) -> None:
    body = api("runs:write traces:write").get("/api/v1/me").json()
    assert body["tenant"]["slug"] == "acme"
    assert body["scopes"] == ["runs:write", "traces:write"]
    assert body["key"]["name"] == "test key"
    assert "secret" not in str(body)


@pytest.mark.django_db
def test_me_answers_with_and_without_a_trailing_slash(acme_admin_api: ApiClient) -> None:
    assert acme_admin_api.get("/api/v1/me").status_code == 200
    assert acme_admin_api.get("/api/v1/me/").status_code == 200


@pytest.mark.django_db
def test_it_records_when_a_key_was_last_used(cast: Cast, client: Client) -> None:
    key, plaintext = make_key(cast.acme, "read")
    assert key.last_used_at is None
    ApiClient(client, plaintext).get("/api/v1/me")
    key.refresh_from_db()
    assert key.last_used_at is not None and timezone.now() - key.last_used_at < timedelta(seconds=5)


@pytest.mark.django_db
def test_it_refuses_revoked_and_expired_keys_saying_why(cast: Cast, client: Client) -> None:
    key, plaintext = make_key(cast.acme, "admin")
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    error = assert_error(ApiClient(client, plaintext).get("/api/v1/me"), 401, "api_key_expired")
    assert "expired" in error["message"]
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert_error(ApiClient(client, plaintext).get("/api/v1/me"), 401, "api_key_revoked")


@pytest.mark.django_db
def test_it_refuses_a_tampered_key(cast: Cast, client: Client) -> None:
    _, plaintext = make_key(cast.acme, "admin")
    assert_error(ApiClient(client, plaintext[:-2] + "xx").get("/api/v1/me"), 401, "authentication_failed")
    assert_error(ApiClient(client, "Bearer").get("/api/v1/me"), 401)
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer a b"})
    assert_error(response, 401, "authentication_failed")


@pytest.mark.django_db
def test_it_refuses_keys_of_a_suspended_tenant(cast: Cast, client: Client) -> None:
    _, plaintext = make_key(cast.acme, "admin")
    Tenant.objects.filter(pk=cast.acme.pk).update(status=Tenant.Status.SUSPENDED)
    error = assert_error(ApiClient(client, plaintext).get("/api/v1/me"), 403, "tenant_suspended")
    assert "suspended" in error["message"]


@pytest.mark.django_db
def test_inviting_an_existing_user_adds_them_at_once(
    acme_admin_api: ApiClient, cast: Cast, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = acme_admin_api.post("/api/v1/members", {"email": "Charlie@Globex.test", "role": "reviewer"})
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "reviewer"
    assert Membership.objects.get(tenant=cast.acme, user=cast.charlie).role == Role.REVIEWER
    assert mail.outbox[-1].to == ["charlie@globex.test"]
    assert_error(acme_admin_api.post("/api/v1/members", {"email": "charlie@globex.test"}), 409, "conflict")


@pytest.mark.django_db
def test_inviting_a_new_address_emails_a_link(
    acme_admin_api: ApiClient, cast: Cast, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = acme_admin_api.post("/api/v1/members", {"email": "dana@example.test", "role": "viewer"})
    assert response.status_code == 202, response.content
    url = response.json()["invitation"]["accept_url"]
    assert "/invitations/" in url
    assert url in mail.outbox[-1].body
    assert_error(acme_admin_api.post("/api/v1/members", {"email": "dana@example.test"}), 409, "conflict")


@pytest.mark.django_db
def test_it_changes_a_role_and_audits_it(acme_admin_api: ApiClient, cast: Cast) -> None:
    vera = cast.membership(cast.vera)
    response = acme_admin_api.patch(f"/api/v1/members/{vera.pk}", {"role": "reviewer"})
    assert response.status_code == 200 and response.json()["role"] == "reviewer"
    event = AuditEvent.objects.for_tenant(cast.acme).filter(action="member.role_change").get()
    assert event.before == {"email": "vera@acme.test", "role": "viewer"}
    assert event.after == {"email": "vera@acme.test", "role": "reviewer"}
    assert event.actor_api_key is not None and "test key" in event.actor_label


@pytest.mark.django_db
def test_it_refuses_to_remove_or_demote_the_last_admin(acme_admin_api: ApiClient, cast: Cast) -> None:
    alice = cast.membership(cast.alice)
    error = assert_error(acme_admin_api.delete(f"/api/v1/members/{alice.pk}"), 409, "last_admin")
    assert "last admin" in error["message"]
    assert_error(acme_admin_api.patch(f"/api/v1/members/{alice.pk}", {"role": "viewer"}), 409, "last_admin")
    assert Membership.objects.get(pk=alice.pk).role == Role.ADMIN


@pytest.mark.django_db
def test_it_validates_a_role(acme_admin_api: ApiClient, cast: Cast) -> None:
    vera = cast.membership(cast.vera)
    error = assert_error(acme_admin_api.patch(f"/api/v1/members/{vera.pk}", {"role": "owner"}), 400, "validation_error")
    assert "role" in error["fields"]


@pytest.mark.django_db
def test_a_created_key_is_shown_once_and_works(acme_admin_api: ApiClient, client: Client, cast: Cast) -> None:
    expires = (timezone.now() + timedelta(days=3)).isoformat()
    response = acme_admin_api.post("/api/v1/api-keys", {"name": "ci", "scopes": ["runs:write"], "expires_at": expires})
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["key"].startswith("aoc_") and created["scopes"] == ["runs:write"]
    detail = acme_admin_api.get(f"/api/v1/api-keys/{created['id']}").json()
    assert "key" not in detail and detail["prefix"] == created["prefix"]
    assert created["key"] not in acme_admin_api.get("/api/v1/api-keys").content.decode()
    me = ApiClient(client, created["key"]).get("/api/v1/me").json()
    assert me["scopes"] == ["runs:write"]


@pytest.mark.django_db
def test_a_key_may_carry_a_token_cap_per_request(acme_admin_api: ApiClient) -> None:
    body = {"name": "capped", "scopes": ["budgets:reserve"], "max_tokens_per_request": 2_000}
    created = acme_admin_api.post("/api/v1/api-keys", body)
    assert created.status_code == 201 and created.json()["max_tokens_per_request"] == 2_000
    error = assert_error(acme_admin_api.post("/api/v1/api-keys", {**body, "max_tokens_per_request": 0}), 400)
    assert "max_tokens_per_request" in error["fields"]


@pytest.mark.django_db
def test_it_validates_a_new_key(acme_admin_api: ApiClient) -> None:
    error = assert_error(acme_admin_api.post("/api/v1/api-keys", {"name": "x", "scopes": ["root"]}), 400)
    assert "scopes" in error["fields"]
    assert_error(acme_admin_api.post("/api/v1/api-keys", {"name": "x", "scopes": []}), 400, "validation_error")
    past = (timezone.now() - timedelta(days=1)).isoformat()
    error = assert_error(
        acme_admin_api.post("/api/v1/api-keys", {"name": "x", "scopes": ["read"], "expires_at": past}), 400
    )
    assert "future" in error["message"]


@pytest.mark.django_db
def test_a_key_may_hold_a_scope_a_tool_requires_and_nothing_made_up(acme_admin_api: ApiClient, cast: Cast) -> None:
    from agents.models import AgentVersion, Run, Tool
    from agents.tools import permission_error

    # The demo refund tool requires `orders:refund`: a runs key may be allowed it without `admin`.
    created = acme_admin_api.post("/api/v1/api-keys", {"name": "refunds", "scopes": ["runs:write", "orders:refund"]})
    assert created.status_code == 201, created.content
    assert created.json()["scopes"] == ["runs:write", "orders:refund"]
    error = assert_error(acme_admin_api.post("/api/v1/api-keys", {"name": "x", "scopes": ["orders:nuke"]}), 400)
    assert "orders:nuke" in error["fields"]["scopes"][0] and "orders:refund" in error["fields"]["scopes"][0]

    # The engine lets a run started with that key call the tool, and refuses one without it.
    refund = Tool.objects.for_tenant(cast.acme).get(name="refund_order")
    version = AgentVersion.objects.for_tenant(cast.acme).get(agent__name="Support agent", number=1)
    without, _ = make_key(cast.acme, "runs:write")
    answers = {
        key.name: permission_error(
            run=Run(tenant=cast.acme, agent=version.agent, agent_version=version, api_key=key),
            version=version,
            tool=refund,
            granted={refund.pk},
        )
        for key in (ApiKey.objects.get(pk=created.json()["id"]), without)
    }
    assert answers["refunds"] == ""
    assert "the API key that started this run lacks" in answers[without.name]


@pytest.mark.django_db
def test_a_revoked_key_is_refused_at_once(acme_admin_api: ApiClient, client: Client, cast: Cast) -> None:
    key, plaintext = make_key(cast.acme, "read")
    response = acme_admin_api.post(f"/api/v1/api-keys/{key.pk}/revoke")
    assert response.status_code == 200 and response.json()["revoked_at"]
    assert_error(ApiClient(client, plaintext).get("/api/v1/me"), 401, "api_key_revoked")


@pytest.mark.django_db
def test_the_audit_log_filters_by_actor_and_action(acme_admin_api: ApiClient, cast: Cast) -> None:
    acme_admin_api.post("/api/v1/api-keys", {"name": "ci", "scopes": ["read"]})
    vera = cast.membership(cast.vera)
    acme_admin_api.patch(f"/api/v1/members/{vera.pk}", {"role": "reviewer"})
    actions = [e["action"] for e in acme_admin_api.get("/api/v1/audit-events?action=member.").json()["results"]]
    assert actions == ["member.role_change"]
    everything = acme_admin_api.get("/api/v1/audit-events?actor=test key").json()["results"]
    assert {e["action"] for e in everything} == {"api_key.create", "member.role_change"}


@pytest.mark.django_db
def test_lists_are_cursor_paginated(acme_admin_api: ApiClient, cast: Cast) -> None:
    for i in range(5):
        make_key(cast.acme, "read", name=f"k{i}")
    first = acme_admin_api.get("/api/v1/api-keys?page_size=2").json()
    assert len(first["results"]) == 2 and "cursor=" in first["next"]
    second = acme_admin_api.get(first["next"].split("testserver")[1]).json()
    assert {k["id"] for k in first["results"]}.isdisjoint({k["id"] for k in second["results"]})


# --- The error contract ------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_error_has_the_same_shape(acme_admin_api: ApiClient, client: Client) -> None:
    assert_error(acme_admin_api.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_error(acme_admin_api.request("put", "/api/v1/me"), 405, "method_not_allowed")
    response = client.post(
        "/api/v1/members",
        data="email=x",
        content_type="text/plain",
        headers={"Authorization": f"Bearer {acme_admin_api.key}"},
    )
    assert_error(response, 415, "unsupported_media_type")
    response = client.post(
        "/api/v1/members",
        data="{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {acme_admin_api.key}"},
    )
    assert_error(response, 400, "parse_error")
    assert_error(acme_admin_api.get("/api/v1/members/not-a-uuid"), 404, "not_found")


@pytest.mark.django_db
def test_it_throttles_per_key(acme_admin_api: ApiClient, api: Callable[..., ApiClient], settings: Any) -> None:
    from rest_framework.settings import api_settings

    from tenants.throttling import ApiKeyRateThrottle

    rates: dict[str, Any] = {**api_settings.DEFAULT_THROTTLE_RATES, "api_key": "3/min"}
    original = ApiKeyRateThrottle.THROTTLE_RATES
    ApiKeyRateThrottle.THROTTLE_RATES = rates
    try:
        for _ in range(3):
            assert acme_admin_api.get("/api/v1/me").status_code == 200
        error = assert_error(acme_admin_api.get("/api/v1/me"), 429, "throttled")
        assert error["retry_after"] > 0
        # Another key has its own allowance.
        assert api("read").get("/api/v1/me").status_code == 200
    finally:
        ApiKeyRateThrottle.THROTTLE_RATES = original


@pytest.mark.django_db
def test_the_schema_declares_the_bearer_scheme(client: Client) -> None:
    response = client.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values()), schemes
    assert {"/api/v1/me/", "/api/v1/members/", "/api/v1/api-keys/"} <= set(schema["paths"])
    # The approvals long-poll is a plain async view, added by a postprocessing hook.
    long_poll = schema["paths"]["/api/v1/approvals/{id}/"]["get"]
    assert [p["name"] for p in long_poll["parameters"]] == ["id", "wait"]
    assert long_poll["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Approval")


def test_the_schema_generates_without_warnings_or_errors() -> None:
    """Every endpoint's request and response types resolve (no "defaulting to string"), and every
    enum has a stable name: what client generators read."""
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert schema["paths"]
    assert not GENERATOR_STATS, (dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache))


@pytest.mark.django_db
def test_the_docs_load_their_assets_locally(client: Client) -> None:
    html = client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in html
    for marker in ("cdn.", "unpkg", "jsdelivr", "googleapis"):
        assert marker not in html
