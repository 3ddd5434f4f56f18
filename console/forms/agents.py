"""The forms of agents and tools: they check types; services decide."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from agents import selectors
from agents.models import Agent, Tool
from agents.services import BUILTIN_TOOLS, MAX_STEPS_LIMIT, MAX_TEMPERATURE
from tenants.models import Tenant


class AgentForm(forms.Form):
    name = forms.CharField(max_length=100)
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}))
    model_alias = forms.SlugField(
        max_length=64, initial="default", help_text="A pinned alias; runs use the exact model it is pinned to."
    )
    tools = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    scopes = forms.CharField(
        required=False, help_text="Space-separated, e.g. orders:refund. A tool that requires a scope needs it here."
    )
    max_steps = forms.IntegerField(min_value=1, max_value=MAX_STEPS_LIMIT, initial=8)
    max_tokens_per_request = forms.IntegerField(min_value=1, initial=1024)
    temperature = forms.FloatField(min_value=0, max_value=MAX_TEMPERATURE, initial=0.0)

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["tools"]
        assert isinstance(field, forms.MultipleChoiceField)
        self.tool_rows = list(selectors.tools_of(tenant=tenant))
        field.choices = [(str(t.pk), t.name) for t in self.tool_rows]

    def service_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["scopes"] = data["scopes"].replace(",", " ").split()
        return data

    @classmethod
    def initial_for(cls, agent: Agent) -> dict[str, Any]:
        version = agent.current_version
        if version is None:
            return {"name": agent.name}
        return {
            "name": agent.name,
            "instructions": version.instructions,
            "model_alias": version.model_alias,
            "tools": [str(t.pk) for t in version.tools.all()],
            "scopes": " ".join(version.scopes),
            "max_steps": version.max_steps,
            "max_tokens_per_request": version.max_tokens_per_request,
            "temperature": version.temperature,
        }


class TryItForm(forms.Form):
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Please refund order A-1001 and email the customer"})
    )
    end_user_id = forms.CharField(max_length=200, required=False, label="End user id (optional)")
    session_id = forms.CharField(max_length=200, required=False, label="Session id (optional)")


class ToolForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="What the model calls it: letters, digits, _ and -.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    parameters = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "code"}),
        initial='{\n  "type": "object",\n  "properties": {},\n  "required": []\n}',
        help_text="JSON Schema of the arguments (an object schema).",
    )
    risk = forms.ChoiceField(choices=Tool.Risk.choices)
    required_scope = forms.CharField(max_length=64, required=False, help_text="A scope the agent must hold.")
    executor = forms.ChoiceField(choices=Tool.Executor.choices)
    webhook_url = forms.CharField(max_length=200, required=False, help_text="HTTPS; for webhook tools.")
    timeout_seconds = forms.FloatField(initial=10.0, min_value=0.1)
    builtin = forms.ChoiceField(
        choices=[("", "—"), *[(name, name) for name in BUILTIN_TOOLS]], required=False, help_text="For built-in tools."
    )
    rotate_secret = forms.BooleanField(required=False, label="Generate a new webhook signing secret")

    def clean_parameters(self) -> Any:
        try:
            return json.loads(self.cleaned_data["parameters"])
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}.") from exc

    @classmethod
    def initial_for(cls, tool: Tool) -> dict[str, Any]:
        return {
            "name": tool.name,
            "description": tool.description,
            "parameters": json.dumps(tool.parameters, indent=2),
            "risk": tool.risk,
            "required_scope": tool.required_scope,
            "executor": tool.executor,
            "webhook_url": tool.webhook_url,
            "timeout_seconds": tool.timeout_seconds,
            "builtin": tool.builtin,
        }
