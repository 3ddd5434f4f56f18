"""The forms of approvals: the decide form and the rule editor. They check types; services decide."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from agents.models import Agent, Tool
from approvals.models import ApprovalRequest, ApprovalRule, OnReject, Risk
from tenants.models import Tenant


class DecideForm(forms.Form):
    """No decision is preselected: the reviewer presses Approve, Reject or "Approve the edited
    arguments" (each a submit button carrying `decision`). An approval of an irreversible action
    takes a second press on a button naming it (`confirm` carries the decision it confirms): until
    then `cleaned_data["confirming"]` names the decision awaiting it, and nothing is decided."""

    decision = forms.ChoiceField(
        required=False, choices=[("approve", "Approve"), ("reject", "Reject"), ("edit", "Edit and approve")]
    )
    confirm = forms.ChoiceField(required=False, choices=[("approve", "Approve"), ("edit", "Edit and approve")])
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Required to reject: say why."}),
        max_length=5000,
        label="Comment",
    )
    arguments = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="The new arguments as JSON; then press “Approve the edited arguments”.",
    )

    def __init__(self, *args: Any, approval: ApprovalRequest | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.approval = approval

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("confirm"):
            data["decision"], data["confirmed"] = data["confirm"], True
        else:
            data["confirmed"] = False
        decision = data.get("decision")
        if not decision:
            self.add_error(None, "Choose a decision: press Approve or Reject.")
        if decision == "reject" and not (data.get("note") or "").strip():
            self.add_error("note", "A rejection needs a comment saying why.")
        if decision == "edit":
            try:
                data["parsed"] = json.loads(data.get("arguments") or "")
            except ValueError as exc:
                self.add_error("arguments", f"Not valid JSON: {exc}.")
        irreversible = self.approval is not None and self.approval.risk == Risk.IRREVERSIBLE
        asks = decision in ("approve", "edit") and irreversible and not data["confirmed"]
        data["confirming"] = decision if asks else ""
        return data


class _NamedChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class RuleForm(forms.Form):
    """A rule for an agent and/or a tool (neither: the tenant's default). Its cleaned data is the
    keyword arguments of approvals.services.approval_rule_save."""

    agent = _NamedChoice(
        queryset=Agent.objects.none(), required=False, empty_label="every agent", label="Agent (empty: every agent)"
    )
    tool = _NamedChoice(
        queryset=Tool.objects.none(), required=False, empty_label="every tool", label="Tool (empty: every tool)"
    )
    mode = forms.ChoiceField(choices=ApprovalRule.Mode.choices, initial=ApprovalRule.Mode.RISK)
    risk_tiers = forms.MultipleChoiceField(
        required=False, choices=Risk.choices, widget=forms.CheckboxSelectMultiple, label="Risk tiers that ask"
    )
    confidence_threshold = forms.FloatField(required=False, min_value=0.0, max_value=1.0)
    novelty = forms.BooleanField(required=False, label="Ask for argument shapes never approved before")
    quorum = forms.IntegerField(min_value=1, max_value=10, initial=1)
    timeout_seconds = forms.IntegerField(min_value=10, max_value=7 * 24 * 3600, initial=900)
    escalate_at_share = forms.FloatField(required=False, min_value=0.05, max_value=0.95, label="Escalate at share")
    escalation_emails = forms.CharField(required=False, help_text="Comma-separated; admins are always emailed.")
    escalation_webhook_url = forms.URLField(required=False)
    escalation_webhook_secret = forms.CharField(required=False, widget=forms.PasswordInput, max_length=200)
    on_reject = forms.ChoiceField(choices=OnReject.choices, initial=OnReject.TOOL_ERROR)
    autonomy_after = forms.IntegerField(required=False, min_value=1, max_value=1000)
    autonomy_irreversible = forms.BooleanField(required=False, label="Autonomy may cover irreversible tools")

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        agent_field, tool_field = self.fields["agent"], self.fields["tool"]
        assert isinstance(agent_field, forms.ModelChoiceField) and isinstance(tool_field, forms.ModelChoiceField)
        agent_field.queryset = Agent.objects.for_tenant(tenant)
        tool_field.queryset = Tool.objects.for_tenant(tenant)

    def clean_escalation_emails(self) -> list[str]:
        raw = self.cleaned_data.get("escalation_emails") or ""
        emails = [e.strip() for e in raw.split(",") if e.strip()]
        field = forms.EmailField()
        for email in emails:
            field.clean(email)
        return emails

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # The service's webhook_secret: None keeps the current one.
        data["webhook_secret"] = data.pop("escalation_webhook_secret", "") or None
        return data
