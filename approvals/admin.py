"""Read-only admin views of approvals for staff; decisions and rule changes go through services
(exactly once, audited)."""

from __future__ import annotations

from django.contrib import admin

from approvals.models import ApprovalRequest, ApprovalRule, ApprovalVote, AutonomyGrant
from tenants.admin import ReadOnlyAdmin


@admin.register(ApprovalRule)
class ApprovalRuleAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "agent", "tool", "mode", "quorum", "timeout_seconds", "autonomy_after")
    list_filter = ("mode",)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "tenant", "action", "risk", "reason", "status", "decided_by_label")
    list_filter = ("status", "risk", "reason")
    search_fields = ("action", "decided_by_label")


@admin.register(ApprovalVote)
class ApprovalVoteAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "tenant", "request", "decision", "voter_label")


@admin.register(AutonomyGrant)
class AutonomyGrantAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "agent", "tool", "streak", "granted_at", "revoked_at", "revoke_reason")
