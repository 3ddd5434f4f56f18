"""Approval rules and autonomy grants over REST (policy as code): every route's contract, what
each call changes (through the same services as the console, audited), and clear 4xx answers."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from agents.models import Agent, Tool
from approvals import policy
from approvals.models import ApprovalRule, AutonomyGrant
from tenants.models import AuditEvent, Scope
from tenants.testing import ApiClient, ApiContract, Cast, assert_error

pytestmark = pytest.mark.django_db


def support(cast: Cast, tenant: Any = None) -> tuple[Agent, Tool]:
    tenant = tenant or cast.acme
    return (
        Agent.objects.for_tenant(tenant).get(name="Support agent"),
        Tool.objects.for_tenant(tenant).get(name="refund_order"),
    )


def a_rule(cast: Cast) -> ApprovalRule:
    agent, tool = support(cast)
    rule, _ = ApprovalRule.objects.get_or_create(tenant=cast.acme, agent=agent, tool=tool, defaults={"mode": "always"})
    return rule


def a_grant(cast: Cast) -> AutonomyGrant:
    agent, tool = support(cast)
    AutonomyGrant.objects.for_tenant(cast.acme).filter(revoked_at__isnull=True).delete()
    return AutonomyGrant.objects.create(tenant=cast.acme, agent=agent, tool=tool, streak=3, granted_by_label="earned")


class TestRuleList(ApiContract):
    url_name = "approval-rule-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        a_rule(cast)
        return reverse(self.url_name)


class TestRuleCreate(ApiContract):
    url_name = "approval-rule-list"
    method = "post"
    scope = Scope.ADMIN

    def path(self, cast: Cast) -> str:
        ApprovalRule.objects.filter(agent__isnull=True, tool__isnull=True).delete()
        return reverse(self.url_name)

    def body(self, cast: Cast) -> Any:
        return {"mode": "always"}


class TestRuleDetail(ApiContract):
    url_name = "approval-rule-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_rule(cast).pk])


class TestRulePatch(ApiContract):
    url_name = "approval-rule-detail"
    method = "patch"
    scope = Scope.ADMIN
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_rule(cast).pk])

    def body(self, cast: Cast) -> Any:
        return {"quorum": 2}


class TestRuleDelete(ApiContract):
    url_name = "approval-rule-detail"
    method = "delete"
    scope = Scope.ADMIN
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_rule(cast).pk])


class TestAutonomyList(ApiContract):
    url_name = "autonomy-grant-list"
    scope = Scope.READ

    def path(self, cast: Cast) -> str:
        a_grant(cast)
        return reverse(self.url_name)


class TestAutonomyDetail(ApiContract):
    url_name = "autonomy-grant-detail"
    scope = Scope.READ
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_grant(cast).pk])


class TestAutonomyRevoke(ApiContract):
    url_name = "autonomy-grant-revoke"
    method = "post"
    scope = Scope.ADMIN
    object_scoped = True

    def path(self, cast: Cast) -> str:
        return reverse(self.url_name, args=[a_grant(cast).pk])

    def body(self, cast: Cast) -> Any:
        return {"reason": "Incident 7"}


def test_rules_are_kept_as_code_and_govern_the_engine(acme_admin_api: ApiClient, cast: Cast) -> None:
    agent, tool = support(cast)
    # No stored default: the built-in one (irreversible asks) governs, and the list is empty.
    assert acme_admin_api.get("/api/v1/approval-rules").json()["results"] == []

    created = acme_admin_api.post(
        "/api/v1/approval-rules",
        {"agent": "Support agent", "tool": "refund_order", "mode": "risk", "risk_tiers": ["write", "irreversible"]},
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["agent_name"], body["tool_name"], body["quorum"]) == ("Support agent", "refund_order", 1)
    rule = policy.rule_for(tenant=cast.acme, agent=agent, tool=tool)
    assert str(rule.pk) == body["id"] and rule.risk_tiers == ["write", "irreversible"]

    again = assert_error(
        acme_admin_api.post("/api/v1/approval-rules", {"agent": str(agent.pk), "tool": str(tool.pk)}), 409
    )
    assert body["id"] in again["message"]

    changed = acme_admin_api.patch(
        f"/api/v1/approval-rules/{body['id']}",
        {
            "quorum": 2,
            "autonomy_after": 5,
            "escalate_at_share": 0.5,
            "escalation_webhook_url": "https://hooks.example.com/escalate",
            "escalation_webhook_secret": "whsec-kept-secret",
        },
    )
    assert changed.status_code == 200, changed.content
    shown = changed.json()
    assert (shown["quorum"], shown["autonomy_after"], shown["escalation_webhook_secret_set"]) == (2, 5, True)
    assert "whsec-kept-secret" not in changed.content.decode()
    assert shown["mode"] == "risk" and shown["risk_tiers"] == ["write", "irreversible"]  # the rest stays
    actions = list(
        AuditEvent.objects.for_tenant(cast.acme)
        .filter(action__startswith="approval_rule.")
        .values_list("action", flat=True)
    )
    assert sorted(actions) == ["approval_rule.create", "approval_rule.update"]

    moved = assert_error(acme_admin_api.patch(f"/api/v1/approval-rules/{body['id']}", {"tool": "send_email"}), 400)
    assert "stay" in moved["fields"]["tool"][0]
    typo = assert_error(acme_admin_api.patch(f"/api/v1/approval-rules/{body['id']}", {"quorom": 3}), 400)
    assert typo["fields"] == {"quorom": ["Unknown field; did you mean `quorum`?"]}

    assert acme_admin_api.delete(f"/api/v1/approval-rules/{body['id']}").status_code == 204
    fallback = policy.rule_for(tenant=cast.acme, agent=agent, tool=tool)
    assert fallback._state.adding and fallback.risk_tiers == ["irreversible"]  # the built-in default again
    assert not ApprovalRule.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quorum": 0}, "quorum"),
        ({"timeout_seconds": 5}, "timeout_seconds"),
        ({"confidence_threshold": 1.5}, "confidence_threshold"),
        ({"escalate_at_share": 1}, "escalate_at_share"),
        ({"mode": "sometimes"}, "mode"),
        ({"risk_tiers": ["catastrophic"]}, "risk_tiers"),
        ({"escalation_webhook_url": "http://hooks.example.com/x"}, "escalation_webhook_url"),
        ({"escalation_emails": ["not an email"]}, "escalation_emails"),
        ({"agent": "Nobody"}, "agent"),
        ({"tool": "launch_rockets"}, "tool"),
        ({"autonomy_after": 0}, "autonomy_after"),
    ],
)
def test_a_bad_rule_is_a_400_naming_the_field(acme_admin_api: ApiClient, body: dict[str, Any], field: str) -> None:
    error = assert_error(acme_admin_api.post("/api/v1/approval-rules", body), 400)
    assert field in error["fields"], error
    assert not ApprovalRule.objects.exists()


def test_an_admin_revokes_autonomy_over_the_api_once(acme_admin_api: ApiClient, cast: Cast) -> None:
    grant = a_grant(cast)
    listed = acme_admin_api.get("/api/v1/autonomy?active=true").json()["results"]
    assert [g["id"] for g in listed] == [str(grant.pk)] and listed[0]["tool_name"] == "refund_order"
    assert_error(acme_admin_api.post(f"/api/v1/autonomy/{grant.pk}/revoke", {}), 400)
    assert_error(acme_admin_api.get("/api/v1/autonomy?active=maybe"), 400)

    revoked = acme_admin_api.post(f"/api/v1/autonomy/{grant.pk}/revoke", {"reason": "Incident 7: wrong refund"})
    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["active"] is False and revoked.json()["revoke_reason"] == "Incident 7: wrong refund"
    again = assert_error(acme_admin_api.post(f"/api/v1/autonomy/{grant.pk}/revoke", {"reason": "twice"}), 409)
    assert "already revoked" in again["message"]
    assert acme_admin_api.get("/api/v1/autonomy?active=true").json()["results"] == []
    assert [g["id"] for g in acme_admin_api.get("/api/v1/autonomy?active=false").json()["results"]] == [str(grant.pk)]
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="autonomy.revoke").count() == 1
