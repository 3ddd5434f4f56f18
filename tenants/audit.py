"""Who did something: the actor every service records in the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

if TYPE_CHECKING:
    from tenants.models import ApiKey, User


@dataclass(frozen=True)
class Actor:
    """A signed-in user or an API key (or the system itself), with the request's IP address."""

    user: User | None = None
    api_key: ApiKey | None = None
    ip_address: str | None = None
    system: str = ""

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email
        if self.api_key is not None:
            return f"key {self.api_key.name} ({self.api_key.display_prefix})"
        return self.system or "system"

    @classmethod
    def from_request(cls, request: HttpRequest | Any) -> Actor:
        from tenants.models import ApiKey

        auth = getattr(request, "auth", None)
        ip = client_ip(request)
        if isinstance(auth, ApiKey):
            return cls(api_key=auth, ip_address=ip)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return cls(user=user, ip_address=ip)
        return cls(ip_address=ip, system="anonymous")

    @classmethod
    def system_actor(cls, name: str) -> Actor:
        return cls(system=name)


def client_ip(request: HttpRequest | Any) -> str | None:
    meta = getattr(request, "META", {})
    return meta.get("REMOTE_ADDR") or None
