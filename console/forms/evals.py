"""The forms of evals (suites, cases, online evals): they parse input; the services validate and decide."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from agents.models import Agent
from evals.models import Case
from tenants.models import Tenant


class JsonField(forms.CharField):
    """A JSON value typed into a textarea (the service checks its shape)."""

    def __init__(self, *, empty: Any, **kwargs: Any) -> None:
        self.empty = empty
        super().__init__(required=False, widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}), **kwargs)

    def to_python(self, value: Any) -> Any:
        text = (value or "").strip()
        if not text:
            return self.empty
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None


class SuiteForm(forms.Form):
    name = forms.CharField(max_length=100)
    agent = forms.ModelChoiceField(queryset=Agent.objects.none())
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(required=False, help_text="Separated by commas.")
    tolerance = forms.FloatField(
        min_value=0, max_value=1, initial=0.0, help_text="How far (0-1) the pass rate may fall below the baseline."
    )
    gates_pin_changes = forms.BooleanField(required=False, initial=True, label="Gates pin changes of its agent's alias")
    run_budget_usd = forms.DecimalField(
        min_value=0.000001, max_digits=12, decimal_places=6, initial=1, label="Budget per run (USD)"
    )
    fixtures = JsonField(
        empty={},
        label="Sandbox fixtures",
        help_text="What the built-in tools start from in each case, never the live orders: "
        '{"orders": [{"order_number": "A-1001", "customer_email": "…", "item": "…", "amount_cents": 100, '
        '"status": "paid"}]}. Empty: the demo orders.',
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = Agent.objects.for_tenant(tenant).filter(archived=False)  # type: ignore[attr-defined]

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["tags"] = [t.strip() for t in data.pop("tags", "").split(",") if t.strip()]
        data["run_budget_micros"] = int(data.pop("run_budget_usd") * 1_000_000)
        return data


class CaseForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    input = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), strip=False)
    expected_output = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), strip=False)
    critical = forms.BooleanField(required=False, help_text="A regression of this case refuses a pin change.")
    tags = forms.CharField(required=False, help_text="Separated by commas.")
    approval = forms.ChoiceField(
        choices=Case.Approval.choices, help_text="What a call needing a reviewer's approval gets in this case."
    )
    assertions = JsonField(
        empty=[],
        help_text='A JSON list, e.g. [{"type": "contains", "value": "refunded"}, {"type": "judge", "rubric": "Kind."}]',
    )
    tool_results = JsonField(
        empty={}, help_text='Simulated tool results: {"refund_order": {"ok": true}}. Other tools run on demo tables.'
    )
    context = JsonField(empty={}, help_text="Metadata given to the run (a JSON object).")
    end_user_id = forms.CharField(max_length=200, required=False)
    session_id = forms.CharField(max_length=200, required=False)

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["tags"] = [t.strip() for t in data.pop("tags", "").split(",") if t.strip()]
        return data

    @classmethod
    def initial_for(cls, case: Case) -> dict[str, Any]:
        return {
            "name": case.name,
            "input": case.input,
            "expected_output": case.expected_output,
            "critical": case.critical,
            "tags": ", ".join(case.tags),
            "approval": case.approval,
            "assertions": json.dumps(case.assertions, indent=2, ensure_ascii=False),
            "tool_results": json.dumps(case.tool_results, indent=2, ensure_ascii=False) if case.tool_results else "",
            "context": json.dumps(case.context, indent=2, ensure_ascii=False) if case.context else "",
            "end_user_id": case.end_user_id,
            "session_id": case.session_id,
        }


class OnlineEvalForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=Agent.objects.none())
    sample_rate = forms.FloatField(min_value=0, max_value=1, initial=0.1, help_text="Share of runs scored (0-1).")
    rubric = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    pass_threshold = forms.FloatField(min_value=0, max_value=1, initial=0.5)
    alert_drop = forms.FloatField(
        min_value=0, max_value=1, initial=0.2, help_text="Alert when the pass rate falls this much between windows."
    )
    window_hours = forms.IntegerField(min_value=1, max_value=720, initial=24)
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = Agent.objects.for_tenant(tenant).filter(archived=False)  # type: ignore[attr-defined]
