"""Test support shared by every app: the cast, API clients, and the contract mixins that make
each page and endpoint prove isolation (404 for another tenant), roles or scopes (403) and
authentication (401 / login redirect).

A test class for a console page:

    class TestMembersPage(ConsolePageContract):
        url_name = "console:members"
        role = Role.VIEWER            # the weakest role allowed

        def url(self, cast, slug="acme"):
            return reverse(self.url_name, args=[slug])

A test class for an API endpoint:

    class TestMembersList(ApiContract):
        url_name = "member-list"
        scope = Scope.ADMIN           # None: any valid key

        def path(self, cast):
            return reverse(self.url_name)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from django.test import Client
from django.urls import reverse

from tenants import services
from tenants.audit import Actor
from tenants.models import ApiKey, Membership, Role, Scope, Tenant, User

ROLES_WEAK_TO_STRONG = [Role.VIEWER, Role.REVIEWER, Role.ADMIN]


@dataclass
class Cast:
    """alice (admin), bob (reviewer), vera (viewer) in Acme; charlie (admin) in Globex; staff."""

    acme: Tenant
    globex: Tenant
    alice: User
    bob: User
    vera: User
    charlie: User
    staff: User

    def user_with_role(self, role: Role) -> User:
        return {Role.ADMIN: self.alice, Role.REVIEWER: self.bob, Role.VIEWER: self.vera}[role]

    def membership(self, user: User, tenant: Tenant | None = None) -> Membership:
        return Membership.objects.for_tenant(tenant or self.acme).get(user=user)


def make_key(tenant: Tenant, scopes: str | list[str], name: str = "test key") -> tuple[ApiKey, str]:
    return services.api_key_create(actor=Actor.system_actor("tests"), tenant=tenant, name=name, scopes=scopes)


class ApiClient:
    """A JSON client for /api/v1 that sends a bearer key."""

    def __init__(self, client: Client, key: str | None) -> None:
        self.client = client
        self.key = key

    def request(self, method: str, path: str, body: Any = None, **extra: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        headers.update(extra.pop("headers", {}))
        kwargs: dict[str, Any] = {"headers": headers, **extra}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["content_type"] = "application/json"
        return getattr(self.client, method.lower())(path, **kwargs)

    def get(self, path: str, **extra: Any) -> Any:
        return self.request("get", path, **extra)

    def post(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self.request("post", path, body, **extra)

    def patch(self, path: str, body: Any = None, **extra: Any) -> Any:
        return self.request("patch", path, body, **extra)

    def delete(self, path: str, **extra: Any) -> Any:
        return self.request("delete", path, **extra)


def assert_error(response: Any, status: int, type_: str | None = None) -> dict[str, Any]:
    """The response has `status` and the API's error shape (and, given, that error type)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if type_ is not None:
        assert body["error"]["type"] == type_, body
    return body["error"]


class ConsolePageContract:
    """Every console page under /t/<slug>/ proves: login required, 404 for another tenant's
    member, 403 for a role below `role`, and success for `role` itself."""

    url_name: ClassVar[str]
    role: ClassVar[Role] = Role.VIEWER
    method: ClassVar[str] = "get"
    # True when the URL names an object of Acme: charlie must get 404 for it under /t/globex/ too.
    object_scoped: ClassVar[bool] = False
    ok_statuses: ClassVar[tuple[int, ...]] = (200, 201, 302)

    def url(self, cast: Cast, slug: str = "acme") -> str:
        raise NotImplementedError

    def data(self, cast: Cast) -> dict[str, Any]:
        return {}

    def _call(self, client: Client, url: str, cast: Cast) -> Any:
        if self.method == "get":
            return client.get(url)
        return client.post(url, self.data(cast))

    @pytest.mark.django_db
    def test_it_requires_login(self, client: Client, cast: Cast) -> None:
        response = self._call(client, self.url(cast), cast)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("console:login"))

    @pytest.mark.django_db
    def test_it_checks_tenant(self, client: Client, cast: Cast) -> None:
        client.force_login(cast.charlie)
        assert self._call(client, self.url(cast), cast).status_code == 404
        if self.object_scoped:
            assert self._call(client, self.url(cast, slug="globex"), cast).status_code == 404

    @pytest.mark.django_db
    def test_it_requires_role(self, client: Client, cast: Cast) -> None:
        weaker = ROLES_WEAK_TO_STRONG[: ROLES_WEAK_TO_STRONG.index(self.role)]
        for role in weaker:
            client.force_login(cast.user_with_role(role))
            response = self._call(client, self.url(cast), cast)
            assert response.status_code == 403, f"{role} got {response.status_code}"
        client.force_login(cast.user_with_role(self.role))
        response = self._call(client, self.url(cast), cast)
        assert response.status_code in self.ok_statuses, f"{self.role} got {response.status_code}"


class ApiContract:
    """Every API endpoint proves: 401 without a key, 403 for a key without `scope`, and tenant
    isolation (404 for another tenant's object; another tenant's list shows none of Acme)."""

    url_name: ClassVar[str]
    scope: ClassVar[str | None] = Scope.ADMIN
    method: ClassVar[str] = "get"
    object_scoped: ClassVar[bool] = False
    ok_statuses: ClassVar[tuple[int, ...]] = (200, 201, 202, 204)

    def path(self, cast: Cast) -> str:
        raise NotImplementedError

    def body(self, cast: Cast) -> Any:
        return None

    def _call(self, client: Client, key: str | None, cast: Cast) -> Any:
        api = ApiClient(client, key)
        if self.method in {"get", "delete"}:
            return api.request(self.method, self.path(cast))
        return api.request(self.method, self.path(cast), self.body(cast) or {})

    @pytest.mark.django_db
    def test_it_requires_credentials(self, client: Client, cast: Cast) -> None:
        assert_error(self._call(client, None, cast), 401, "not_authenticated")
        assert_error(self._call(client, "aoc_nothing_here", cast), 401, "authentication_failed")

    @pytest.mark.django_db
    def test_it_requires_role(self, client: Client, cast: Cast) -> None:
        """A key whose scopes do not include the one this call needs gets 403."""
        if self.scope is None:
            _, weakest = make_key(cast.acme, [Scope.TRACES_WRITE])
            assert self._call(client, weakest, cast).status_code in self.ok_statuses
            return
        other = next(s for s in (Scope.READ, Scope.TRACES_WRITE) if s != self.scope)
        _, key = make_key(cast.acme, [other])
        error = assert_error(self._call(client, key, cast), 403, "permission_denied")
        assert str(self.scope) in error["message"]
        _, allowed = make_key(cast.acme, [self.scope])
        assert self._call(client, allowed, cast).status_code in self.ok_statuses

    @pytest.mark.django_db
    def test_it_checks_tenant(self, client: Client, cast: Cast) -> None:
        _, globex_key = make_key(cast.globex, [Scope.ADMIN])
        response = self._call(client, globex_key, cast)
        if self.object_scoped:
            assert_error(response, 404, "not_found")
        else:
            assert response.status_code in self.ok_statuses
            body = response.content.decode()
            assert str(cast.acme.pk) not in body and "@acme.test" not in body


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= all_subclasses(sub)
    return found


def version_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets an item for every read of the configuration version from here on
    (tenants.cache._read_version, which still answers): for tests of how often a path pays that
    Redis GET."""
    from tenants import cache as config_cache

    reads: list[int] = []
    real = config_cache._read_version

    def counted(along: Any = None) -> tuple[int | None, list[Any]]:
        reads.append(1)
        return real(along)

    monkeypatch.setattr(config_cache, "_read_version", counted)
    return reads
