"""Celery tasks of approvals: the beat sweeps (expire, escalate) and the signed, retried webhooks
(a request's callback, an escalation). Each takes ids and re-fetches through the tenant."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from celery import Task, shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalRequest
from catalog import crypto
from tenants.models import Tenant
from tenants.net import UnsafeUrlError
from tenants.webhooks import WebhookFailedError, post_signed

logger = logging.getLogger(__name__)

WEBHOOK_RETRIES = 8


@shared_task(name="approvals.tasks.expire_due", ignore_result=True)
def expire_due() -> int:
    """Beat: expire pending requests past their expiry (recorded `expired`)."""
    return services.approvals_expire_due()


@shared_task(name="approvals.tasks.escalate_due", ignore_result=True)
def escalate_due() -> int:
    """Beat: escalate pending requests past their rule's share of the timeout."""
    return services.approvals_escalate_due()


def _approval(tenant_id: str, approval_id: str) -> ApprovalRequest | None:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    return (
        ApprovalRequest.objects.for_tenant(tenant)
        .select_related("tenant", "rule", "decided_by")
        .filter(pk=approval_id)
        .first()
    )


def decision_payload(approval: ApprovalRequest) -> dict[str, Any]:
    """What a callback receives: the request's outcome and exactly what was approved."""
    return {
        "id": str(approval.pk),
        "status": approval.status,
        "action": approval.action,
        "arguments": approval.effective_arguments,
        "arguments_hash": approval.effective_hash,
        "edited": approval.is_edited,
        "decided_by": approval.decided_by_label,
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
        "note": approval.decision_note,
    }


@shared_task(
    name="approvals.tasks.deliver_callback",
    bind=True,
    ignore_result=True,
    max_retries=WEBHOOK_RETRIES,
)
def deliver_callback(self: Task[Any, Any], tenant_id: str, approval_id: str) -> None:
    """POST the decision to the request's callback_url, signed with its secret; retried with
    exponential backoff (2, 4, 8 … s) while the receiver fails. Each attempt is counted on the row."""
    approval = _approval(tenant_id, approval_id)
    if approval is None or not approval.callback_url or approval.callback_delivered_at is not None:
        return
    secret = crypto.decrypt(approval.callback_secret_encrypted)
    attempts = approval.callback_attempts + 1
    try:
        post_signed(approval.callback_url, secret, decision_payload(approval), event="approval.decided")
    except UnsafeUrlError as exc:
        _callback_state(approval, attempts=attempts, error=str(exc))
        logger.warning("approval %s: callback refused: %s", approval_id, exc)
        return
    except (WebhookFailedError, httpx.HTTPError) as exc:
        _callback_state(approval, attempts=attempts, error=f"{type(exc).__name__}: {exc}"[:500])
        if self.request.retries >= WEBHOOK_RETRIES:
            logger.error("approval %s: callback failed %d times; giving up", approval_id, attempts)
            return
        raise self.retry(countdown=callback_backoff(self.request.retries), exc=exc) from exc
    _callback_state(approval, attempts=attempts, error="", delivered=True)


def callback_backoff(retries: int) -> float:
    return float(settings.APPROVAL_WEBHOOK_BACKOFF_SECONDS) * (2**retries)


def _callback_state(approval: ApprovalRequest, *, attempts: int, error: str, delivered: bool = False) -> None:
    ApprovalRequest.objects.for_tenant(approval.tenant).filter(pk=approval.pk).update(
        callback_attempts=attempts,
        callback_error=error,
        callback_delivered_at=timezone.now() if delivered else None,
    )


@shared_task(
    name="approvals.tasks.notify_escalation",
    bind=True,
    ignore_result=True,
    max_retries=WEBHOOK_RETRIES,
)
def notify_escalation(self: Task[Any, Any], tenant_id: str, approval_id: str) -> None:
    """Email the tenant's admins (and the rule's addresses) that a request is still waiting, and
    POST the rule's signed escalation webhook. A retry re-sends only the webhook."""
    approval = _approval(tenant_id, approval_id)
    if approval is None or not approval.is_pending:
        return
    if self.request.retries == 0:
        recipients = services.escalation_recipients(approval)
        if recipients:
            link = f"{getattr(settings, 'CONSOLE_BASE_URL', '')}/t/{approval.tenant.slug}/approvals/{approval.pk}/"
            send_mail(
                subject=f"[{approval.tenant.name}] Approval waiting: {approval.action} ({approval.risk})",
                message=(
                    f"An approval request has waited {int(services.waited_seconds(approval))} s and expires at "
                    f"{approval.expires_at:%Y-%m-%d %H:%M:%S} UTC.\n\nAction: {approval.action}\n"
                    f"Reason: {approval.get_reason_display()}\nRisk: {approval.get_risk_display()}\n\n{link}\n"
                ),
                from_email=None,
                recipient_list=recipients,
            )
    rule = approval.rule
    if rule is None or not rule.escalation_webhook_url:
        return
    payload = {
        "id": str(approval.pk),
        "tenant": approval.tenant.slug,
        "status": approval.status,
        "action": approval.action,
        "risk": approval.risk,
        "reason": approval.reason,
        "created_at": approval.created_at.isoformat(),
        "expires_at": approval.expires_at.isoformat(),
    }
    try:
        post_signed(
            rule.escalation_webhook_url,
            crypto.decrypt(rule.escalation_webhook_secret_encrypted),
            payload,
            event="approval.escalated",
        )
    except UnsafeUrlError as exc:
        logger.warning("approval %s: escalation webhook refused: %s", approval_id, exc)
    except (WebhookFailedError, httpx.HTTPError) as exc:
        if self.request.retries >= WEBHOOK_RETRIES:
            logger.error("approval %s: escalation webhook failed; giving up", approval_id)
            return
        raise self.retry(countdown=callback_backoff(self.request.retries), exc=exc) from exc
