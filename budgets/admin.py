"""Read-only admin views of budgets for staff; changes go through services (audited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from budgets.models import Budget, BudgetAlert, BudgetCounter, LedgerEntry, Reservation


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Budget)
class BudgetAdmin(ReadOnly):
    list_display = ("name", "tenant", "scope", "period", "unit", "limit", "on_exceed", "enabled")
    list_filter = ("scope", "period", "unit", "on_exceed", "enabled")


@admin.register(BudgetCounter)
class BudgetCounterAdmin(ReadOnly):
    list_display = ("budget", "period_start", "scope_value", "settled", "reserved")


@admin.register(Reservation)
class ReservationAdmin(ReadOnly):
    list_display = ("id", "tenant", "status", "model", "worst_case_micros", "actual_micros", "created_at")
    list_filter = ("status",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnly):
    list_display = ("id", "tenant", "kind", "counter", "reserved_delta", "settled_delta", "created_at")
    list_filter = ("kind",)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnly):
    list_display = ("budget", "threshold", "scope_value", "period_start", "used", "limit", "created_at")
