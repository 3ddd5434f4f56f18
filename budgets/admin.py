"""Read-only admin views of budgets for staff; changes go through services (audited)."""

from __future__ import annotations

from django.contrib import admin

from budgets.models import Budget, BudgetAlert, BudgetCounter, LedgerEntry, Reservation
from tenants.admin import ReadOnlyAdmin


@admin.register(Budget)
class BudgetAdmin(ReadOnlyAdmin):
    list_display = ("name", "tenant", "scope", "period", "unit", "limit", "on_exceed", "enabled")
    list_filter = ("scope", "period", "unit", "on_exceed", "enabled")


@admin.register(BudgetCounter)
class BudgetCounterAdmin(ReadOnlyAdmin):
    list_display = ("budget", "period_start", "scope_value", "settled", "reserved")


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ("id", "tenant", "status", "model", "worst_case_micros", "actual_micros", "created_at")
    list_filter = ("status",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "tenant", "kind", "counter", "reserved_delta", "settled_delta", "created_at")
    list_filter = ("kind",)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = ("budget", "threshold", "scope_value", "period_start", "used", "limit", "created_at")
