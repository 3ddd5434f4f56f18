"""The forms of guardrails: the rule editor (a formset, each rule checked with the service's own
validation), the try-it box and a reviewer's mark on an event. They check types; services decide."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django import forms
from django.forms import BaseFormSet, formset_factory

from agents.models import Agent
from guardrails import services
from guardrails.checks import rule_problems
from guardrails.detectors import DETECTORS, STAGES
from guardrails.models import Action, GuardrailFeedback, Stage
from tenants.models import Tenant

MAX_TRY_CHARS = 20_000

STAGE_CHOICES = [(s, Stage(s).label) for s in STAGES]
DETECTOR_CHOICES = [(name, label) for name, (label, _, _) in DETECTORS.items()]
ACTION_CHOICES = [(a.value, a.label) for a in Action]


class RuleForm(forms.Form):
    """One rule of the editor, checked with the service's own validation. A row whose stage,
    detector and action are all unset is blank (the editor's spare row) and is skipped."""

    stage = forms.ChoiceField(choices=[("", "—"), *STAGE_CHOICES], required=False)
    detector = forms.ChoiceField(choices=[("", "—"), *DETECTOR_CHOICES], required=False)
    parameters = forms.CharField(
        required=False,
        initial="{}",
        widget=forms.Textarea(attrs={"rows": 1}),
        help_text='JSON object, e.g. {"mode": "indirect"}',
    )
    action = forms.ChoiceField(choices=[("", "—"), *ACTION_CHOICES], required=False)

    def clean_parameters(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("parameters") or "").strip() or "{}"
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('A JSON object, e.g. {} or {"threshold": 0.7}.')
        return value

    @property
    def is_blank(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return not any(data.get(name) for name in ("stage", "detector", "action"))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.is_blank or data.get("DELETE"):
            return data
        for name in ("stage", "detector", "action"):
            if not data.get(name):
                self.add_error(name, "Choose one (or clear the row).")
        if self.errors:
            return data
        rule = {k: data.get(k) for k in ("stage", "detector", "parameters", "action")}
        for field, message in rule_problems(rule).items():
            self.add_error(field if field in self.fields else "parameters", message)
        return data


if TYPE_CHECKING:
    _FormSet = BaseFormSet[RuleForm]
else:  # BaseFormSet is generic only in the type stubs
    _FormSet = BaseFormSet


class BaseRuleFormSet(_FormSet):
    def rules(self) -> list[dict[str, Any]]:
        """The rules in the order their ORDER numbers give (ties keep the page's order), without
        blank or deleted rows."""
        kept = [
            (form.cleaned_data.get("ORDER") or index + 1, index, form)
            for index, form in enumerate(self.forms)
            if form.cleaned_data and not form.is_blank and not form.cleaned_data.get("DELETE")
        ]
        return [
            {k: form.cleaned_data[k] for k in ("stage", "detector", "parameters", "action")}
            for _, _, form in sorted(kept, key=lambda item: (item[0], item[1]))
        ]


RuleFormSet: type[BaseRuleFormSet] = formset_factory(  # type: ignore[assignment]
    RuleForm, formset=BaseRuleFormSet, extra=1, can_delete=True, can_order=True, max_num=50
)


def rules_initial(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The editor's rows for a policy's `rules`, numbered in their order."""
    return [
        {
            "stage": r["stage"],
            "detector": r["detector"],
            "parameters": json.dumps(r.get("parameters") or {}),
            "action": r["action"],
            "ORDER": index + 1,
        }
        for index, r in enumerate(rules)
    ]


class TryForm(forms.Form):
    stage = forms.ChoiceField(choices=STAGE_CHOICES, initial="input")
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.none(), required=False, empty_label="No agent (the tenant's policy)"
    )
    text = forms.CharField(
        required=False,
        max_length=MAX_TRY_CHARS,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="The prompt, answer or tool result to check.",
    )
    tool = forms.CharField(required=False, max_length=64, help_text="Tool calls: the tool's name.")
    arguments = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Tool calls: the arguments (JSON)."
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        agent_field = self.fields["agent"]
        assert isinstance(agent_field, forms.ModelChoiceField)
        agent_field.queryset = Agent.objects.for_tenant(tenant).filter(archived=False).order_by("name")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("stage") == "tool_call":
            raw = (data.get("arguments") or "").strip() or "{}"
            try:
                data["arguments"] = json.loads(raw)
            except ValueError as exc:
                self.add_error("arguments", f"Not JSON: {exc}.")
            if not data.get("tool"):
                self.add_error("tool", "Name the tool the call is for.")
        elif not data.get("text"):
            self.add_error("text", "Enter some text to check.")
        return data


class FeedbackForm(forms.Form):
    kind = forms.ChoiceField(choices=GuardrailFeedback.Kind.choices)
    note = forms.CharField(required=False, max_length=services.MAX_NOTE_CHARS)
