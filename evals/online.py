"""Online evals: a per-agent share of finished production runs is scored by the judge on a
schedule, and a drop of the pass rate beyond the agent's threshold raises a quality alert (audited
and pushed live, like a budget alert).

Sampling is deterministic: a run is sampled when the first four bytes of SHA-256(run id), as a
fraction of 2^32, fall under the rate, so a sweep that runs twice samples the same runs, and each
sampled run is scored once (OnlineScore is unique per run). Eval cases' runs are never sampled.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Run, Step
from catalog.clients import ChatClient
from evals import events, judge
from evals.models import OnlineEval, OnlineScore, QualityAlert
from tenants.audit import Actor
from tenants.errors import FieldError
from tenants.models import Tenant
from tenants.services import audit_record

logger = logging.getLogger(__name__)

BATCH = 200
MIN_SCORES_PER_WINDOW = 5


def sampled(run_id: Any, rate: float) -> bool:
    digest = hashlib.sha256(str(run_id).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < rate


@transaction.atomic
def online_eval_configure(
    *,
    actor: Actor,
    tenant: Tenant,
    agent: Any,
    sample_rate: float,
    rubric: str = "",
    pass_threshold: float = 0.5,
    alert_drop: float = 0.2,
    window_hours: int = 24,
    enabled: bool = True,
) -> OnlineEval:
    """Create or change the online eval of `agent` (audited)."""
    if agent.tenant_id != tenant.pk:
        raise FieldError("agent", "no such agent in this tenant.")
    for name, value in (("sample_rate", sample_rate), ("pass_threshold", pass_threshold), ("alert_drop", alert_drop)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise FieldError(name, "a number from 0 to 1.")
    if isinstance(window_hours, bool) or not isinstance(window_hours, int) or not 1 <= window_hours <= 24 * 30:
        raise FieldError("window_hours", "a whole number of hours from 1 to 720.")
    config = OnlineEval.objects.for_tenant(tenant).filter(agent=agent).first()
    before = None
    if config is None:
        config = OnlineEval(tenant=tenant, agent=agent, scanned_until=timezone.now())
    else:
        before = {"sample_rate": config.sample_rate, "enabled": config.enabled}
    config.sample_rate = float(sample_rate)
    config.rubric = rubric.strip() or config.rubric
    config.pass_threshold = float(pass_threshold)
    config.alert_drop = float(alert_drop)
    config.window_hours = window_hours
    config.enabled = enabled
    config.save()
    audit_record(
        tenant=tenant,
        actor=actor,
        action="online_eval.configure",
        target=config,
        before=before,
        after={"agent": str(agent.pk), "sample_rate": config.sample_rate, "enabled": enabled},
    )
    return config


def _model_of(run: Run) -> str:
    step = Step.objects.for_tenant(run.tenant).filter(run=run, kind=Step.Kind.MODEL).order_by("index").first()
    return step.model_id if step is not None else ""


def score_config(config: OnlineEval, *, client: ChatClient | None = None, now: Any = None) -> int:
    """Score the newly finished, sampled runs of one online eval, then check for a drop. Returns
    how many runs were scored."""
    now = now or timezone.now()
    tenant = config.tenant
    since = config.scanned_until or (now - timedelta(hours=config.window_hours))
    runs = list(
        Run.objects.for_tenant(tenant)
        .filter(agent=config.agent, status=Run.Status.SUCCEEDED, finished_at__gt=since, finished_at__lte=now)
        .exclude(metadata__has_key="eval_result")
        .select_related("tenant", "agent")
        .order_by("finished_at")[:BATCH]
    )
    assertion = {
        "type": "judge",
        "rubric": config.rubric,
        "scale": [0.0, 1.0],
        "threshold": config.pass_threshold,
        "model": judge.JUDGE_ALIAS,
    }
    scored = 0
    for run in runs:
        if not sampled(run.pk, config.sample_rate):
            continue
        if OnlineScore.objects.for_tenant(tenant).filter(run=run).exists():
            continue
        row = OnlineScore(tenant=tenant, agent=config.agent, run=run, model_id=_model_of(run))
        try:
            verdict = judge.score(
                run=run, assertion=assertion, case_input=run.input, expected="", output=run.output, client=client
            )
            row.score, row.passed, row.reason, row.cost_micros = (
                verdict.score,
                verdict.passed,
                verdict.reason,
                verdict.cost_micros,
            )
        except judge.JudgeError as exc:
            row.error, row.cost_micros = exc.message, exc.cost_micros
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            continue  # scored meanwhile by a concurrent sweep
        scored += 1
    last = runs[-1].finished_at if len(runs) == BATCH else now
    OnlineEval.objects.for_tenant(tenant).filter(pk=config.pk).update(scanned_until=last)
    check_drop(config, now=now)
    return scored


def _pass_rate(tenant: Tenant, config: OnlineEval, start: Any, end: Any) -> tuple[float | None, int]:
    scores = OnlineScore.objects.for_tenant(tenant).filter(
        agent=config.agent, passed__isnull=False, run__finished_at__gt=start, run__finished_at__lte=end
    )
    total = scores.count()
    if total < MIN_SCORES_PER_WINDOW:
        return None, total
    return scores.filter(passed=True).count() / total, total


@transaction.atomic
def check_drop(config: OnlineEval, *, now: Any = None) -> QualityAlert | None:
    """Compare the last window's pass rate with the window before it; a drop beyond
    `alert_drop` raises one alert per window (audited, pushed live)."""
    now = now or timezone.now()
    window = timedelta(hours=config.window_hours)
    current, _ = _pass_rate(config.tenant, config, now - window, now)
    previous, _ = _pass_rate(config.tenant, config, now - 2 * window, now - window)
    if current is None or previous is None or previous - current <= config.alert_drop:
        return None
    if QualityAlert.objects.for_tenant(config.tenant).filter(agent=config.agent, created_at__gt=now - window).exists():
        return None
    alert = QualityAlert.objects.create(
        tenant=config.tenant,
        agent=config.agent,
        previous_pass_rate=previous,
        pass_rate=current,
        message=(
            f"The online pass rate of {config.agent.name} fell from {previous:.0%} to {current:.0%} over the last "
            f"{config.window_hours} h (alert threshold: a drop of {config.alert_drop:.0%})."
        ),
    )
    audit_record(
        tenant=config.tenant,
        actor=Actor.system_actor("online evals"),
        action="evals.quality_alert",
        target=alert,
        after={"agent": str(config.agent_id), "previous": previous, "now": current},
    )
    events.send_quality_alert(alert)
    return alert


def score_all(*, client: ChatClient | None = None) -> int:
    """Every enabled online eval of every tenant (a system sweep; each is scoped to its tenant)."""
    total = 0
    configs = OnlineEval.objects.across_tenants("beat's sweep of every tenant's online evals")
    for config in configs.filter(enabled=True, sample_rate__gt=0).select_related("tenant", "agent"):
        try:
            total += score_config(config, client=client)
        except Exception:
            logger.exception("online eval %s failed", config.pk)
    return total
