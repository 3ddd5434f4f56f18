"""Read-only admin views of evals for staff; changes go through services (audited)."""

from __future__ import annotations

from django.contrib import admin

from evals.models import Case, EvalResult, EvalRun, GateOverride, OnlineEval, OnlineScore, QualityAlert, Review, Suite
from tenants.admin import ReadOnlyAdmin


@admin.register(Suite)
class SuiteAdmin(ReadOnlyAdmin):
    list_display = ("name", "tenant", "agent", "tolerance", "gates_pin_changes")
    search_fields = ("name",)


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "tenant", "suite", "critical")
    list_filter = ("critical",)


@admin.register(EvalRun)
class EvalRunAdmin(ReadOnlyAdmin):
    list_display = ("pk", "tenant", "suite", "status", "pass_rate", "created_at")
    list_filter = ("status",)


@admin.register(EvalResult)
class EvalResultAdmin(ReadOnlyAdmin):
    list_display = ("pk", "tenant", "eval_run", "position", "status")
    list_filter = ("status",)


@admin.register(GateOverride, Review, OnlineEval, OnlineScore, QualityAlert)
class EvalsOtherAdmin(ReadOnlyAdmin):
    pass
