"""`manage.py budgets_verify`: recompute every counter from the ledger and report differences."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from budgets.models import BudgetCounter
from budgets.selectors import ledger_discrepancies
from tenants import rls
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Check that every budget counter equals the sum of its ledger entries; exit 1 on any difference."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Only this tenant (slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = None
        if options.get("tenant"):
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        # Under row-level security (tenants.rls) a command starts with no tenant and would see no
        # counter at all: it reads the one tenant's, or every tenant's, saying so.
        with rls.tenant_context(tenant.pk) if tenant else rls.across_tenants("budgets_verify: every tenant's ledger"):
            self._verify(tenant)

    def _verify(self, tenant: Tenant | None) -> None:
        counters = (
            BudgetCounter.objects.across_tenants("budgets_verify: every tenant's ledger")
            if tenant is None
            else BudgetCounter.objects.for_tenant(tenant)
        )
        checked = counters.count()
        found = ledger_discrepancies(tenant=tenant)
        for discrepancy in found:
            self.stderr.write(discrepancy.describe())
        if found:
            raise CommandError(f"{len(found)} of {checked} counters differ from the ledger.")
        self.stdout.write(f"{checked} counters checked: every one equals its ledger.")
