"""Writes to the tenancy kernel. Each service owns its transaction, its audit row and its
after-commit side effects (emails, live pushes)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from tenants import events, registry, rls
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldError, LastAdminError, ServiceError
from tenants.models import (
    API_KEY_PREFIX,
    ApiKey,
    AuditEvent,
    Invitation,
    Membership,
    Role,
    Scope,
    Tenant,
    User,
    validate_timezone,
)

# --- Audit -------------------------------------------------------------------------------------


def audit_record(
    *,
    tenant: Tenant,
    actor: Actor,
    action: str,
    target: Any = None,
    target_type: str = "",
    target_label: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event, inside the transaction of the change it records (RuntimeError
    otherwise: a change committed without its record, or a record of a change rolled back, is
    what an audit log must not hold). A test's own transaction (pytest-django's) does not count:
    the service's does."""
    connection = transaction.get_connection()
    if not any(not block._from_testcase for block in connection.atomic_blocks):
        raise RuntimeError(
            f"audit_record({action!r}) runs outside a transaction: call it inside the transaction.atomic() "
            "of the service making the change."
        )
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_label = target_label or str(target)
    return AuditEvent.objects.create(
        tenant=tenant,
        actor_user=actor.user,
        actor_api_key=actor.api_key,
        actor_label=actor.label[:200],
        action=action,
        target_type=target_type,
        target_id=str(target.pk) if target is not None else "",
        target_label=target_label[:200],
        before=before,
        after=after,
        ip_address=actor.ip_address,
    )


# --- Tenants (platform staff) ------------------------------------------------------------------


def tenant_create(
    *, actor: Actor, name: str, slug: str = "", timezone_name: str = "UTC", admin_email: str = ""
) -> tuple[Tenant, InviteResult | None]:
    """Create a tenant and, given `admin_email`, invite its first admin in the same transaction."""
    name = name.strip()
    if not name:
        raise ServiceError("A tenant needs a name.")
    slug = slugify(slug or name)
    if not slug:
        raise ServiceError("The slug must contain letters or digits.")
    try:
        validate_timezone(timezone_name)
    except ValidationError as exc:
        raise ServiceError(exc.messages[0]) from exc
    try:
        with transaction.atomic(), rls.scope():
            tenant = Tenant.objects.create(name=name, slug=slug, timezone=timezone_name)
            rls.enter_tenant(tenant.pk)  # platform staff write the new tenant's first rows
            audit_record(tenant=tenant, actor=actor, action="tenant.create", target=tenant, after=_tenant_state(tenant))
            invite = (
                member_invite(actor=actor, tenant=tenant, email=admin_email, role=Role.ADMIN) if admin_email else None
            )
    except IntegrityError as exc:
        raise ConflictError(f"The slug {slug!r} is already taken.") from exc
    return tenant, invite


def tenant_set_status(*, actor: Actor, tenant: Tenant, status: str) -> Tenant:
    if status not in Tenant.Status.values:
        raise ServiceError(f"Unknown status {status!r}.")
    with transaction.atomic(), rls.tenant_context(tenant.pk):  # platform staff write to its audit log
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if tenant.status == status:
            return tenant
        before = _tenant_state(tenant)
        tenant.status = status
        tenant.save(update_fields=["status"])
        action = "tenant.suspend" if status == Tenant.Status.SUSPENDED else "tenant.reactivate"
        audit_record(
            tenant=tenant, actor=actor, action=action, target=tenant, before=before, after=_tenant_state(tenant)
        )
    return tenant


def _tenant_state(tenant: Tenant) -> dict[str, Any]:
    return {"name": tenant.name, "slug": tenant.slug, "timezone": tenant.timezone, "status": tenant.status}


# --- Members -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InviteResult:
    """An invitation either adds an existing user at once or leaves an invitation to accept."""

    membership: Membership | None
    invitation: Invitation | None
    accept_url: str = ""


