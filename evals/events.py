"""Live events of evals, pushed to the tenant's websocket group after commit."""

from __future__ import annotations

from typing import Literal, TypedDict

from evals.models import EvalRun, QualityAlert
from tenants.events import send_after_commit


class EvalRunChanged(TypedDict):
    """An eval run progressed (a case finished) or changed status; its page redraws its progress."""

    type: Literal["eval_run.changed"]
    eval_run_id: str
    suite_id: str
    status: str
    completed: int
    total: int


class QualityAlertEvent(TypedDict):
    """An agent's online pass rate dropped beyond its threshold: every page may show a banner."""

    type: Literal["evals.quality_alert"]
    alert_id: str
    agent_id: str
    message: str


def send_eval_run_changed(eval_run: EvalRun) -> None:
    send_after_commit(
        eval_run.tenant,
        EvalRunChanged(
            type="eval_run.changed",
            eval_run_id=str(eval_run.pk),
            suite_id=str(eval_run.suite_id),
            status=eval_run.status,
            completed=eval_run.completed_cases,
            total=eval_run.total_cases,
        ),
    )


def send_quality_alert(alert: QualityAlert) -> None:
    send_after_commit(
        alert.tenant,
        QualityAlertEvent(
            type="evals.quality_alert", alert_id=str(alert.pk), agent_id=str(alert.agent_id), message=alert.message
        ),
    )
