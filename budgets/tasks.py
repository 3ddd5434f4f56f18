"""Celery tasks of budgets: release reservations whose client never settled them, and deliver
alerts by email and signed webhook."""

from __future__ import annotations

import logging
from smtplib import SMTPException

import httpx
from celery import shared_task

from budgets.models import BudgetAlert
from budgets.services import budget_alert_email, budget_alert_webhook, budget_expire_stale
from tenants.models import Tenant
from tenants.webhooks import WebhookFailedError

logger = logging.getLogger(__name__)


@shared_task(name="budgets.tasks.expire_stale_reservations", ignore_result=True)
def expire_stale_reservations() -> int:
    """Release every open reservation past its TTL (beat, every BUDGET_EXPIRE_INTERVAL_SECONDS)."""
    expired = budget_expire_stale()
    if expired:
        logger.info("expired %d stale budget reservations", expired)
    return expired


@shared_task(
    name="budgets.tasks.email_budget_alert",
    ignore_result=True,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=True,
    max_retries=6,
)
def email_budget_alert(tenant_id: str, alert_id: str) -> None:
    """Email one budget alert (retried with backoff when the mail server fails)."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    alert = (
        BudgetAlert.objects.for_tenant(tenant).select_related("budget", "tenant").filter(pk=alert_id).first()
        if tenant is not None
        else None
    )
    if alert is None:
        logger.warning("email_budget_alert: no alert %s in tenant %s", alert_id, tenant_id)
        return
    budget_alert_email(alert=alert)


@shared_task(
    name="budgets.tasks.deliver_budget_alert_webhook",
    ignore_result=True,
    autoretry_for=(WebhookFailedError, httpx.HTTPError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def deliver_budget_alert_webhook(tenant_id: str, alert_id: str) -> None:
    """POST one budget alert to its budget's webhook, signed (retried with backoff, up to 8 times,
    while the receiver fails; each attempt is counted on the alert)."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    alert = (
        BudgetAlert.objects.for_tenant(tenant).select_related("budget", "tenant").filter(pk=alert_id).first()
        if tenant is not None
        else None
    )
    if alert is None:
        logger.warning("deliver_budget_alert_webhook: no alert %s in tenant %s", alert_id, tenant_id)
        return
    budget_alert_webhook(alert=alert)