def member_invite(*, actor: Actor, tenant: Tenant, email: str, role: str) -> InviteResult:
    """Add `email` to the tenant with `role`: at once for an existing account, else by an emailed
    invitation link (the link is also returned so an admin can pass it on)."""
    email = User.objects.normalize_email(email.strip()).lower()
    if not email or "@" not in email:
        raise ServiceError("Enter a valid email address.")
    if role not in Role.values:
        raise ServiceError(f"Unknown role {role!r}; choose admin, reviewer or viewer.")
    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        if user is not None:
            if Membership.objects.for_tenant(tenant).filter(user=user).exists():
                raise ConflictError(f"{email} is already a member of {tenant.name}.")
            membership = Membership.objects.create(tenant=tenant, user=user, role=role)
            audit_record(
                tenant=tenant,
                actor=actor,
                action="member.add",
                target=membership,
                target_label=email,
                after={"email": email, "role": role},
            )
            events.send_after_commit(tenant, events.MembersChanged(type="members.changed"))
            transaction.on_commit(lambda: _mail_added(tenant=tenant, email=email, role=role))
            return InviteResult(membership=membership, invitation=None)
        open_invites = Invitation.objects.for_tenant(tenant).filter(
            email=email, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )
        if open_invites.exists():
            raise ConflictError(f"{email} already has an open invitation; revoke it to send a new one.")
        token = Invitation.new_token()
        invitation = Invitation.objects.create(
            tenant=tenant,
            email=email,
            role=role,
            token_hash=Invitation.hash_token(token),
            invited_by=actor.user,
            expires_at=Invitation.default_expiry(),
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action="member.invite",
            target=invitation,
            target_label=email,
            after={"email": email, "role": role},
        )
        accept_url = settings.CONSOLE_BASE_URL.rstrip("/") + reverse("console:accept_invitation", args=[token])
        transaction.on_commit(lambda: _mail_invitation(tenant=tenant, email=email, accept_url=accept_url))
        events.send_after_commit(tenant, events.MembersChanged(type="members.changed"))
    return InviteResult(membership=None, invitation=invitation, accept_url=accept_url)


def _mail_added(*, tenant: Tenant, email: str, role: str) -> None:
    send_mail(
        subject=f"You were added to {tenant.name}",
        message=f"You are now a {role} of {tenant.name} in the Agent Operations Console.",
        from_email=None,
        recipient_list=[email],
    )


def _mail_invitation(*, tenant: Tenant, email: str, accept_url: str) -> None:
    send_mail(
        subject=f"Invitation to {tenant.name}",
        message=f"You are invited to {tenant.name} in the Agent Operations Console.\n\nAccept: {accept_url}\n",
        from_email=None,
        recipient_list=[email],
    )


def invitation_revoke(*, actor: Actor, invitation: Invitation) -> Invitation:
    with transaction.atomic():
        invitation = Invitation.objects.for_tenant(invitation.tenant).select_for_update().get(pk=invitation.pk)
        if not invitation.is_open:
            raise ConflictError("This invitation is no longer open.")
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_record(
            tenant=invitation.tenant,
            actor=actor,
            action="member.invite_revoke",
            target=invitation,
            target_label=invitation.email,
        )
        events.send_after_commit(invitation.tenant, events.MembersChanged(type="members.changed"))
    return invitation


