"""The tenancy kernel: tenants, users, memberships, API keys, invitations and the audit log."""

from __future__ import annotations

import copy
import hashlib
import secrets
import zoneinfo
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.manager import ManagerDescriptor
from django.utils import timezone
from django.utils.timezone import now

from tenants.ids import new_id

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone (e.g. Europe/Paris).")


class WatchedQuerySet[M: models.Model](models.QuerySet[M]):
    """A queryset whose `.update()` tells the configuration cache (tenants.cache) when it changes
    a model the cache watches: an update sends no post_save, and a cached key or pin must not
    outlive it."""

    def update(self, **kwargs: Any) -> int:
        from tenants import cache

        rows = super().update(**kwargs)
        if rows and cache.changes_cached(self.model, kwargs):
            cache.invalidate()
        return rows


class Tenant(models.Model):
    """A customer organisation; every tenant-owned row points at one."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=now)

    objects = models.Manager.from_queryset(WatchedQuerySet)()

    if TYPE_CHECKING:
        memberships: RelatedManager[Membership]

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def live_group(self) -> str:
        """The channel-layer group every live console page of this tenant listens on."""
        return f"tenant.{self.pk}.live"


def _tenant_pk(tenant: Tenant | UUID | str) -> Any:
    if isinstance(tenant, Tenant):
        if tenant.pk is None:
            raise ValueError("for_tenant() needs a saved tenant")
        return tenant.pk
    if not tenant:
        raise ValueError("for_tenant() needs a saved tenant or its id")
    return tenant


class TenantOwnedQuerySet[M: models.Model](WatchedQuerySet[M]):
    def for_tenant(self, tenant: Tenant | UUID | str) -> Self:
        """The rows of one tenant: a saved Tenant, or its id when the row in hand carries only
        that (`for_tenant(run.tenant_id)`: reading `run.tenant` could cost a query)."""
        return self.filter(tenant_id=_tenant_pk(tenant))


class UnscopedQueryError(RuntimeError):
    """A query built from a tenant-owned model's `objects` that says neither whose rows it reads
    nor that it crosses tenants."""

    def __init__(self, model: type[models.Model], method: str = "") -> None:
        name = model.__name__
        if method:
            message = f"{name}.objects.{method}() names no tenant: pass tenant= (or tenant_id=)"
        else:
            message = (
                f"{name}.objects is not scoped: use {name}.objects.for_tenant(tenant), or "
                f'{name}.objects.across_tenants("reason") for a query that crosses tenants on purpose'
            )
        super().__init__(f"{message} (see tenants.models.TenantOwnedManager).")


class TenantOwnedManager[M: models.Model](models.Manager[M]):
    """`Model.objects` of a tenant-owned model, and the wall in front of it: a query built from it
    says whose rows it reads.

    Allowed: `for_tenant(tenant)`; `across_tenants(reason)`; `create`, `get_or_create` and
    `update_or_create` naming `tenant=` or `tenant_id=` (scoped by their argument); `bulk_create`
    (each row carries its tenant); `none()`. Anything else (`all()`, `filter()`, `get()`,
    `select_related()`, `count()`...) raises UnscopedQueryError, unless the code runs where the
    tenant context already says it crosses tenants (`rls.across_tenants(reason)`, beat's sweeps,
    an operator's script after `rls.across_tenants_from_here`): that block has said why.

    Only `Model.objects` is walled. Django reads through the same manager as `_default_manager`
    (model and constraint validation, admin, DRF's validators, forms' choices, `get_object_or_404`)
    and builds related managers from its class (`agent.runs.all()`, scoped by the parent row):
    those are unwalled copies. `_base_manager` (foreign keys, `refresh_from_db`, deletions) is
    Django's plain manager. tenants/tests/test_scoping_wall.py holds the source to the same rule.

    Cost: the wall is a class-keyed dict lookup when `objects` is read and one attribute test when
    a queryset is made; no query.
    """

    # True on the copy `Model.objects` returns (see _WalledManagerDescriptor).
    walled: bool = False

    def contribute_to_class(self, cls: type[models.Model], name: str) -> None:
        super().contribute_to_class(cls, name)
        setattr(cls, name, _WalledManagerDescriptor(self))

    def _all_rows(self) -> TenantOwnedQuerySet[M]:
        return TenantOwnedQuerySet(self.model, using=self._db)

    def _through_the_wall(self, method: str = "", kwargs: dict[str, Any] | None = None) -> None:
        if kwargs is not None and ("tenant" in kwargs or "tenant_id" in kwargs):
            return
        from tenants import rls

        if not rls.current().cross_tenant:
            raise UnscopedQueryError(self.model, method)

    def get_queryset(self) -> TenantOwnedQuerySet[M]:
        if self.walled:
            self._through_the_wall()
        return self._all_rows()

    def for_tenant(self, tenant: Tenant | UUID | str) -> TenantOwnedQuerySet[M]:
        """The rows of one tenant (a Tenant or its id). The new queryset is filtered in place
        (one clone less than `.filter()`), so `for_tenant(t).filter(...)` costs about what
        `filter(tenant=t, ...)` did."""
        queryset = self._all_rows()
        queryset.query.add_q(models.Q(tenant_id=_tenant_pk(tenant)))
        return queryset

    def across_tenants(self, reason: str) -> TenantOwnedQuerySet[M]:
        """Rows not filtered by tenant here, for the few reads that need it: beat's sweeps and
        retention, a task loading the row its id names, a lookup made before the tenant is known
        (an API key by its prefix), platform staff, a viewset's queryset that TenantScopedViewSet
        scopes per request. `reason` says why, for the reader; nothing is logged and no query is
        added.

        It neither enters nor requires row-level security's `rls.across_tenants()`: a queryset
        is lazy, so a context entered here would be gone when it is evaluated; and the database
        keeps applying whatever context the caller has. Inside a tenant's context (a request, a
        task with a `tenant_id`) the database still shows that tenant's rows only, which is what a
        task loading its own run by id wants; reading every tenant's rows also needs
        `rls.across_tenants()` around the evaluation (beat's sweeps have it from task_prerun)."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("across_tenants() needs a reason")
        return self._all_rows()

    def create(self, **kwargs: Any) -> M:
        if self.walled:
            self._through_the_wall("create", kwargs)
            return self._all_rows().create(**kwargs)
        return super().create(**kwargs)

    def get_or_create(self, defaults: Any = None, **kwargs: Any) -> tuple[M, bool]:
        if self.walled:
            self._through_the_wall("get_or_create", kwargs)
            return self._all_rows().get_or_create(defaults, **kwargs)
        return super().get_or_create(defaults, **kwargs)

    def update_or_create(self, defaults: Any = None, create_defaults: Any = None, **kwargs: Any) -> tuple[M, bool]:
        if self.walled:
            self._through_the_wall("update_or_create", kwargs)
            return self._all_rows().update_or_create(defaults, create_defaults, **kwargs)
        return super().update_or_create(defaults, create_defaults, **kwargs)

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[M]:
        if self.walled:
            return self._all_rows().bulk_create(objs, *args, **kwargs)
        return super().bulk_create(objs, *args, **kwargs)

    def none(self) -> TenantOwnedQuerySet[M]:
        if self.walled:
            return self._all_rows().none()
        return cast("TenantOwnedQuerySet[M]", super().none())


class _WalledManagerDescriptor(ManagerDescriptor):
    """`Model.objects` for a tenant-owned model: a walled copy of the model's manager, made once
    per model class. `_meta.managers` (and so `_default_manager` and related managers) keep the
    unwalled one, so nothing Django does goes through the wall, and migrations see no change."""

    def __init__(self, manager: models.Manager[Any]) -> None:
        super().__init__(manager)
        self.walls: dict[type[models.Model], TenantOwnedManager[Any]] = {}

    def __get__(self, instance: models.Model | None, cls: type[models.Model] | None = None) -> Any:
        if instance is None and cls is not None:
            wall = self.walls.get(cls)
            if wall is not None:
                return wall
        # Django's descriptor refuses instances, abstract models and swapped ones.
        manager = cast("TenantOwnedManager[Any]", super().__get__(instance, cls))
        walled = copy.copy(manager)
        walled.walled = True
        self.walls[cast("type[models.Model]", cls)] = walled
        return walled


class TenantOwned(models.Model):
    """Base for every tenant-owned row: a non-null tenant and a scoped manager."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="%(class)ss")

    objects = TenantOwnedManager()

    class Meta:
        abstract = True


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("A user needs an email address")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in to the console with an email address; is_staff marks platform staff."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Platform staff: may manage tenants.")
    date_joined = models.DateTimeField(default=now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    if TYPE_CHECKING:
        memberships: RelatedManager[Membership]

    def __str__(self) -> str:
        return self.email

    @property
    def display_name(self) -> str:
        return self.name or self.email


class Role(models.TextChoices):
    """What a member may do in a tenant, from most to least powerful."""

    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {Role.VIEWER: 0, Role.REVIEWER: 1, Role.ADMIN: 2}


class Membership(TenantOwned):
    """A user's role in one tenant."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user")]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.tenant_id}"

    def has_role(self, role: str) -> bool:
        """True when this member's role is at least `role`."""
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


class Invitation(TenantOwned):
    """An emailed invitation for someone without an account to join a tenant with a role."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.tenant_id}"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()

    @staticmethod
    def default_expiry() -> Any:
        return timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS)


class Scope(models.TextChoices):
    """What an API key may call; `admin` grants every scope."""

    ADMIN = "admin", "admin: everything, including members and keys"
    RUNS_WRITE = "runs:write", "runs:write: start and cancel runs"
    TRACES_WRITE = "traces:write", "traces:write: ingest spans"
    BUDGETS_RESERVE = "budgets:reserve", "budgets:reserve: reserve and settle budget"
    APPROVALS_WRITE = "approvals:write", "approvals:write: request approvals"
    APPROVALS_DECIDE = "approvals:decide", "approvals:decide: approve or reject"
    GUARDRAILS_CHECK = "guardrails:check", "guardrails:check: run guardrail checks"
    GATEWAY = "gateway", "gateway: call models through /v1"
    READ = "read", "read: list and read the tenant's resources"


API_KEY_PREFIX = "aoc"


class ApiKey(TenantOwned):
    """A scoped API key for agent clients; only a SHA-256 of its secret is kept."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    name = models.CharField(max_length=100)
    # The public part of the key, shown in lists and used to find the row: aoc_<prefix>_<secret>.
    prefix = models.CharField(max_length=16, unique=True)
    # Keys are 256-bit random secrets, so a fast hash is enough (a slow KDF protects low-entropy
    # passwords, and would make every API request pay for it).
    secret_hash = models.CharField(max_length=64)
    # Built-in scopes (Scope) and the tenant's tool scopes (tenants.services.grantable_scopes).
    scopes = ArrayField(models.CharField(max_length=64), default=list)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # A per-request cap: a model call whose input estimate + max output exceeds it is refused.
    max_tokens_per_request = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        return f"{API_KEY_PREFIX}_{self.prefix}_…"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.is_revoked and not self.is_expired

    def has_scope(self, scope: str) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def _append_only(model: type[models.Model], verb: str) -> TypeError:
    rows = str(model._meta.verbose_name_plural).capitalize()
    return TypeError(f"{rows} are append-only: they cannot be {verb}.")


class AppendOnlyQuerySet[M: models.Model](TenantOwnedQuerySet[M]):
    """Refuses bulk updates and deletes: rows are only ever added."""

    def update(self, **kwargs: Any) -> int:
        raise _append_only(self.model, "updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise _append_only(self.model, "deleted")


class AppendOnlyManager[M: models.Model](TenantOwnedManager[M]):
    def _all_rows(self) -> AppendOnlyQuerySet[M]:
        return AppendOnlyQuerySet(self.model, using=self._db)

    def get_queryset(self) -> AppendOnlyQuerySet[M]:
        return cast("AppendOnlyQuerySet[M]", super().get_queryset())


class AppendOnly(TenantOwned):
    """Base for tenant-owned rows that are only ever added (the audit log, the budget ledger): the
    ORM refuses to save an existing row or delete one, one by one or in bulk. Pair it with a
    database trigger (see tenants/migrations/0002) so raw SQL is refused too."""

    objects = AppendOnlyManager()  # type: ignore[misc]  # the same manager, with changes refused

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise _append_only(type(self), "updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise _append_only(type(self), "deleted")


class AuditEvent(AppendOnly):
    """One append-only record of a configuration change or decision: who, what, before and after."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    created_at = models.DateTimeField(default=now, db_index=True)
    actor_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Kept as text so the record survives the actor's deletion.
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"
