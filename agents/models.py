"""Agents (versioned), tools, runs and their persisted steps, and the demo tables the built-in
tools act on."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.timezone import now

from tenants.ids import new_id
from tenants.models import ApiKey, TenantOwned, User


class Tool(TenantOwned):
    """Something an agent may call: a JSON-Schema-described action run by a webhook or a built-in."""

    class Risk(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        IRREVERSIBLE = "irreversible", "Irreversible"

    class Executor(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (HTTPS POST)"
        BUILTIN = "builtin", "Built-in demo tool"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    name = models.CharField(max_length=64, help_text="What the model calls it: letters, digits, _ and -.")
    description = models.TextField()
    parameters = models.JSONField(default=dict, help_text="JSON Schema of the arguments.")
    risk = models.CharField(max_length=16, choices=Risk.choices, default=Risk.READ)
    required_scope = models.CharField(max_length=64, blank=True, help_text="A scope the agent must hold.")
    executor = models.CharField(max_length=16, choices=Executor.choices)
    webhook_url = models.URLField(blank=True)
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    timeout_seconds = models.FloatField(default=10.0)
    builtin = models.CharField(max_length=64, blank=True, help_text="Name of the built-in implementation.")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="tool_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def has_side_effects(self) -> bool:
        return self.risk != self.Risk.READ


class Agent(TenantOwned):
    """A named agent; what it does is its current version, and every edit makes a new one."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    name = models.CharField(max_length=100)
    current_version = models.ForeignKey(
        "AgentVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="agent_unique_name")]

    def __str__(self) -> str:
        return self.name


class AgentVersion(TenantOwned):
    """An immutable configuration of an agent; a run keeps the version it started with."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    instructions = models.TextField(blank=True)
    model_alias = models.SlugField(max_length=64, default="default")
    tools = models.ManyToManyField(Tool, blank=True, related_name="agent_versions", through="AgentVersionTool")
    scopes = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    max_steps = models.PositiveSmallIntegerField(default=8)
    max_tokens_per_request = models.PositiveIntegerField(default=1024)
    temperature = models.FloatField(default=0.0)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [models.UniqueConstraint(fields=["agent", "number"], name="agentversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.agent.name} v{self.number}"


class AgentVersionTool(TenantOwned):
    """A tool granted to an agent version (an explicit table, so it carries its tenant too)."""

    agent_version = models.ForeignKey(AgentVersion, on_delete=models.CASCADE, related_name="+")
    tool = models.ForeignKey(Tool, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent_version", "tool"], name="agentversiontool_unique")]

    def __str__(self) -> str:
        return f"{self.tool_id} in {self.agent_version_id}"


class Run(TenantOwned):
    """One execution of an agent version on an input, stepped by Celery workers."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        BUDGET_EXCEEDED = "budget_exceeded", "Budget exceeded"
        BLOCKED = "blocked", "Blocked by a guardrail"

    FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "budget_exceeded", "blocked"})

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="runs")
    agent_version = models.ForeignKey(AgentVersion, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.QUEUED, db_index=True)
    input = models.TextField()
    end_user_id = models.CharField(max_length=200, blank=True, db_index=True)
    session_id = models.CharField(max_length=200, blank=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The conversation so far (provider-neutral messages), persisted after every step.
    messages = models.JSONField(default=list, blank=True)
    output = models.TextField(blank=True)
    error_type = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    step_count = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_micros = models.PositiveBigIntegerField(default=0)
    # Tool calls the model asked for that did not happen, counted when the run ends (`action_counts`):
    # a run may succeed with a refund a reviewer rejected, and the list must say so.
    actions_rejected = models.PositiveIntegerField(default=0)
    actions_expired = models.PositiveIntegerField(default=0)
    actions_blocked = models.PositiveIntegerField(default=0)
    # W3C trace id (32 hex digits): the run's trace, continued across resumptions.
    trace_id = models.CharField(max_length=32, blank=True)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # The worker executing a running run holds a lease it renews while alive (agents/runtime.py);
    # a run whose lease expired lost its worker and may be claimed by another.
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Reviewers' decisions on tool calls that needed approval, by call id: {"approved": bool,
    # "arguments": {...} (edited, optional), "note": str}. Read by the engine when the run resumes.
    approval_decisions = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="run_tenant_time"),
            # Eval rehearsals, which production lists leave out (agents.selectors.rehearsal_runs).
            models.Index(
                fields=["tenant", "id"], condition=models.Q(metadata__has_key="eval_result"), name="run_rehearsal"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.agent_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINAL_STATUSES

    ACTION_COUNT_FIELDS = ("actions_rejected", "actions_expired", "actions_blocked")

    def action_counts(self) -> tuple[int, int, int]:
        """(rejected, expired, blocked) tool calls: reviewers' (or an eval case's) rejections and
        expiries in `approval_decisions` (budget overrides are not tool calls), and the call a
        guardrail blocked when that ended the run."""
        decisions = [
            d
            for key, d in (self.approval_decisions or {}).items()
            if isinstance(d, dict) and not str(key).startswith("budget:") and not d.get("approved")
        ]
        expired = sum(1 for d in decisions if d.get("expired"))
        blocked = int(self.error_type in ("guardrail_tool_call", "guardrail_tool_result"))
        return len(decisions) - expired, expired, blocked

    @property
    def actions_summary(self) -> str:
        """What did not happen, for a status line: "1 action rejected · 2 expired" ("" for none)."""
        parts: list[str] = []
        for count, what in (
            (self.actions_rejected, "rejected"),
            (self.actions_expired, "expired"),
            (self.actions_blocked, "blocked"),
        ):
            if count:
                noun = "" if parts else (" action" if count == 1 else " actions")
                parts.append(f"{count}{noun} {what}")
        return " · ".join(parts)

    @property
    def is_rehearsal(self) -> bool:
        """An eval case's run (a rehearsal), not production traffic."""
        return isinstance(self.metadata, dict) and "eval_result" in self.metadata


class Step(TenantOwned):
    """One persisted step of a run: a model call, or one tool call and its result."""

    class Kind(models.TextChoices):
        MODEL = "model", "Model call"
        TOOL = "tool", "Tool call"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    model_id = models.CharField(max_length=200, blank=True, help_text="The exact model id, never the alias.")
    tool_name = models.CharField(max_length=64, blank=True)
    call_id = models.CharField(max_length=200, blank=True)
    request = models.JSONField(default=dict, blank=True)
    response = models.JSONField(default=dict, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_micros = models.PositiveBigIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="step_unique_index")]

    def __str__(self) -> str:
        return f"step {self.index} ({self.kind}) of {self.run_id}"


