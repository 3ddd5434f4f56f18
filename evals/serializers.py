"""API shapes of evals. Input serializers check types; services decide (and validate assertions)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from evals.models import Case, EvalResult, EvalRun, Review, Suite
from evals.services import MAX_RUN_BUDGET_MICROS
from tenants import strict


class SuiteSerializer(strict.ModelSerializer):
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    case_count = serializers.SerializerMethodField()

    def get_case_count(self, suite: Suite) -> int:
        annotated = getattr(suite, "case_count", None)
        return annotated if annotated is not None else suite.cases.count()

    class Meta:
        model = Suite
        fields = [
            "id",
            "name",
            "description",
            "tags",
            "agent",
            "agent_name",
            "tolerance",
            "gates_pin_changes",
            "run_budget_micros",
            "fixtures",
            "baseline",
            "case_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SuiteWriteSerializer(strict.Serializer):
    name = serializers.CharField(max_length=100)
    agent = serializers.CharField(help_text="The agent's id or name.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)
    tolerance = serializers.FloatField(required=False, min_value=0, max_value=1)
    gates_pin_changes = serializers.BooleanField(required=False)
    run_budget_micros = serializers.IntegerField(required=False, min_value=1, max_value=MAX_RUN_BUDGET_MICROS)
    fixtures = serializers.JSONField(
        required=False, help_text='The sandbox\'s starting state: {"orders": [...]}; {} for the demo orders.'
    )


class CaseSerializer(strict.ModelSerializer):
    class Meta:
        model = Case
        fields = [
            "id",
            "suite",
            "name",
            "input",
            "end_user_id",
            "session_id",
            "context",
            "expected_output",
            "critical",
            "tags",
            "assertions",
            "tool_results",
            "approval",
            "source_run",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CaseWriteSerializer(strict.Serializer):
    """Types only; the service validates assertions, tool results and the rest."""

    input = serializers.CharField(trim_whitespace=False)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    end_user_id = serializers.CharField(required=False, allow_blank=True, max_length=200)
    session_id = serializers.CharField(required=False, allow_blank=True, max_length=200)
    expected_output = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    critical = serializers.BooleanField(required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)
    assertions = serializers.JSONField(required=False)
    tool_results = serializers.JSONField(required=False)
    approval = serializers.ChoiceField(choices=Case.Approval.choices, required=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        # A case's `context` field cannot be declared as a class attribute: it would shadow the
        # serializer's own `context`.
        fields = super().get_fields()
        fields["context"] = serializers.JSONField(required=False)
        return fields


class ImportSerializer(strict.Serializer):
    jsonl = serializers.CharField(trim_whitespace=False, help_text="One case object per line.")


class StartRunSerializer(strict.Serializer):
    model = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="An exact model id (or the model's id) to evaluate instead of the pinned one.",
    )


class ResultSerializer(strict.ModelSerializer):
    case_name = serializers.CharField(source="label", read_only=True)
    input = serializers.SerializerMethodField()
    run_link = serializers.SerializerMethodField()
    trace_link = serializers.SerializerMethodField()

    def get_input(self, result: EvalResult) -> str:
        return str(result.case_snapshot.get("input", ""))

    def get_run_link(self, result: EvalResult) -> str | None:
        return f"/api/v1/runs/{result.run_id}" if result.run_id else None

    def get_trace_link(self, result: EvalResult) -> str | None:
        return f"/api/v1/traces/{result.trace_id}" if result.trace_id else None

    class Meta:
        model = EvalResult
        fields = [
            "id",
            "position",
            "case",
            "case_name",
            "input",
            "critical",
            "status",
            "run",
            "run_status",
            "run_link",
            "trace_id",
            "trace_link",
            "output",
            "verdicts",
            "tool_calls",
            "sandbox",
            "judge_score",
            "judge_passed",
            "judge_reason",
            "input_tokens",
            "output_tokens",
            "cost_micros",
            "judge_cost_micros",
            "latency_ms",
            "error",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class EvalRunSerializer(strict.ModelSerializer):
    suite_name = serializers.CharField(source="suite.name", read_only=True)
    model_id = serializers.CharField(source="model.model_id", read_only=True)
    agent_version = serializers.IntegerField(source="agent_version.number", read_only=True)
    progress = serializers.SerializerMethodField()

    def get_progress(self, eval_run: EvalRun) -> dict[str, int]:
        return {"completed": eval_run.completed_cases, "total": eval_run.total_cases}

    class Meta:
        model = EvalRun
        fields = [
            "id",
            "suite",
            "suite_name",
            "agent_version",
            "model_id",
            "candidate",
            "pin_change",
            "trigger",
            "status",
            "progress",
            "total_cases",
            "completed_cases",
            "passed_cases",
            "errored_cases",
            "pass_rate",
            "mean_score",
            "p50_latency_ms",
            "p95_latency_ms",
            "budget_micros",
            "spent_micros",
            "fixtures",
            "accepted",
            "error_message",
            "started_by_label",
            "created_at",
            "started_at",
            "finished_at",
            "cancel_requested_at",
        ]
        read_only_fields = fields


class EvalRunDetailSerializer(EvalRunSerializer):
    results = serializers.SerializerMethodField()
    comparison = serializers.SerializerMethodField()

    def get_results(self, eval_run: EvalRun) -> list[dict[str, Any]]:
        from evals.selectors import results_of

        return list(ResultSerializer(results_of(eval_run=eval_run), many=True).data)

    def get_comparison(self, eval_run: EvalRun) -> dict[str, Any] | None:
        from evals.selectors import baseline_for, compare

        baseline = baseline_for(eval_run.suite)
        if baseline is None or baseline.pk == eval_run.pk:
            return None
        return compare(eval_run, baseline).as_dict()

    class Meta(EvalRunSerializer.Meta):
        fields = [*EvalRunSerializer.Meta.fields, "results", "comparison"]
        read_only_fields = fields


class ReviewSerializer(strict.ModelSerializer):
    class Meta:
        model = Review
        fields = ["id", "result", "run", "score", "comment", "reviewer_label", "created_at"]
        read_only_fields = fields


class ReviewWriteSerializer(strict.Serializer):
    result = serializers.CharField(required=False, help_text="An eval result's id.")
    run = serializers.CharField(required=False, help_text="A production run's id.")
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class FromTraceSerializer(strict.Serializer):
    trace_id = serializers.CharField(max_length=64, help_text="The trace's id (32 hex digits).")


class OverrideSerializer(strict.Serializer):
    reason = serializers.CharField(max_length=5000)
