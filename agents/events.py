"""Live events of the run engine, pushed to the tenant's websocket group after commit."""

from __future__ import annotations

from typing import Literal, TypedDict

from agents.models import Run
from tenants.events import send_after_commit


class RunChanged(TypedDict):
    """A run's status changed or it committed a step; pages showing it re-render its row or detail."""

    type: Literal["run.changed"]
    run_id: str
    status: str


def run_changed(run: Run) -> None:
    """Tell the tenant's live pages that `run` changed (now in `run.status`), once the transaction
    commits (a rolled-back change must not be announced)."""
    send_after_commit(run.tenant, RunChanged(type="run.changed", run_id=str(run.pk), status=run.status))