def invitation_accept(*, token: str, name: str = "", password: str = "", user: User | None = None) -> Membership:
    """Accept an invitation: as the signed-in `user` (whose email must match), or by creating the
    account with `name` and `password`."""
    with transaction.atomic(), rls.scope():
        with rls.across_tenants("an invitation found by its token"):
            invitation = (
                Invitation.objects.select_for_update()
                .select_related("tenant")
                .filter(token_hash=Invitation.hash_token(token))
                .first()
            )
        if invitation is None or not invitation.is_open:
            raise ServiceError("This invitation link is invalid, used or expired. Ask an admin for a new one.")
        tenant = invitation.tenant
        rls.enter_tenant(tenant.pk)
        if user is None:
            if User.objects.filter(email=invitation.email).exists():
                raise ConflictError("An account with this email exists: sign in first, then open the link again.")
            candidate = User(email=invitation.email, name=name.strip())
            try:
                validate_password(password, user=candidate)
            except ValidationError as exc:
                raise ServiceError(" ".join(exc.messages)) from exc
            user = User.objects.create_user(invitation.email, password, name=name.strip())
        elif user.email.lower() != invitation.email:
            raise ServiceError(f"This invitation is for {invitation.email}; you are signed in as {user.email}.")
        if Membership.objects.for_tenant(tenant).filter(user=user).exists():
            raise ConflictError(f"{user.email} is already a member of {tenant.name}.")
        membership = Membership.objects.create(tenant=tenant, user=user, role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        audit_record(
            tenant=tenant,
            actor=Actor(user=user),
            action="member.join",
            target=membership,
            target_label=user.email,
            after={"email": user.email, "role": invitation.role},
        )
        events.send_after_commit(tenant, events.MembersChanged(type="members.changed"))
    return membership


def _lock_admins(tenant: Tenant) -> list[Membership]:
    """Lock the tenant's admin memberships in a fixed order so that two concurrent demotions or
    removals cannot both see a second admin and leave none."""
    return list(Membership.objects.for_tenant(tenant).select_for_update().filter(role=Role.ADMIN).order_by("id"))


def member_change_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ServiceError(f"Unknown role {role!r}; choose admin, reviewer or viewer.")
    tenant = membership.tenant
    with transaction.atomic():
        admins = _lock_admins(tenant)
        membership = (
            Membership.objects.for_tenant(tenant).select_for_update().select_related("user").get(pk=membership.pk)
        )
        if membership.role == role:
            return membership
        if membership.role == Role.ADMIN and len(admins) <= 1:
            raise LastAdminError(
                f"{membership.user.email} is the last admin of {tenant.name}; make someone else admin first."
            )
        before = {"email": membership.user.email, "role": membership.role}
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            tenant=tenant,
            actor=actor,
            action="member.role_change",
            target=membership,
            target_label=membership.user.email,
            before=before,
            after={"email": membership.user.email, "role": role},
        )
        events.send_after_commit(tenant, events.MembersChanged(type="members.changed"))
    return membership


def member_remove(*, actor: Actor, membership: Membership) -> None:
    tenant = membership.tenant
    with transaction.atomic():
        admins = _lock_admins(tenant)
        membership = (
            Membership.objects.for_tenant(tenant).select_for_update().select_related("user").get(pk=membership.pk)
        )
        if membership.role == Role.ADMIN and len(admins) <= 1:
            raise LastAdminError(f"{membership.user.email} is the last admin of {tenant.name} and cannot be removed.")
        before = {"email": membership.user.email, "role": membership.role}
        audit_record(
            tenant=tenant,
            actor=actor,
            action="member.remove",
            target=membership,
            target_label=membership.user.email,
            before=before,
        )
        membership.delete()
        events.send_after_commit(tenant, events.MembersChanged(type="members.changed"))


# --- API keys ----------------------------------------------------------------------------------


def grantable_scopes(tenant: Tenant) -> list[str]:
    """The scopes a key of `tenant` may hold: the built-in ones, then (sorted) those its tools
    require (the scope sources apps register: tenants.registry), so a key can be allowed one
    sensitive tool without being an admin key."""
    extra = {scope for source in registry.scope_sources() for scope in source(tenant)} - set(Scope.values)
    return [*Scope.values, *sorted(extra)]


def parse_scopes(raw: str | list[str], *, tenant: Tenant) -> list[str]:
    """Scopes from a space- or comma-separated string (or a list), validated against what the
    tenant's keys may hold, and de-duplicated."""
    items = raw.replace(",", " ").split() if isinstance(raw, str) else [str(s).strip() for s in raw]
    allowed = grantable_scopes(tenant)
    scopes: list[str] = []
    for item in items:
        if item not in allowed:
            raise FieldError("scopes", f"Unknown scope {item!r}; known scopes: {', '.join(allowed)}.")
        if item not in scopes:
            scopes.append(item)
    if not scopes:
        raise ServiceError("Give the key at least one scope.")
    return scopes


