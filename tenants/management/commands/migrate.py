"""`manage.py migrate`, as Django's, run as the database owner: with TENANT_RLS on, the app's
connections take the app role, which may not change the schema (tenants.rls)."""

from typing import Any

from django.core.management.commands import migrate

from tenants import rls


class Command(migrate.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        with rls.as_owner():
            super().handle(*args, **options)
