"""Console pages: every page's contract (login, tenant, role) and what each page does."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from tenants.models import ApiKey, AuditEvent, Invitation, Membership, Role, Tenant
from tenants.testing import Cast, ConsolePageContract, make_key

HTMX = {"HX-Request": "true"}

# --- Contracts ---------------------------------------------------------------------------------


class TestDashboardPage(ConsolePageContract):
    url_name = "console:dashboard"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestMembersPage(ConsolePageContract):
    url_name = "console:members"

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestMemberInvite(ConsolePageContract):
    url_name = "console:members"
    method = "post"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"email": "newcomer@example.test", "role": "viewer"}


class TestMemberRoleChange(ConsolePageContract):
    url_name = "console:member_role"
    method = "post"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, cast.membership(cast.vera).pk])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"role": "reviewer"}


class TestMemberRemove(ConsolePageContract):
    url_name = "console:member_remove"
    method = "post"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug, cast.membership(cast.vera).pk])


class TestInvitationRevoke(ConsolePageContract):
    url_name = "console:invitation_revoke"
    method = "post"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        invitation = Invitation.objects.filter(tenant=cast.acme).first()
        if invitation is None:
            invitation = Invitation.objects.create(
                tenant=cast.acme, email="x@example.test", token_hash="t" * 64, expires_at=Invitation.default_expiry()
            )
        return reverse(self.url_name, args=[slug, invitation.pk])


class TestApiKeysPage(ConsolePageContract):
    url_name = "console:api_keys"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


class TestApiKeyCreate(ConsolePageContract):
    url_name = "console:api_keys"
    method = "post"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])

    def data(self, cast: Cast) -> dict[str, Any]:
        return {"name": "ci", "scopes": ["runs:write"]}


class TestApiKeyRevoke(ConsolePageContract):
    url_name = "console:api_key_revoke"
    method = "post"
    role = Role.ADMIN
    object_scoped = True

    def url(self, cast: Cast, slug: str = "acme") -> str:
        key = ApiKey.objects.filter(tenant=cast.acme).first() or make_key(cast.acme, "read")[0]
        return reverse(self.url_name, args=[slug, key.pk])


class TestAuditPage(ConsolePageContract):
    url_name = "console:audit"
    role = Role.ADMIN

    def url(self, cast: Cast, slug: str = "acme") -> str:
        return reverse(self.url_name, args=[slug])


# --- Sign-in, switcher, suspension -------------------------------------------------------------


@pytest.mark.django_db
def test_a_member_signs_in_with_email_and_lands_on_their_tenant(client: Client, cast: Cast) -> None:
    response = client.post(reverse("console:login"), {"username": "vera@acme.test", "password": "demo-password-1"})
    assert response.status_code == 302
    response = client.get(response["Location"], follow=True)
    assert response.redirect_chain[-1][0] == reverse("console:dashboard", args=["acme"])


@pytest.mark.django_db
def test_a_wrong_password_is_refused_with_a_message(client: Client, cast: Cast) -> None:
    response = client.post(reverse("console:login"), {"username": "vera@acme.test", "password": "nope"})
    assert response.status_code == 200
    assert "correct email and password" in response.content.decode()


@pytest.mark.django_db
def test_it_locks_out_after_repeated_failures(client: Client, cast: Cast, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("console:login"), {"username": "bob@acme.test", "password": "wrong"})
    response = client.post(reverse("console:login"), {"username": "bob@acme.test", "password": "demo-password-1"})
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()


@pytest.mark.django_db
def test_a_member_of_two_tenants_gets_the_switcher(client: Client, cast: Cast) -> None:
    Membership.objects.create(tenant=cast.globex, user=cast.bob, role=Role.VIEWER)
    client.force_login(cast.bob)
    assert client.get(reverse("console:home"))["Location"] == reverse("console:tenants")
    html = client.get(reverse("console:tenants")).content.decode()
    assert reverse("console:dashboard", args=["acme"]) in html
    assert reverse("console:dashboard", args=["globex"]) in html


@pytest.mark.django_db
def test_a_suspended_tenant_refuses_its_members_with_a_reason(client: Client, cast: Cast) -> None:
    Tenant.objects.filter(pk=cast.acme.pk).update(status=Tenant.Status.SUSPENDED)
    client.force_login(cast.alice)
    response = client.get(reverse("console:dashboard", args=["acme"]))
    assert response.status_code == 403
    assert "Acme is suspended" in response.content.decode()


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy(alice_client: Client) -> None:
    response = alice_client.get(reverse("console:dashboard", args=["acme"]))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy and "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


# --- Dashboard ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_dashboard_counts_members_and_keys(alice_client: Client, cast: Cast) -> None:
    make_key(cast.acme, "read")
    response = alice_client.get(reverse("console:dashboard", args=["acme"]))
    html = response.content.decode()
    assert 'data-testid="member-count">3<' in html
    assert 'data-testid="key-count">1<' in html
    assert 'ws-connect="/ws/t/acme/live/?page=dashboard"' in html


@pytest.mark.django_db
def test_the_dashboard_hides_the_audit_feed_from_viewers(client: Client, cast: Cast) -> None:
    client.force_login(cast.vera)
    html = client.get(reverse("console:dashboard", args=["acme"])).content.decode()
    assert "Recent activity" not in html


@pytest.mark.django_db
def test_list_pages_take_a_fixed_number_of_queries(
    alice_client: Client, cast: Cast, django_assert_max_num_queries: Any
) -> None:
    for i in range(15):
        make_key(cast.acme, "read", name=f"key {i}")
        Membership.objects.create(
            tenant=cast.acme,
            user=type(cast.alice).objects.create_user(f"m{i}@example.test", "x"),
            role=Role.VIEWER,
        )
    for name in ("console:members", "console:api_keys", "console:audit"):
        with django_assert_max_num_queries(12):
            assert alice_client.get(reverse(name, args=["acme"])).status_code == 200
    # The dashboard adds today's operations: runs, approvals, guardrail blocks, budgets (two), evals.
    with django_assert_max_num_queries(13):
        assert alice_client.get(reverse("console:dashboard", args=["acme"])).status_code == 200


# --- Members -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_invites_by_email(alice_client: Client, cast: Cast, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            reverse("console:members", args=["acme"]), {"email": "dana@example.test", "role": "reviewer"}, headers=HTMX
        )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Invitation sent to dana@example.test" in html
    assert 'data-testid="invite-link"' in html
    assert mail.outbox[-1].to == ["dana@example.test"]
    invitation = Invitation.objects.get(email="dana@example.test")
    assert invitation.role == Role.REVIEWER and invitation.tenant == cast.acme


@pytest.mark.django_db
def test_an_invitee_creates_an_account_and_joins(
    alice_client: Client, client: Client, cast: Cast, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(reverse("console:members", args=["acme"]), {"email": "dana@example.test", "role": "reviewer"})
    link = next(line for line in mail.outbox[-1].body.splitlines() if "/invitations/" in line).split("Accept: ")[1]
    path = "/" + link.split("/", 3)[3]
    visitor = Client()
    assert "Join Acme" in visitor.get(path).content.decode()
    weak = visitor.post(path, {"name": "Dana", "password": "short", "password_again": "short"})
    assert weak.status_code == 400 and "too short" in weak.content.decode()
    response = visitor.post(
        path, {"name": "Dana", "password": "a-long-passphrase-1", "password_again": "a-long-passphrase-1"}
    )
    assert response.status_code == 302
    membership = Membership.objects.get(tenant=cast.acme, user__email="dana@example.test")
    assert membership.role == Role.REVIEWER
    assert visitor.get(path).status_code == 404  # used


@pytest.mark.django_db
def test_a_form_error_is_shown_and_nothing_changes(alice_client: Client, cast: Cast) -> None:
    response = alice_client.post(reverse("console:members", args=["acme"]), {"email": "not an email"}, headers=HTMX)
    assert response.status_code == 400
    assert "Enter a valid email address" in response.content.decode()
    assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_an_admin_changes_a_role(alice_client: Client, cast: Cast) -> None:
    vera = cast.membership(cast.vera)
    response = alice_client.post(
        reverse("console:member_role", args=["acme", vera.pk]), {"role": "reviewer"}, headers=HTMX
    )
    assert response.status_code == 200
    assert "vera@acme.test is now reviewer" in response.content.decode()
    vera.refresh_from_db()
    assert vera.role == Role.REVIEWER


@pytest.mark.django_db
def test_the_last_admin_cannot_be_removed_or_demoted(alice_client: Client, cast: Cast) -> None:
    alice = cast.membership(cast.alice)
    response = alice_client.post(reverse("console:member_remove", args=["acme", alice.pk]), headers=HTMX)
    assert response.status_code == 409
    assert "last admin" in response.content.decode()
    response = alice_client.post(
        reverse("console:member_role", args=["acme", alice.pk]), {"role": "viewer"}, headers=HTMX
    )
    assert response.status_code == 409
    assert Membership.objects.get(pk=alice.pk).role == Role.ADMIN


@pytest.mark.django_db
def test_removing_a_member_without_javascript_redirects_back(alice_client: Client, cast: Cast) -> None:
    vera = cast.membership(cast.vera)
    response = alice_client.post(reverse("console:member_remove", args=["acme", vera.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("console:members", args=["acme"])
    assert not Membership.objects.filter(pk=vera.pk).exists()
    assert AuditEvent.objects.filter(tenant=cast.acme, action="member.remove", target_label="vera@acme.test").exists()


# --- API keys ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_key_is_revealed_once(alice_client: Client, cast: Cast) -> None:
    response = alice_client.post(
        reverse("console:api_keys", args=["acme"]), {"name": "ci", "scopes": ["runs:write", "traces:write"]}
    )
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    key = ApiKey.objects.get(name="ci")
    start = html.index('data-testid="new-key"')
    plaintext = html[html.rindex('value="', 0, start) + 7 : html.index('"', html.rindex('value="', 0, start) + 7)]
    assert plaintext.startswith(f"aoc_{key.prefix}_")
    assert key.secret_hash == ApiKey.hash_secret(plaintext.split("_", 2)[2])
    again = alice_client.get(reverse("console:api_keys", args=["acme"])).content.decode()
    assert plaintext not in again and key.display_prefix in again


@pytest.mark.django_db
def test_a_key_gets_a_token_cap_that_the_list_shows(alice_client: Client, cast: Cast) -> None:
    url = reverse("console:api_keys", args=["acme"])
    bad = alice_client.post(url, {"name": "capped", "scopes": ["read"], "max_tokens_per_request": "0"}, headers=HTMX)
    assert bad.status_code == 400 and not ApiKey.objects.exists()
    response = alice_client.post(url, {"name": "capped", "scopes": ["read"], "max_tokens_per_request": "4000"})
    assert response.status_code == 201
    assert ApiKey.objects.get(name="capped").max_tokens_per_request == 4000
    assert 'data-testid="token-cap">4000<' in alice_client.get(url).content.decode()


@pytest.mark.django_db
def test_the_key_form_offers_the_scopes_the_tenants_tools_require(alice_client: Client, cast: Cast) -> None:
    url = reverse("console:api_keys", args=["acme"])
    page = alice_client.get(url).content.decode()
    assert 'value="orders:refund"' in page and "orders:refund: call the tools that require it" in page
    response = alice_client.post(url, {"name": "refunds", "scopes": ["runs:write", "orders:refund"]})
    assert response.status_code == 201
    assert ApiKey.objects.get(name="refunds").scopes == ["runs:write", "orders:refund"]
    refused = alice_client.post(url, {"name": "nuke", "scopes": ["orders:nuke"]}, headers=HTMX)
    assert refused.status_code == 400 and "orders:nuke" in refused.content.decode()
    assert not ApiKey.objects.filter(name="nuke").exists()


@pytest.mark.django_db
def test_a_key_needs_a_scope(alice_client: Client) -> None:
    response = alice_client.post(reverse("console:api_keys", args=["acme"]), {"name": "ci"}, headers=HTMX)
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_an_admin_revokes_a_key(alice_client: Client, cast: Cast) -> None:
    key, _ = make_key(cast.acme, "read")
    response = alice_client.post(reverse("console:api_key_revoke", args=["acme", key.pk]), headers=HTMX)
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.is_revoked
    assert "revoked" in response.content.decode()


# --- Audit log ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_audit_log_filters_by_actor_action_and_time(alice_client: Client, cast: Cast) -> None:
    make_key(cast.acme, "read")
    alice_client.post(
        reverse("console:member_role", args=["acme", cast.membership(cast.vera).pk]), {"role": "reviewer"}
    )
    url = reverse("console:audit", args=["acme"])
    html = alice_client.get(url, {"action": "member.role_change"}).content.decode()
    assert 'data-action="member.role_change"' in html and 'data-action="api_key.create"' not in html
    html = alice_client.get(url, {"actor": "alice"}).content.decode()
    assert 'data-action="member.role_change"' in html and 'data-action="api_key.create"' not in html
    html = alice_client.get(url, {"since": "2999-01-01T00:00"}).content.decode()
    assert "No events match" in html
    bad = alice_client.get(url, {"since": "2030-01-02T00:00", "until": "2030-01-01T00:00"}, headers=HTMX)
    assert bad.status_code == 400 and "must be before" in bad.content.decode()


@pytest.mark.django_db
def test_the_audit_log_escapes_what_it_shows(alice_client: Client, cast: Cast) -> None:
    make_key(cast.acme, "read", name="<script>alert(1)</script>")
    html = alice_client.get(reverse("console:audit", args=["acme"])).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- Platform staff ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_platform_pages_are_for_staff_only(client: Client, cast: Cast) -> None:
    url = reverse("console:platform_tenants")
    assert client.get(url).status_code == 302
    client.force_login(cast.alice)
    assert client.get(url).status_code == 403
    assert (
        client.post(
            reverse("console:platform_tenant_status", args=[cast.globex.pk]), {"status": "suspended"}
        ).status_code
        == 403
    )
    assert Tenant.objects.get(pk=cast.globex.pk).is_active
    client.force_login(cast.staff)
    response = client.get(url)
    assert response.status_code == 200
    # Each tenant with its member count: a read across tenants, which row-level security (when
    # TENANT_RLS is on) answers only inside across_tenants().
    counts = {tenant.slug: tenant.member_count for tenant in response.context["tenants"]}
    assert counts["acme"] == Membership.objects.filter(tenant=cast.acme).count() > 0


@pytest.mark.django_db
def test_staff_create_a_tenant_with_its_first_admin(
    client: Client, cast: Cast, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(cast.staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("console:platform_tenants"),
            {"name": "Initech", "slug": "", "timezone": "Europe/Berlin", "admin_email": "peter@initech.test"},
            headers=HTMX,
        )
    assert response.status_code == 201
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.timezone == "Europe/Berlin"
    assert Invitation.objects.get(tenant=tenant).role == Role.ADMIN
    assert mail.outbox[-1].to == ["peter@initech.test"]
    duplicate = client.post(reverse("console:platform_tenants"), {"name": "Initech", "timezone": "UTC"}, headers=HTMX)
    assert duplicate.status_code == 409 and "already taken" in duplicate.content.decode()  # a conflict: 409


@pytest.mark.django_db
def test_staff_suspend_and_reactivate_a_tenant(client: Client, cast: Cast) -> None:
    client.force_login(cast.staff)
    url = reverse("console:platform_tenant_status", args=[cast.globex.pk])
    client.post(url, {"status": "suspended"})
    assert Tenant.objects.get(pk=cast.globex.pk).status == Tenant.Status.SUSPENDED
    client.post(url, {"status": "active"})
    assert Tenant.objects.get(pk=cast.globex.pk).is_active
    actions = list(AuditEvent.objects.filter(tenant=cast.globex).values_list("action", flat=True))
    assert {"tenant.suspend", "tenant.reactivate"} <= set(actions)


# --- Errors ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_pages_get_an_html_404(alice_client: Client) -> None:
    response = alice_client.get("/t/acme/nowhere/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


# --- Health ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_answers_ok_when_the_database_and_redis_do(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "redis": True}


@pytest.mark.django_db
def test_health_answers_503_when_the_database_is_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import OperationalError, connection

    def refuse() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] is False


def test_pages_under_debug_load_htmx_without_the_debug_error_handler(alice_client: Client, settings: Any) -> None:
    # django-htmx's debug script writes every 4xx/5xx htmx response over the whole document, so a
    # form's 400 would replace the page it belongs to (issue 19).
    settings.DEBUG = True
    page = alice_client.get(reverse("console:dashboard", args=["acme"])).content.decode()
    assert "django_htmx/htmx-2.min.js" in page
    assert "django-htmx.js" not in page
