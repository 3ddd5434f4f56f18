"""The demo cast, shared by `seed_demo` and the tests: Acme (alice admin, bob reviewer, vera
viewer) and Globex (charlie admin)."""

from __future__ import annotations

from django.db import transaction

from tenants import registry, rls
from tenants.models import Membership, Role, Tenant, User

DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - a published demo login, local only

DEMO_TENANTS = [
    ("acme", "Acme", "Europe/Paris"),
    ("globex", "Globex", "America/New_York"),
]
DEMO_MEMBERS = [
    ("alice@acme.test", "Alice Admin", "acme", Role.ADMIN),
    ("bob@acme.test", "Bob Reviewer", "acme", Role.REVIEWER),
    ("vera@acme.test", "Vera Viewer", "acme", Role.VIEWER),
    ("charlie@globex.test", "Charlie Admin", "globex", Role.ADMIN),
]
DEMO_STAFF = ("staff@console.test", "Platform Staff")


@transaction.atomic
def seed_demo(*, first_eval_run: bool = True) -> dict[str, Tenant]:
    """Create the demo tenants and users if missing (idempotent: existing rows are left as they are).
    Each tenant is then handed to the apps' demo seeders in their order (tenants.registry).
    `first_eval_run=False` tells them to queue no background work, so the demo suite is left without
    the run the seed would queue (the tests: a worker one of them starts would otherwise execute it,
    sending the demo emails its cases ask for)."""
    with rls.across_tenants("seeding the demo tenants"):
        return _seed(first_eval_run=first_eval_run)


def _seed(*, first_eval_run: bool) -> dict[str, Tenant]:
    tenants = {}
    for slug, name, tz in DEMO_TENANTS:
        tenants[slug], _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": name, "timezone": tz})
    for email, name, slug, role in DEMO_MEMBERS:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email, DEMO_PASSWORD, name=name)
        Membership.objects.get_or_create(tenant=tenants[slug], user=user, defaults={"role": role})
    email, name = DEMO_STAFF
    if not User.objects.filter(email=email).exists():
        User.objects.create_user(email, DEMO_PASSWORD, name=name, is_staff=True)
    for tenant in tenants.values():
        for seeder in registry.demo_seeders():
            seeder(tenant, queue_work=first_eval_run)
    return tenants
