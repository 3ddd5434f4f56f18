"""API shapes of agents, tools and runs. Input serializers check types; services decide."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from agents.models import Agent, AgentVersion, Run, Step, Tool
from agents.services import MAX_STEPS_LIMIT, MAX_TEMPERATURE
from catalog.models import MICROS_PER_USD
from tenants import strict


def usd(micros: int) -> str:
    """Micro-USD as a decimal string of dollars ("0.000123"): exact, unlike a float."""
    return str((Decimal(micros) / MICROS_PER_USD).quantize(Decimal("0.000001")))


# --- Tools -------------------------------------------------------------------------------------


class ToolSerializer(strict.ModelSerializer):
    has_signing_secret = serializers.SerializerMethodField()

    class Meta:
        model = Tool
        fields = [
            "id",
            "name",
            "description",
            "parameters",
            "risk",
            "required_scope",
            "executor",
            "webhook_url",
            "timeout_seconds",
            "builtin",
            "has_signing_secret",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_signing_secret(self, tool: Tool) -> bool:
        return bool(tool.webhook_secret_encrypted)


class ToolSavedSerializer(ToolSerializer):
    signing_secret = serializers.CharField(
        read_only=True,
        allow_blank=True,
        help_text="The webhook's HMAC-SHA256 signing secret: in this response only, when one was generated.",
    )

    class Meta(ToolSerializer.Meta):
        fields = [*ToolSerializer.Meta.fields, "signing_secret"]
        read_only_fields = fields


class ToolWriteSerializer(strict.Serializer):
    name = serializers.CharField(max_length=64)
    description = serializers.CharField()
    parameters = serializers.JSONField(help_text="JSON Schema of the arguments (an object schema).")
    executor = serializers.ChoiceField(choices=Tool.Executor.choices)
    risk = serializers.ChoiceField(choices=Tool.Risk.choices, default=Tool.Risk.READ)
    required_scope = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    webhook_url = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    timeout_seconds = serializers.FloatField(required=False, default=10.0)
    builtin = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class ToolUpdateSerializer(ToolWriteSerializer):
    rotate_secret = serializers.BooleanField(
        required=False, default=False, help_text="Generate a new webhook signing secret (returned once)."
    )


# --- Agents ------------------------------------------------------------------------------------


class AgentVersionSerializer(strict.ModelSerializer):
    version = serializers.IntegerField(source="number", read_only=True)
    tools = serializers.SerializerMethodField()
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = AgentVersion
        fields = [
            "version",
            "instructions",
            "model_alias",
            "tools",
            "scopes",
            "max_steps",
            "max_tokens_per_request",
            "temperature",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_tools(self, version: AgentVersion) -> list[str]:
        return [tool.name for tool in version.tools.all()]


class AgentSerializer(strict.ModelSerializer):
    """An agent and its current version, flattened (the version number is `version`)."""

    version = serializers.IntegerField(source="current_version.number", read_only=True, default=None)
    instructions = serializers.CharField(source="current_version.instructions", read_only=True, default="")
    model_alias = serializers.CharField(source="current_version.model_alias", read_only=True, default="")
    tools = serializers.SerializerMethodField()
    scopes = serializers.ListField(
        source="current_version.scopes", child=serializers.CharField(), read_only=True, default=list
    )
    max_steps = serializers.IntegerField(source="current_version.max_steps", read_only=True, default=None)
    max_tokens_per_request = serializers.IntegerField(
        source="current_version.max_tokens_per_request", read_only=True, default=None
    )
    temperature = serializers.FloatField(source="current_version.temperature", read_only=True, default=None)
    updated_at = serializers.DateTimeField(source="current_version.created_at", read_only=True, default=None)
    versions_url = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "archived",
            "version",
            "instructions",
            "model_alias",
            "tools",
            "scopes",
            "max_steps",
            "max_tokens_per_request",
            "temperature",
            "created_at",
            "updated_at",
            "versions_url",
        ]
        read_only_fields = fields

    def get_tools(self, agent: Agent) -> list[str]:
        version = agent.current_version
        return [tool.name for tool in version.tools.all()] if version is not None else []

    def get_versions_url(self, agent: Agent) -> str:
        return f"/api/v1/agents/{agent.pk}/versions"


class AgentWriteSerializer(strict.Serializer):
    name = serializers.CharField(max_length=100)
    instructions = serializers.CharField(required=False, allow_blank=True, default="")
    model_alias = serializers.SlugField(max_length=64, required=False, default="default")
    tools = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="Tool names or ids."
    )
    scopes = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    max_steps = serializers.IntegerField(min_value=1, max_value=MAX_STEPS_LIMIT, required=False, default=8)
    max_tokens_per_request = serializers.IntegerField(min_value=1, required=False, default=1024)
    temperature = serializers.FloatField(min_value=0, max_value=MAX_TEMPERATURE, required=False, default=0.0)


# --- Runs --------------------------------------------------------------------------------------


class RunCreateSerializer(strict.Serializer):
    agent = serializers.CharField(help_text="The agent's id or name.")
    input = serializers.CharField(trim_whitespace=False)
    end_user_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    session_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)


class RunSerializer(strict.ModelSerializer):
    agent = serializers.SerializerMethodField()
    agent_version = serializers.IntegerField(source="agent_version.number", read_only=True)
    error = serializers.SerializerMethodField()
    cost_usd = serializers.SerializerMethodField()
    is_rehearsal = serializers.BooleanField(read_only=True, help_text="An eval case's run, not production traffic.")

    class Meta:
        model = Run
        fields = [
            "id",
            "agent",
            "agent_version",
            "status",
            "actions_rejected",
            "actions_expired",
            "actions_blocked",
            "is_rehearsal",
            "input",
            "output",
            "error",
            "end_user_id",
            "session_id",
            "metadata",
            "step_count",
            "input_tokens",
            "output_tokens",
            "cost_micros",
            "cost_usd",
            "created_at",
            "started_at",
            "finished_at",
            "cancel_requested_at",
        ]
        read_only_fields = fields

    def get_agent(self, run: Run) -> dict[str, str]:
        return {"id": str(run.agent_id), "name": run.agent.name}

    def get_error(self, run: Run) -> dict[str, str] | None:
        if not run.error_type and not run.error_message:
            return None
        return {"type": run.error_type, "message": run.error_message}

    def get_cost_usd(self, run: Run) -> str:
        return usd(run.cost_micros)


class StepSerializer(strict.ModelSerializer):
    """One step: a model call (exact model id, tokens, cost) or a tool call (name, arguments,
    result). `request` and `response` are what was sent and received, as recorded."""

    arguments = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    cost_usd = serializers.SerializerMethodField()

    class Meta:
        model = Step
        fields = [
            "index",
            "kind",
            "model_id",
            "tool_name",
            "call_id",
            "arguments",
            "result",
            "request",
            "response",
            "input_tokens",
            "output_tokens",
            "cost_micros",
            "cost_usd",
            "latency_ms",
            "error",
            "created_at",
        ]
        read_only_fields = fields

    def get_arguments(self, step: Step) -> Any:
        return step_arguments(step)

    def get_result(self, step: Step) -> Any:
        return step_result(step)

    def get_cost_usd(self, step: Step) -> str:
        return usd(step.cost_micros)


def step_arguments(step: Step) -> Any:
    """A tool step's arguments (None for a model step)."""
    if step.kind != Step.Kind.TOOL or not isinstance(step.request, dict):
        return None
    return step.request.get("arguments", step.request)


def step_result(step: Step) -> Any:
    """A tool step's result (None for a model step)."""
    if step.kind != Step.Kind.TOOL or not isinstance(step.response, dict):
        return None
    return step.response.get("result", step.response)


class RunDetailSerializer(RunSerializer):
    messages = serializers.JSONField(read_only=True)
    steps = StepSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "messages", "steps"]
        read_only_fields = fields