MAX_TOKENS_PER_REQUEST_CAP = 10_000_000


def api_key_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    scopes: str | list[str],
    expires_at: datetime | None = None,
    max_tokens_per_request: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored and never shown again.
    `max_tokens_per_request` caps input + max output of each model call made with it (None: no cap)."""
    name = name.strip()
    if not name:
        raise ServiceError("Give the key a name.")
    if max_tokens_per_request is not None and (
        isinstance(max_tokens_per_request, bool)
        or not isinstance(max_tokens_per_request, int)
        or not 1 <= max_tokens_per_request <= MAX_TOKENS_PER_REQUEST_CAP
    ):
        raise FieldError(
            "max_tokens_per_request", f"must be a whole number of tokens from 1 to {MAX_TOKENS_PER_REQUEST_CAP}."
        )
    scope_list = parse_scopes(scopes, tenant=tenant)
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError("The expiry must be in the future.")
    secret = secrets.token_urlsafe(32)
    # 48 random bits: a clash is vanishingly rare, and the unique constraint would refuse it.
    prefix = secrets.token_hex(6)
    with transaction.atomic():
        key = ApiKey.objects.create(
            tenant=tenant,
            name=name,
            prefix=prefix,
            secret_hash=ApiKey.hash_secret(secret),
            scopes=scope_list,
            expires_at=expires_at,
            max_tokens_per_request=max_tokens_per_request,
            created_by=actor.user,
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action="api_key.create",
            target=key,
            after={
                "name": name,
                "scopes": scope_list,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "max_tokens_per_request": max_tokens_per_request,
            },
        )
        events.send_after_commit(tenant, events.ApiKeysChanged(type="api_keys.changed"))
    return key, f"{API_KEY_PREFIX}_{prefix}_{secret}"


def api_key_revoke(*, actor: Actor, api_key: ApiKey) -> ApiKey:
    with transaction.atomic():
        key = ApiKey.objects.for_tenant(api_key.tenant).select_for_update().get(pk=api_key.pk)
        if key.revoked_at is not None:
            return key
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(tenant=key.tenant, actor=actor, action="api_key.revoke", target=key, after={"revoked": True})
        events.send_after_commit(key.tenant, events.ApiKeysChanged(type="api_keys.changed"))
    return key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use, at most once per API_KEY_LAST_USED_RESOLUTION_SECONDS so the hot path stays a read."""
    now = timezone.now()
    resolution = settings.API_KEY_LAST_USED_RESOLUTION_SECONDS
    if api_key.last_used_at is not None and (now - api_key.last_used_at).total_seconds() < resolution:
        return
    ApiKey.objects.for_tenant(api_key.tenant).filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now


# --- End users ---------------------------------------------------------------------------------


class _NothingErasedError(Exception):
    def __init__(self, receipt: dict[str, Any]) -> None:
        super().__init__("nothing stored")
        self.receipt = receipt


def end_user_erase(*, actor: Actor, tenant: Tenant, end_user_id: str) -> dict[str, Any]:
    """Erase an end user through every eraser the apps registered (tenants.registry; traces:
    traces.services.end_user_erase: traces, payloads, runs' content; budget amounts pseudonymised;
    audited), in one transaction, and say whether anything was: the receipt (the erasers' receipts
    merged, their `counts` side by side) has `erased` False and every count zero for an end user
    with nothing stored, and then no audit event claims an erasure (the erasure's transaction,
    which changed nothing, is rolled back with its audit row). The API and the console both erase
    through here."""
    receipt: dict[str, Any] = {"counts": {}}
    try:
        with transaction.atomic():
            for eraser in registry.end_user_erasers():
                part = eraser(actor=actor, tenant=tenant, end_user_id=end_user_id)
                receipt = {**receipt, **part, "counts": {**receipt["counts"], **part["counts"]}}
            if not any(receipt["counts"].values()):
                raise _NothingErasedError(receipt)
    except _NothingErasedError as nothing:
        return {**nothing.receipt, "erased": False}
    return {**receipt, "erased": True}
