"""Browser journeys in real Chromium against the full ASGI app (pages, htmx, websocket)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.urls import reverse

from tenants.models import ApiKey, Membership, Role
from tenants.testing import Cast

pytestmark = pytest.mark.browser


def sign_in(page: Any, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("demo-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/t/[a-z-]+/$|/tenants/$"))


def test_alice_creates_a_key_sees_it_once_and_the_dashboard_updates_live(
    page_for: Callable[[], Any], cast: Cast, live_asgi: str
) -> None:
    dashboard = page_for()
    sign_in(dashboard, "alice@acme.test")
    assert dashboard.url.endswith("/t/acme/")
    dashboard.wait_for_selector('#live-status[data-state="open"]')
    assert dashboard.get_by_test_id("key-count").inner_text() == "0"

    keys = dashboard.context.new_page()
    keys.goto("/t/acme/api-keys/")
    keys.get_by_label("Name").fill("deploy bot")
    keys.get_by_label("runs:write: start and cancel runs").check()
    keys.get_by_role("button", name="Create key").click()
    revealed = keys.get_by_test_id("new-key")
    revealed.wait_for()
    plaintext = revealed.input_value()
    assert plaintext.startswith("aoc_")

    # The key works, with exactly the scopes chosen.
    me = httpx.get(f"{live_asgi}/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
    assert me.status_code == 200 and me.json()["scopes"] == ["runs:write"]

    # Shown once: a reload lists the key by prefix only.
    keys.reload()
    assert keys.locator('tr[data-key="deploy bot"]').count() == 1
    assert plaintext not in keys.content()
    assert keys.get_by_test_id("new-key").count() == 0

    # The dashboard, untouched, counted the new key over the websocket.
    dashboard.wait_for_function("document.querySelector('[data-testid=key-count]').textContent === '1'")
    assert "api_key.create" in dashboard.locator("#dashboard-activity").inner_text()

    # Revoking (with the confirmation dialog) refuses the key at once.
    keys.once("dialog", lambda dialog: dialog.accept())
    keys.locator('tr[data-key="deploy bot"]').get_by_role("button", name="Revoke").click()
    keys.locator('tr[data-key="deploy bot"]', has_text="revoked").wait_for()
    assert httpx.get(f"{live_asgi}/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"}).status_code == 401
    dashboard.wait_for_function("document.querySelector('[data-testid=key-count]').textContent === '0'")


def test_alice_manages_members_with_htmx(page_for: Callable[[], Any], cast: Cast) -> None:
    page = page_for()
    sign_in(page, "alice@acme.test")
    page.get_by_role("link", name="Members").click()
    page.get_by_label("Email").fill("dana@example.test")
    page.locator("#invite-form select[name=role]").select_option("reviewer")
    page.get_by_role("button", name="Invite").click()
    page.get_by_test_id("invite-link").wait_for()
    assert "/invitations/" in page.get_by_label("Invitation link").input_value()
    assert page.locator('tr[data-invitation="dana@example.test"]').count() == 1

    row = page.locator('tr[data-member="vera@acme.test"]')
    row.get_by_label("Role of vera@acme.test").select_option("reviewer")
    row.get_by_role("button", name="Change").click()
    page.get_by_text("vera@acme.test is now reviewer").wait_for()
    assert Membership.objects.get(user=cast.vera, tenant=cast.acme).role == Role.REVIEWER

    # The last admin is protected, and the page says so.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('tr[data-member="alice@acme.test"]').get_by_role("button", name="Remove").click()
    page.get_by_text("is the last admin of Acme").wait_for()


def test_charlie_cannot_reach_any_of_acmes_urls(page_for: Callable[[], Any], cast: Cast) -> None:
    page = page_for()
    sign_in(page, "charlie@globex.test")
    assert page.url.endswith("/t/globex/")
    key = ApiKey.objects.create(tenant=cast.acme, name="acme key", prefix="abcdef123456", secret_hash="0" * 64)
    vera = Membership.objects.get(user=cast.vera, tenant=cast.acme)
    urls = [
        reverse(name, args=["acme"])
        for name in ("console:dashboard", "console:members", "console:api_keys", "console:audit")
    ]
    for url in urls:
        response = page.goto(url)
        assert response.status == 404, url
        assert "Acme" not in page.locator("main").inner_text()
    # Posting to Acme's objects, under either tenant's URL, is the same 404.
    for url in (
        reverse("console:member_remove", args=["acme", vera.pk]),
        reverse("console:member_remove", args=["globex", vera.pk]),
        reverse("console:api_key_revoke", args=["acme", key.pk]),
        reverse("console:api_key_revoke", args=["globex", key.pk]),
    ):
        token = page.context.cookies()
        csrf = next(c["value"] for c in token if c["name"] == "csrftoken")
        response = page.request.post(url, headers={"X-CSRFToken": csrf})
        assert response.status == 404, url
    assert Membership.objects.filter(pk=vera.pk).exists()
    assert not ApiKey.objects.get(pk=key.pk).is_revoked
    # And the tenant switcher does not list Acme.
    assert "Acme" not in page.locator("#tenant-switcher").inner_text()


def test_the_api_docs_render_offline_under_the_content_security_policy(page_for: Callable[[], Any]) -> None:
    page = page_for()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/api/v1/docs/")
    page.locator(".swagger-ui .opblock").first.wait_for()
    assert page.get_by_text("/api/v1/me").count() >= 1
    assert all(url.startswith(page.url.split("/api/")[0]) for url in requested), requested
