"""`manage.py seed_demo`: the demo tenants and logins (idempotent)."""

from typing import Any

from django.core.management.base import BaseCommand

from tenants.demo import DEMO_MEMBERS, DEMO_PASSWORD, DEMO_STAFF, seed_demo


class Command(BaseCommand):
    help = "Create the demo tenants (acme, globex) and their users if they are missing."

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = seed_demo()
        self.stdout.write(f"Demo tenants: {', '.join(sorted(tenants))}")
        for email, _name, slug, role in DEMO_MEMBERS:
            self.stdout.write(f"  {email:<22} {f'{role} of {slug}':<18} password: {DEMO_PASSWORD}")
        self.stdout.write(f"  {DEMO_STAFF[0]:<22} {'platform staff':<18} password: {DEMO_PASSWORD}")
