"""API-key authentication: `Authorization: Bearer aoc_<prefix>_<secret>`."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from tenants import cache as config_cache
from tenants import rls
from tenants.errors import TenantSuspendedError
from tenants.models import API_KEY_PREFIX, ApiKey, Tenant
from tenants.services import api_key_touch


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """What `request.user` is for an API request: the key, never a console user."""

    api_key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True
    is_staff: bool = False

    @property
    def pk(self) -> Any:
        return self.api_key.pk

    def __str__(self) -> str:
        return f"API key {self.api_key.name}"


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use `Bearer <api key>`.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The API key contains invalid characters.") from exc
        key = authenticate_key(raw)
        request.tenant = key.tenant  # type: ignore[attr-defined]
        return ApiKeyPrincipal(api_key=key), key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


def authenticate_key(raw: str) -> ApiKey:
    """The usable key for `raw`, or AuthenticationFailed (401) saying why; 403 for a suspended tenant.

    Cost: the key joined to its tenant from the configuration cache (tenants.cache: one Redis GET,
    or one indexed SELECT after a change), plus one UPDATE at most once a minute. The secret,
    revocation, expiry and the tenant's status are checked on every call.

    The key is looked up across tenants (its tenant is not known yet); a usable key's tenant becomes
    the tenant of the enclosing request for row-level security (tenants.rls.enter_tenant).
    """
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise exceptions.AuthenticationFailed("Invalid API key.")
    prefix = parts[1]
    with rls.across_tenants("API key lookup"):
        key = config_cache.cached(
            "api_key", prefix, lambda: ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
        )
    if key is None or not hmac.compare_digest(key.secret_hash, ApiKey.hash_secret(parts[2])):
        raise exceptions.AuthenticationFailed("Invalid API key.")
    if key.is_revoked:
        raise exceptions.AuthenticationFailed("This API key has been revoked.", code="api_key_revoked")
    if key.is_expired:
        raise exceptions.AuthenticationFailed("This API key has expired.", code="api_key_expired")
    if key.tenant.status != Tenant.Status.ACTIVE:
        raise TenantSuspendedError(f"Tenant {key.tenant.slug} is suspended; its API keys are refused.")
    rls.enter_tenant(key.tenant_id)
    api_key_touch(api_key=key)
    return key


def known_key(raw: str) -> ApiKey | None:
    """The key `raw` names as this process last loaded it (tenants.cache.peek, at whatever
    version), if `raw` carries its secret; else None. A guess: nothing is authorised on it (the
    caller still calls `authenticate_key`), it only lets the key's rate-limit count ride along
    with the configuration version's read (gateway.calls). Checking the secret first keeps anyone
    who knows only a key's prefix from spending its allowance."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    key = config_cache.peek("api_key", parts[1])
    if not isinstance(key, ApiKey) or not hmac.compare_digest(key.secret_hash, ApiKey.hash_secret(parts[2])):
        return None
    return key


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Declares the bearer scheme in the OpenAPI document."""

    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "aoc_<prefix>_<secret>",
            "description": "An API key created in the console or with `manage.py apikey create`.",
        }
