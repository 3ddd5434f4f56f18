"""Live events of budgets, pushed to the tenant's websocket group after commit."""

from __future__ import annotations

from typing import Literal, TypedDict

from budgets.models import BudgetAlert
from tenants.events import send_after_commit
from tenants.models import Tenant


class BudgetAlertEvent(TypedDict):
    """A budget crossed a threshold: every console page of the tenant may show a banner."""

    type: Literal["budget.alert"]
    alert_id: str
    budget_id: str
    budget_name: str
    threshold: int
    scope_value: str
    used: int
    limit: int
    unit: str


class BudgetsChanged(TypedDict):
    """A budget was created, edited or deleted."""

    type: Literal["budgets.changed"]


def send_budget_alert(alert: BudgetAlert) -> None:
    send_after_commit(
        alert.tenant,
        BudgetAlertEvent(
            type="budget.alert",
            alert_id=str(alert.pk),
            budget_id=str(alert.budget_id),
            budget_name=alert.budget.name,
            threshold=alert.threshold,
            scope_value=alert.scope_value,
            used=alert.used,
            limit=alert.limit,
            unit=alert.budget.unit,
        ),
    )


def send_budgets_changed(tenant: Tenant) -> None:
    send_after_commit(tenant, BudgetsChanged(type="budgets.changed"))