class ToolExecution(TenantOwned):
    """The at-most-once record of a side-effecting tool call, keyed on (run, step, call)."""

    class Status(models.TextChoices):
        STARTED = "started", "Started"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tool_executions")
    step_index = models.PositiveIntegerField()
    call_id = models.CharField(max_length=200)
    tool = models.ForeignKey(Tool, on_delete=models.PROTECT, related_name="executions")
    arguments = models.JSONField(default=dict)
    arguments_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTED)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step_index", "call_id"], name="toolexecution_once_per_call")
        ]

    def __str__(self) -> str:
        return f"{self.tool_id} in {self.run_id} step {self.step_index} ({self.status})"


class DemoOrder(TenantOwned):
    """A demo customer order that the built-in tools look up and refund."""

    class Status(models.TextChoices):
        PAID = "paid", "Paid"
        REFUNDED = "refunded", "Refunded"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    number = models.CharField(max_length=32)
    customer_email = models.EmailField()
    item = models.CharField(max_length=200)
    amount_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PAID)
    refunded_at = models.DateTimeField(null=True, blank=True)
    refund_count = models.PositiveIntegerField(default=0, help_text="How often a refund was executed (should be ≤ 1).")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="demoorder_unique_number")]

    def __str__(self) -> str:
        return self.number


class DemoEmail(TenantOwned):
    """A demo email 'sent' by the built-in tool: it lands in this outbox, never on the network."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to = models.EmailField()
    subject = models.CharField(max_length=300)
    body = models.TextField()
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"to {self.to}: {self.subject}"
