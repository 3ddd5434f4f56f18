"""Eval suites of cases with assertions, eval runs with per-case results and a baseline, the
pin-change gate's overrides, human reviews, and online (production) scoring with its alerts."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.timezone import now

from tenants.ids import new_id
from tenants.models import TenantOwned, User


class Suite(TenantOwned):
    """A named set of cases that say what an agent must do right."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="eval_suites")
    # How far (0-1) the pass rate may fall below the baseline before a pin change is refused.
    tolerance = models.FloatField(default=0.0)
    gates_pin_changes = models.BooleanField(default=True)
    # What one eval run of this suite may spend (model calls of the cases and of the judge).
    run_budget_micros = models.PositiveBigIntegerField(default=1_000_000)
    # The state the built-in tools start from in each case ({"orders": [...]}, evals/sandbox.py);
    # empty: the demo orders as the seed creates them. Never the tenant's live tables.
    fixtures = models.JSONField(default=dict, blank=True)
    # The last accepted run on the current pin: what new runs are compared with.
    baseline = models.ForeignKey("EvalRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="evalsuite_unique_name")]

    def __str__(self) -> str:
        return self.name


class Case(TenantOwned):
    """One input the agent gets, what its answer must satisfy, and how its tools behave in the eval."""

    class Approval(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="cases")
    name = models.CharField(max_length=200, blank=True)
    input = models.TextField()
    end_user_id = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(max_length=200, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="Metadata given to the run.")
    expected_output = models.TextField(blank=True)
    critical = models.BooleanField(default=False)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    assertions = models.JSONField(default=list, blank=True)
    # Tool name -> the result the tool returns in this case instead of running (simulated).
    tool_results = models.JSONField(default=dict, blank=True)
    # What a call that needs a human's approval gets in this case (decided without a reviewer).
    approval = models.CharField(max_length=8, choices=Approval.choices, default=Approval.APPROVE)
    source_run = models.ForeignKey("agents.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["suite", "created_at", "id"]

    def __str__(self) -> str:
        return self.name or self.input[:60]

    @property
    def label(self) -> str:
        return self.name or self.input[:80]


class EvalRun(TenantOwned):
    """One execution of a suite's cases on an agent version and a model (the pin or a candidate)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        BUDGET_EXCEEDED = "budget_exceeded", "Budget exceeded"

    class Trigger(models.TextChoices):
        CONSOLE = "console", "Console"
        API = "api", "API"
        CLI = "cli", "Command line"
        PIN_CHANGE = "pin_change", "Pin change request"
        SEED = "seed", "Demo seed"

    FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "budget_exceeded"})

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="runs")
    agent_version = models.ForeignKey("agents.AgentVersion", on_delete=models.PROTECT, related_name="+")
    model = models.ForeignKey("catalog.LanguageModel", on_delete=models.PROTECT, related_name="+")
    # True when `model` is not what the agent's alias was pinned to at the start (a candidate).
    candidate = models.BooleanField(default=False)
    pin_change = models.ForeignKey(
        "catalog.PinChange", null=True, blank=True, on_delete=models.SET_NULL, related_name="eval_runs"
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.API)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    total_cases = models.PositiveIntegerField(default=0)
    completed_cases = models.PositiveIntegerField(default=0)
    passed_cases = models.PositiveIntegerField(default=0)
    errored_cases = models.PositiveIntegerField(default=0)
    pass_rate = models.FloatField(null=True, blank=True)
    mean_score = models.FloatField(null=True, blank=True)
    p50_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    p95_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # The run's own budget: what it may spend, what it spent and holds reserved (micro-USD).
    budget_micros = models.PositiveBigIntegerField()
    spent_micros = models.PositiveBigIntegerField(default=0)
    reserved_micros = models.PositiveBigIntegerField(default=0)
    budget_exhausted = models.BooleanField(default=False)
    # The sandbox's starting state for every case of this run, copied from the suite at the start.
    fixtures = models.JSONField(default=dict, blank=True)
    accepted = models.BooleanField(default=False, help_text="Accepted as the suite's baseline.")
    error_message = models.TextField(blank=True)
    started_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_by_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"eval run {self.pk} of {self.suite_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def progress_percent(self) -> int:
        return round(100 * self.completed_cases / self.total_cases) if self.total_cases else 100


class EvalResult(TenantOwned):
    """One case's outcome in one eval run: the agent run, every assertion's verdict, the judge's score."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        ERROR = "error", "Error"
        SKIPPED = "skipped", "Skipped"

    FINAL_STATUSES = frozenset({"passed", "failed", "error", "skipped"})

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    eval_run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="results")
    position = models.PositiveIntegerField()
    # The case as it was when the run started (a later edit does not rewrite history).
    case_snapshot = models.JSONField(default=dict)
    critical = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    run = models.ForeignKey("agents.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    trace_id = models.CharField(max_length=32, blank=True)
    run_status = models.CharField(max_length=32, blank=True)
    output = models.TextField(blank=True)
    verdicts = models.JSONField(default=list, blank=True)
    judge_score = models.FloatField(null=True, blank=True)
    judge_passed = models.BooleanField(null=True, blank=True)
    judge_reason = models.TextField(blank=True)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_micros = models.PositiveBigIntegerField(default=0)
    judge_cost_micros = models.PositiveBigIntegerField(default=0)
    # What this case's model calls (the agent's and the judge's) hold on the eval run's budget now:
    # the eval run's reserved_micros is the sum over its results (evals/hooks.py).
    reserved_micros = models.PositiveBigIntegerField(default=0)
    # This case's own copy of the run's fixtures, as its tool calls changed it (evals/sandbox.py);
    # empty until a built-in tool first touches it.
    sandbox = models.JSONField(default=dict, blank=True)
    # Every tool call of the case's run: {"name", "arguments", "result", "error"}, what the
    # comparison matches against the baseline's to tell changed data from a changed model.
    tool_calls = models.JSONField(default=list, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["eval_run", "position"]
        constraints = [models.UniqueConstraint(fields=["eval_run", "position"], name="evalresult_unique_position")]
        indexes = [models.Index(fields=["tenant", "status"], name="evalresult_tenant_status")]

    def __str__(self) -> str:
        return f"result {self.position} of {self.eval_run_id} ({self.status})"

    @property
    def passed(self) -> bool:
        return self.status == self.Status.PASSED

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def label(self) -> str:
        return str(self.case_snapshot.get("name") or str(self.case_snapshot.get("input", ""))[:80])


class GateOverride(TenantOwned):
    """An admin's written decision to let a pin change through although its evals refuse it."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    pin_change = models.ForeignKey("catalog.PinChange", on_delete=models.CASCADE, related_name="eval_overrides")
    # The evidence overridden: suite id -> the id of the run the gate judged (None: not run). An
    # override holds only while the gate judges the same runs; newer evidence needs a new one.
    evidence = models.JSONField(default=dict)
    # What the gate said when it was overridden.
    problems = models.JSONField(default=list)
    reason = models.TextField()
    by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    by_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"override of {self.pin_change_id} by {self.by_label}"


class Review(TenantOwned):
    """A reviewer's score (1-5) and comment on an output: an eval result's or a production run's."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    result = models.ForeignKey(EvalResult, null=True, blank=True, on_delete=models.CASCADE, related_name="reviews")
    run = models.ForeignKey("agents.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)
    reviewer = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reviewer_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=1, score__lte=5), name="review_score_1_to_5"),
            models.CheckConstraint(
                condition=models.Q(result__isnull=False) | models.Q(run__isnull=False), name="review_has_target"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.score}/5 by {self.reviewer_label}"


class OnlineEval(TenantOwned):
    """Per agent: the share of production runs the judge scores on a schedule, and when a drop alerts."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    agent = models.OneToOneField("agents.Agent", on_delete=models.CASCADE, related_name="online_eval")
    sample_rate = models.FloatField(default=0.1)
    rubric = models.TextField(default="The answer addresses the customer's request correctly and politely.")
    pass_threshold = models.FloatField(default=0.5)
    # An alert fires when the pass rate of the last window falls this far below the previous one.
    alert_drop = models.FloatField(default=0.2)
    window_hours = models.PositiveIntegerField(default=24)
    enabled = models.BooleanField(default=True)
    scanned_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return f"online eval of {self.agent_id} at {self.sample_rate:.0%}"


class OnlineScore(TenantOwned):
    """The judge's score of one sampled production run."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    run = models.OneToOneField("agents.Run", on_delete=models.CASCADE, related_name="+")
    model_id = models.CharField(max_length=200)
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    reason = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cost_micros = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"online score of {self.run_id}: {self.score}"


class QualityAlert(TenantOwned):
    """A drop in an agent's online pass rate beyond its threshold (like a budget alert)."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    model_id = models.CharField(max_length=200, blank=True)
    previous_pass_rate = models.FloatField()
    pass_rate = models.FloatField()
    message = models.TextField()
    created_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.message
