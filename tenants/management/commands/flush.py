"""`manage.py flush`, as Django's, run as the database owner: TRUNCATE is not the app role's to
run (tenants.rls). Transactional tests flush through it."""

from typing import Any

from django.core.management.commands import flush

from tenants import rls


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        with rls.as_owner():
            super().handle(**options)
