"""Fixtures shared by every app's tests: the cast and API clients. See tenants/testing.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from tenants.demo import seed_demo
from tenants.models import Scope, User
from tenants.testing import ApiClient, Cast, make_key


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    """Argon2 is the production hasher (see test_it_hashes_passwords_with_argon2); tests need speed."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def cast(db: None) -> Cast:
    tenants = seed_demo()
    users = {u.email.split("@")[0]: u for u in User.objects.all()}
    return Cast(
        acme=tenants["acme"],
        globex=tenants["globex"],
        alice=users["alice"],
        bob=users["bob"],
        vera=users["vera"],
        charlie=users["charlie"],
        staff=users["staff"],
    )


@pytest.fixture
def api(client: Client, cast: Cast) -> Callable[..., ApiClient]:
    """api(scopes="admin", tenant=cast.acme) -> a client holding a fresh key."""

    def make(scopes: str | list[str] = Scope.ADMIN, tenant=None) -> ApiClient:  # type: ignore[no-untyped-def]
        _, plaintext = make_key(tenant or cast.acme, scopes)
        return ApiClient(client, plaintext)

    return make


@pytest.fixture
def acme_admin_api(api: Callable[..., ApiClient]) -> ApiClient:
    return api(Scope.ADMIN)


@pytest.fixture
def alice_client(client: Client, cast: Cast) -> Client:
    client.force_login(cast.alice)
    return client

