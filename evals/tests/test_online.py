"""Online evals: a deterministic share of finished production runs is scored by the judge, once
each, never eval cases; a drop of the pass rate beyond the threshold raises one alert per window,
audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents import runtime
from agents.models import Agent, Run
from evals import online, selectors
from evals.models import OnlineEval, OnlineScore, QualityAlert
from tenants.audit import Actor
from tenants.errors import FieldError
from tenants.models import AuditEvent
from tenants.testing import Cast

pytestmark = pytest.mark.django_db


def support(cast: Cast) -> Agent:
    return Agent.objects.for_tenant(cast.acme).select_related("current_version").get(name="Support agent")


def production_run(cast: Cast, text: str, metadata: dict[str, Any] | None = None) -> Run:
    agent = support(cast)
    assert agent.current_version is not None
    run = Run.objects.create(
        tenant=cast.acme, agent=agent, agent_version=agent.current_version, input=text, metadata=metadata or {}
    )
    return runtime.execute(run)


def configure(cast: Cast, rate: float, **extra: Any) -> OnlineEval:
    config = online.online_eval_configure(
        actor=Actor(user=cast.alice), tenant=cast.acme, agent=support(cast), sample_rate=rate, **extra
    )
    OnlineEval.objects.filter(pk=config.pk).update(scanned_until=timezone.now() - timedelta(hours=1))
    config.refresh_from_db()
    return config


def test_sampled_runs_are_scored_once_and_eval_cases_never(cast: Cast) -> None:
    config = configure(cast, 1.0)
    good = production_run(cast, "Where is order A-1001?")
    bad = production_run(cast, "Where is order A-9999?")
    case_like = production_run(cast, "Where is order A-1003?", metadata={"eval_result": "x"})
    assert online.score_config(config) == 2
    scores = {s.run_id: s for s in OnlineScore.objects.for_tenant(cast.acme)}
    assert set(scores) == {good.pk, bad.pk} and case_like.pk not in scores
    assert scores[good.pk].passed is True and scores[good.pk].score == 1.0
    assert scores[bad.pk].passed is False and "could not" in scores[bad.pk].reason
    assert scores[good.pk].model_id == "demo-support-2025-06-01" and scores[good.pk].cost_micros > 0
    # The next sweep scores only what finished since.
    config.refresh_from_db()
    assert online.score_config(config) == 0
    series = selectors.quality_series(tenant=cast.acme)
    assert series == [
        {
            "agent": "Support agent",
            "model": "demo-support-2025-06-01",
            "day": timezone.now().date().isoformat(),
            "pass_rate": 0.5,
            "mean_score": 0.5,
            "scored": 2,
        }
    ]


def test_sampling_is_deterministic_at_the_configured_rate() -> None:
    ids = [f"run-{i}" for i in range(2000)]
    picked = [i for i in ids if online.sampled(i, 0.25)]
    assert 400 < len(picked) < 600
    assert picked == [i for i in ids if online.sampled(i, 0.25)]
    assert not any(online.sampled(i, 0.0) for i in ids) and all(online.sampled(i, 1.0) for i in ids)


def test_a_drop_beyond_the_threshold_raises_one_alert_per_window(cast: Cast) -> None:
    config = configure(cast, 1.0, alert_drop=0.3, window_hours=1)
    now = timezone.now()
    runs = [production_run(cast, "Where is order A-1001?") for _ in range(10)]
    for index, run in enumerate(runs):
        earlier = index < 5
        Run.objects.filter(pk=run.pk).update(finished_at=now - timedelta(minutes=90 if earlier else 10))
        OnlineScore.objects.create(
            tenant=cast.acme, agent=config.agent, run=run, model_id="m", score=1.0 if earlier else 0.0, passed=earlier
        )
    alert = online.check_drop(config, now=now)
    assert alert is not None
    assert (alert.previous_pass_rate, alert.pass_rate) == (1.0, 0.0)
    assert "fell from 100% to 0%" in alert.message
    assert AuditEvent.objects.filter(tenant=cast.acme, action="evals.quality_alert").count() == 1
    assert online.check_drop(config, now=now) is None
    assert QualityAlert.objects.for_tenant(cast.acme).count() == 1


def test_too_few_scores_or_a_small_drop_raise_nothing(cast: Cast) -> None:
    config = configure(cast, 1.0, alert_drop=0.5, window_hours=1)
    now = timezone.now()
    for index in range(10):
        run = production_run(cast, "Where is order A-1001?")
        Run.objects.filter(pk=run.pk).update(finished_at=now - timedelta(minutes=90 if index < 5 else 10))
        # 100 % before, 60 % now: a 40-point drop, under the 50-point threshold.
        OnlineScore.objects.create(
            tenant=cast.acme, agent=config.agent, run=run, model_id="m", passed=index not in (5, 6)
        )
    assert online.check_drop(config, now=now) is None


def test_the_configuration_is_checked(cast: Cast) -> None:
    with pytest.raises(FieldError, match="sample_rate"):
        online.online_eval_configure(actor=Actor(user=cast.alice), tenant=cast.acme, agent=support(cast), sample_rate=2)
    globex_agent = Agent.objects.for_tenant(cast.globex).get(name="Support agent")
    with pytest.raises(FieldError, match="agent"):
        online.online_eval_configure(
            actor=Actor(user=cast.alice), tenant=cast.acme, agent=globex_agent, sample_rate=0.5
        )
