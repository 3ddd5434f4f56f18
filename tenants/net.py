"""Where the console may send requests on a tenant's say-so (server-side request forgery): never
to private, loopback, link-local (cloud metadata) or otherwise internal addresses, and only over
HTTPS, unless the operator allow-lists the host (settings WEBHOOK_ALLOWED_HOSTS for webhooks,
PROVIDER_ALLOWED_HOSTS for self-hosted model servers)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class UnsafeUrlError(Exception):
    """The URL may not be called; the message says why."""


class UnresolvableHostError(UnsafeUrlError):
    """The URL's host does not resolve (now): no address could be checked."""


def is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified


def check_outbound_url(
    url: str, *, allowed_hosts: Iterable[str], what: str, setting: str, resolve: bool = True
) -> list[str]:
    """The addresses `url` may be called at, or UnsafeUrlError naming `what` the URL is for and
    the `setting` that allow-lists a host. HTTPS is required except for an allow-listed host;
    every address the host resolves to must be public unless allow-listed. Call again right before
    each request (the answer can change: DNS rebinding)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrlError(f"The {what} URL has no host.")
    allowed = {h.lower() for h in allowed_hosts}
    if parts.scheme != "https" and not (parts.scheme == "http" and host in allowed):
        raise UnsafeUrlError(f"{what.capitalize()} URLs must use https:// (plain http only for a host in {setting}).")
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise UnresolvableHostError(f"The {what} host {host!r} does not resolve.") from exc
    # IPv4 first: a host with both is reached over IPv4 where IPv6 has no route.
    addresses = sorted({str(info[4][0]) for info in infos}, key=lambda a: (ipaddress.ip_address(a).version, a))
    if host not in allowed:
        internal = [a for a in addresses if is_internal(a)]
        if internal:
            raise UnsafeUrlError(
                f"The {what} host {host!r} resolves to an internal address ({internal[0]}); "
                f"add it to {setting} if that is intended."
            )
    return addresses


def pinned(url: str, address: str, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """`url` with its host replaced by `address`; sets the Host header, and the TLS server name so
    the certificate is still verified against the real host name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    headers["Host"] = host if parts.port is None else f"{host}:{parts.port}"
    literal = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), extensions
