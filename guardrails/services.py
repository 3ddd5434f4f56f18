"""Guardrail policies, settings and checks.

    guardrail_check(tenant=…, stage="input", text="…", agent=…) -> CheckResult

A check runs the agent's effective rules (the tenant's policy, with the stages the agent's
override defines replaced by the override's rules) on the content, and records a GuardrailEvent
for every verdict that does something (flag, redact, require approval, block); a check inside a
run also becomes a `guardrail` span of the run's trace. The tenant's reviewer feedback set
(feedback_mark, feedback_remove, feedback_export; matching in guardrails.feedback) is applied to
every check after the rules.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.models import Agent, AgentVersion, AgentVersionTool, Run, Tool
from guardrails import detectors, events, feedback
from guardrails.checks import (
    DEFAULT_RULES,
    CheckResult,
    RuleFinding,
    ToolContext,
    as_text,
    evaluate,
    rule_problems,
    signals,
)
from guardrails.detectors import pii, secrets
from guardrails.detectors.redaction import label
from guardrails.detectors.tool_scope import ToolGrant
from guardrails.models import EVENT_TEXT_CHARS, STAGES, GuardrailEvent, GuardrailFeedback, GuardrailSettings, Policy
from tenants import cache as config_cache
from tenants.audit import Actor
from tenants.errors import FieldError, ServiceError
from tenants.models import ApiKey, Tenant
from tenants.services import audit_record

logger = logging.getLogger(__name__)

MAX_RULES = 50
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_TEXT_CHARS = 200_000


# --- Policies ----------------------------------------------------------------------------------


def policy_ensure_default(*, tenant: Tenant) -> Policy:
    """The tenant's policy, created with the default rules on first use (idempotent)."""
    found = Policy.objects.for_tenant(tenant).filter(agent__isnull=True).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Policy.objects.create(tenant=tenant, rules=[dict(rule) for rule in DEFAULT_RULES])
    except IntegrityError:  # created meanwhile by a concurrent first use
        return Policy.objects.for_tenant(tenant).get(agent__isnull=True)


def validated_rules(rules: Any) -> list[dict[str, Any]]:
    """`rules` normalised ({stage, detector, parameters, action}), or FieldError("rules", …)
    naming the first bad rule by its position (1-based) and field."""
    if not isinstance(rules, list):
        raise FieldError("rules", "a list of rules")
    if len(rules) > MAX_RULES:
        raise FieldError("rules", f"at most {MAX_RULES} rules")
    clean = []
    for position, rule in enumerate(rules, start=1):
        if problems := rule_problems(rule):
            field, message = next(iter(problems.items()))
            raise FieldError("rules", f"rule {position}, {field}: {message}")
        clean.append(
            {
                "stage": rule["stage"],
                "detector": rule["detector"],
                "parameters": dict(rule.get("parameters") or {}),
                "action": rule["action"],
            }
        )
    return clean


def policy_update(*, actor: Actor, tenant: Tenant, rules: Any, agent: Agent | None = None) -> Policy:
    """Replace the rules of the tenant's policy, or of `agent`'s override (created when missing),
    audited. FieldError("rules", …) when a rule is unusable."""
    clean = validated_rules(rules)
    if agent is not None and agent.tenant_id != tenant.pk:
        raise ServiceError("The agent belongs to another tenant.")
    with transaction.atomic():
        if agent is None:
            policy = policy_ensure_default(tenant=tenant)
            policy = Policy.objects.for_tenant(tenant).select_for_update().get(pk=policy.pk)
        else:
            policy, _ = (
                Policy.objects.for_tenant(tenant)
                .select_for_update()
                .get_or_create(tenant=tenant, agent=agent, defaults={"rules": []})
            )
        before = list(policy.rules)
        policy.rules = clean
        policy.updated_by = actor.user
        policy.updated_at = timezone.now()
        policy.save(update_fields=["rules", "updated_by", "updated_at"])
        audit_record(
            tenant=tenant,
            actor=actor,
            action="guardrails.policy_update",
            target=policy,
            target_label=f"guardrail policy of {agent.name if agent else 'the tenant'}",
            before={"rules": before},
            after={"rules": clean},
        )
        events.send_guardrails_changed(tenant)
    return policy


def policy_delete(*, actor: Actor, policy: Policy) -> None:
    """Remove an agent's override (the agent falls back to the tenant's policy), audited. The
    tenant's own policy cannot be deleted, only edited."""
    if policy.agent_id is None:
        raise ServiceError("The tenant's policy cannot be deleted; edit its rules instead.")
    with transaction.atomic():
        audit_record(
            tenant=policy.tenant,
            actor=actor,
            action="guardrails.policy_delete",
            target=policy,
            before={"rules": policy.rules},
        )
        policy.delete()
        events.send_guardrails_changed(policy.tenant)


def effective_rules(*, tenant: Tenant, agent: Agent | None = None, agent_id: Any = None) -> list[dict[str, Any]]:
    """The rules that apply to `agent` (or `agent_id`; neither: no agent): the tenant's, except
    the stages the agent's override has rules for, which come from the override. From the
    configuration cache (tenants.cache), else two queries. The rules are shared: never mutate them."""
    agent_id = agent.pk if agent is not None else agent_id
    return list(
        config_cache.cached("effective_rules", (tenant.pk, agent_id), lambda: _effective_rules(tenant, agent_id))
    )


def _effective_rules(tenant: Tenant, agent_id: Any) -> list[dict[str, Any]]:
    base = policy_ensure_default(tenant=tenant).rules
    if agent_id is None:
        return list(base)
    override = Policy.objects.for_tenant(tenant).filter(agent_id=agent_id).first()
    if override is None:
        return list(base)
    replaced = override.stages
    return [rule for rule in base if rule["stage"] not in replaced] + list(override.rules)


# --- Settings and trace redaction ----------------------------------------------------------------


def settings_for(tenant: Tenant) -> GuardrailSettings:
    found, _ = GuardrailSettings.objects.get_or_create(tenant=tenant)
    return found


def guardrail_settings_update(*, actor: Actor, tenant: Tenant, redact_traces: bool) -> GuardrailSettings:
    """Turn redaction of trace payloads at ingestion on or off, audited."""
    if not isinstance(redact_traces, bool):
        raise FieldError("redact_traces", "true or false")
    with transaction.atomic():
        found = settings_for(tenant)
        before = found.redact_traces
        found.redact_traces = redact_traces
        found.updated_at = timezone.now()
        found.save(update_fields=["redact_traces", "updated_at"])
        audit_record(
            tenant=tenant,
            actor=actor,
            action="guardrails.settings_update",
            target=found,
            before={"redact_traces": before},
            after={"redact_traces": redact_traces},
        )
    return found


def redact_text(text: str) -> str:
    """`text` with personal data and secrets masked (no policy involved)."""
    if not text or not text.strip():
        return text
    return detectors.redact(text, pii.detect(text) + secrets.detect(text))


def redacts_traces(tenant: Tenant) -> bool:
    """The tenant's "redact personal data and secrets from traces" setting, from the configuration
    cache (tenants.cache), else one query."""
    return bool(config_cache.cached("redact_traces", tenant.pk, lambda: settings_for(tenant).redact_traces))


def trace_redactor(*, tenant: Tenant) -> Callable[[str], str]:
    """What redact_for_trace does, with the tenant's setting read once: for a whole ingest batch
    (about 0.1 ms for a short payload, 0.4 ms for 2 KB of text)."""
    if not redacts_traces(tenant):
        return lambda text: text
    return redact_text


def redact_for_trace(*, tenant: Tenant, text: str) -> str:
    """What trace ingestion stores for a payload `text`: masked when the tenant's "redact PII and
    secrets from traces" setting is on (the default), as it is otherwise. One query for the setting."""
    if not text or not redacts_traces(tenant):
        return text
    return redact_text(text)


# --- Checks ----------------------------------------------------------------------------------------


def _tool_context(
    *, tenant: Tenant, tool_name: str, version: AgentVersion | None, api_key: ApiKey | None
) -> ToolContext:
    """The tool (by name) and the grants of the agent version and the API key, for tool_scope. The
    tool and the version's grants from the configuration cache (Tool, AgentVersion and
    AgentVersionTool are watched), else two queries; the key's scopes from `api_key` itself."""
    version_key = version.pk if version is not None else None
    grant, granted, agent_scopes = config_cache.cached(
        "tool_context", (tenant.pk, tool_name, version_key), lambda: _tool_grants(tenant, tool_name, version)
    )
    key_scopes = frozenset(api_key.scopes) if api_key is not None else None
    return ToolContext(grant, tool_name, granted, agent_scopes, key_scopes)


def _tool_grants(
    tenant: Tenant, tool_name: str, version: AgentVersion | None
) -> tuple[ToolGrant | None, frozenset[str] | None, frozenset[str] | None]:
    tool = Tool.objects.for_tenant(tenant).filter(name=tool_name).first()
    grant = ToolGrant(tool.name, tool.required_scope, tool.parameters or {}) if tool is not None else None
    granted = agent_scopes = None
    if version is not None:
        granted = frozenset(
            AgentVersionTool.objects.for_tenant(tenant)
            .filter(agent_version=version)
            .values_list("tool__name", flat=True)
        )
        agent_scopes = frozenset(version.scopes)
    return grant, granted, agent_scopes


def _content(stage: str, text: Any, tool: Any, arguments: Any, result: Any) -> Any:
    """The content a stage checks, or FieldError naming what is missing or malformed."""
    if stage not in detectors.STAGES:
        raise FieldError("stage", f"one of {', '.join(detectors.STAGES)}")
    if stage in ("input", "output"):
        if not isinstance(text, str):
            raise FieldError("text", f"the {stage} stage checks a text: send `text`")
        content: Any = text
    elif stage == "tool_call":
        if not isinstance(tool, str) or not tool.strip():
            raise FieldError("tool", "a tool call names its tool: send `tool`")
        if not isinstance(arguments, dict):
            raise FieldError("arguments", "the call's arguments, a JSON object")
        content = arguments
    else:
        content = result if result is not None else text
        if content is None:
            raise FieldError("text", "the tool_result stage checks the result: send `text` or `result`")
    if len(as_text(content)) > MAX_TEXT_CHARS:
        raise FieldError("text", f"at most {MAX_TEXT_CHARS:,} characters per check")
    return content


def masked_findings(found: list[RuleFinding]) -> list[dict[str, Any]]:
    """Findings as stored and shown outside the check's own answer: a redactable finding's excerpt
    (personal data, a secret) is replaced by its label, and any other excerpt (an injection's
    phrase, the learned model's whole-text finding) has the personal data and secrets inside it
    masked, so events and spans never hold them."""
    out = []
    for item in found:
        row = item.as_dict()
        if item.finding.redactable:
            row["excerpt"] = label(item.finding)
        elif row["excerpt"]:
            row["excerpt"] = storable(redact_text(row["excerpt"]))
        out.append(row)
    return out


def storable(text: str) -> str:
    """`text` as PostgreSQL can store it: a NUL (which text and jsonb refuse) and a lone surrogate
    (which is not UTF-8) become U+FFFD. Checked content comes from models and tools, not only
    from the API's validated strings."""
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub("\ufffd", text)


def masked_text(text: str) -> str:
    """What an event keeps of the checked text: personal data and secrets masked, cut to
    EVENT_TEXT_CHARS (masked with some margin first, so a secret cut in two is still masked)."""
    return storable(redact_text(text[: EVENT_TEXT_CHARS + 200])[:EVENT_TEXT_CHARS])


def guardrail_check(
    *,
    tenant: Tenant,
    stage: str,
    text: str | None = None,
    tool: str | None = None,
    arguments: dict[str, Any] | None = None,
    result: Any = None,
    agent: Agent | None = None,
    api_key: ApiKey | None = None,
    run: Run | None = None,
    source: str = GuardrailEvent.Source.API,
    rules: list[dict[str, Any]] | None = None,
    record: bool = True,
    trace_id: str = "",
) -> CheckResult:
    """Check one stage's content against the agent's effective rules (or `rules`, already
    validated), then applies the tenant's feedback set (guardrails.feedback: a text reviewers
    marked a false positive is let through, a missed attack blocked). FieldError for a malformed
    request. Records a GuardrailEvent when the verdict is not `allow` (unless `record` is False:
    the console's try-it box), with the signals that fired and the text masked, and a guardrail
    span when `run` or `trace_id` (a gateway call's trace) is given. Configuration from the cache
    (one Redis read), else up to four queries; an entry of the feedback set that matched counts
    its hit (one UPDATE)."""
    content = _content(stage, text, tool, arguments, result)
    started_at = timezone.now()
    agent_id = agent.pk if agent is not None else (run.agent_id if run is not None else None)
    # One read of the configuration version for the rules, the tool's grants and the feedback set.
    with config_cache.snapshot():
        applied = rules if rules is not None else effective_rules(tenant=tenant, agent_id=agent_id)
        context = None
        if stage == "tool_call":
            # A run is checked against the version it runs; a bare check against the agent's current one.
            version = run.agent_version if run is not None else (agent.current_version if agent is not None else None)
            context = _tool_context(tenant=tenant, tool_name=str(tool), version=version, api_key=api_key)
        tenant_feedback = feedback_set(tenant=tenant)
    checked = evaluate(applied, stage=stage, content=content, tool=context)
    if tenant_feedback:
        checked = feedback_applied(
            tenant=tenant, checked=checked, stage=stage, content=content, count=record, found=tenant_feedback
        )
    span_id = ""
    trace_id = run.trace_id if run is not None else trace_id
    if trace_id:
        span_id = _record_span(
            tenant=tenant, trace_id=trace_id, run=run, stage=stage, tool=tool, checked=checked, started_at=started_at
        )
    if checked.action != "allow" and record:
        normalised = feedback.normalise(checked.text)
        GuardrailEvent.objects.create(
            tenant=tenant,
            stage=stage,
            action=checked.action,
            reason=checked.reason[:2000],
            detectors=checked.detectors,
            findings=masked_findings(checked.findings)[:50],
            signals=signals(applied, checked, stage=stage),
            text=masked_text(checked.text),
            fingerprint=feedback.fingerprint(normalised),
            sketch=feedback.sketch(normalised),
            source=source,
            agent_id=agent_id,
            run=run,
            tool_name=(tool or "")[:64],
            trace_id=trace_id,
            span_id=span_id,
            api_key=api_key,
            latency_us=checked.latency_us,
        )
        events.send_guardrail_event(tenant, action=checked.action, stage=stage)
    return checked


def _record_span(
    *,
    tenant: Tenant,
    trace_id: str,
    run: Run | None,
    stage: str,
    tool: str | None,
    checked: CheckResult,
    started_at: datetime,
) -> str:
    """The verdict as a `guardrail` span of the call's trace, a child of the current span;
    "" when tracing is not installed or refused it (a check never fails over its span)."""
    try:
        from traces.context import current_span
        from traces.services import span_record
    except ImportError:
        return ""
    parent = current_span.get()
    started = started_at.astimezone(UTC)
    try:
        outcome = span_record(
            tenant=tenant,
            trace_id=trace_id,
            kind="guardrail",
            name=f"guardrail {stage}" + (f" {tool}" if tool else ""),
            started_at=started,
            ended_at=started + timedelta(microseconds=checked.latency_us),
            parent_span_id=parent[1] if parent and parent[0] == trace_id else "",
            status="error" if checked.action == "block" else "ok",
            attributes={
                "guardrail.stage": stage,
                "guardrail.action": checked.action,
                "guardrail.allowed": checked.allowed,
                "guardrail.reason": checked.reason,
                "guardrail.detectors": checked.detectors,
                "guardrail.findings": masked_findings(checked.findings)[:50],
                "guardrail.latency_us": checked.latency_us,
                **({"guardrail.tool": tool} if tool else {}),
            },
            run=run,
        )
    except Exception:
        logger.exception("trace %s: could not record the guardrail span", trace_id)
        return ""
    return str(getattr(outcome, "span_id", "") or "")


# --- Feedback ------------------------------------------------------------------------------------

# Entries per tenant: a check compares its text with every entry of its stage (~1.2 ms of CPU for
# 1,000 and 2 KB of text); a tenant with more should retrain the model with the export instead.
MAX_FEEDBACK = 1_000
MAX_NOTE_CHARS = 500


def feedback_set(*, tenant: Tenant) -> feedback.FeedbackSet:
    """The tenant's feedback entries as guardrails.feedback matches them, from the configuration
    cache (GuardrailFeedback is watched, so a mark or a removal applies to the next check in
    every process), else one query."""
    return config_cache.cached("guardrail_feedback", tenant.pk, lambda: _feedback_set(tenant))


def _feedback_set(tenant: Tenant) -> feedback.FeedbackSet:
    rows = GuardrailFeedback.objects.for_tenant(tenant).values_list(
        "id", "kind", "stage", "fingerprint", "sketch", "detectors"
    )
    return feedback.FeedbackSet.of(
        [
            feedback.Entry(str(pk), kind, stage, fp, tuple(sketch or ()), frozenset(names or ()))
            for pk, kind, stage, fp, sketch, names in rows
        ]
    )


def feedback_applied(
    *,
    tenant: Tenant,
    checked: CheckResult,
    stage: str,
    content: Any,
    count: bool = True,
    found: feedback.FeedbackSet | None = None,
) -> CheckResult:
    """`checked` (a result of checks.evaluate on `content`) with the tenant's feedback set applied,
    for callers that evaluate rules themselves (guardrail_check does this already); an entry
    that changed it counts a hit unless `count` is False. Nothing to do and no query when the
    tenant has no entry at the stage."""
    found = found if found is not None else feedback_set(tenant=tenant)
    if not found:
        return checked
    outcome = feedback.apply(found, checked, stage=stage, content=content)
    if outcome.used and count:
        GuardrailFeedback.objects.for_tenant(tenant).filter(pk__in=outcome.used).update(
            hits=F("hits") + 1, last_matched_at=timezone.now()
        )
    return outcome.result


def _feedback_detectors(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or any(name not in feedback.SUPPRESSIBLE for name in value):
        raise FieldError("detectors", f"a non-empty list from {', '.join(feedback.SUPPRESSIBLE)}")
    return sorted(set(value))


def feedback_mark(
    *,
    actor: Actor,
    tenant: Tenant,
    kind: str,
    event: GuardrailEvent | None = None,
    stage: str | None = None,
    text: str | None = None,
    detectors: list[str] | None = None,
    note: str = "",
) -> GuardrailFeedback:
    """Mark an event's text (or `text` at `stage`) as a false positive or a missed attack, audited;
    it applies from the next check on (guardrails.feedback). Marking a text the set holds already
    replaces its entry. A false positive leaves out the findings of `detectors` (default: those of
    the event's verdict that feedback can override; for a bare text, injection). FieldError for
    what cannot be marked."""
    if kind not in GuardrailFeedback.Kind.values:
        raise FieldError("kind", "false_positive or missed_attack")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise FieldError("note", f"at most {MAX_NOTE_CHARS} characters")
    if event is not None:
        if event.tenant_id != tenant.pk:
            raise ServiceError("The event belongs to another tenant.")
        if not event.fingerprint:
            raise FieldError("event", "this event was recorded before feedback existed; send its stage and text")
        stage, fingerprint, sketch, masked = event.stage, event.fingerprint, list(event.sketch), event.text
        if kind == GuardrailFeedback.Kind.MISSED_ATTACK and event.action == "block":
            raise FieldError("kind", "this event blocked the text already: it is not a missed attack")
        decisive = {f.get("detector") for f in event.findings if f.get("action") == event.action}
        default = sorted(decisive & set(feedback.SUPPRESSIBLE))
    else:
        if stage not in STAGES:
            raise FieldError("stage", f"one of {', '.join(STAGES)}")
        if not isinstance(text, str) or not text.strip():
            raise FieldError("text", "the text to mark")
        if len(text) > MAX_TEXT_CHARS:
            raise FieldError("text", f"at most {MAX_TEXT_CHARS:,} characters")
        normalised = feedback.normalise(text)
        fingerprint, sketch, masked = feedback.fingerprint(normalised), feedback.sketch(normalised), masked_text(text)
        default = ["injection"]
    names: list[str] = []
    if kind == GuardrailFeedback.Kind.FALSE_POSITIVE:
        names = _feedback_detectors(detectors) if detectors is not None else default
        if not names:
            raise FieldError(
                "kind",
                "this verdict came from tool scope, length or format rules, which feedback does not "
                "override: change the policy instead",
            )
    elif detectors is not None:
        raise FieldError("detectors", "only a false positive names the detectors it leaves out")
    with transaction.atomic():
        entries = GuardrailFeedback.objects.for_tenant(tenant).select_for_update()
        found = entries.filter(stage=stage, fingerprint=fingerprint).first()
        before = None
        if found is None:
            if GuardrailFeedback.objects.for_tenant(tenant).count() >= MAX_FEEDBACK:
                raise FieldError("kind", f"the feedback set holds {MAX_FEEDBACK:,} texts already: remove some first")
            found = GuardrailFeedback(tenant=tenant, stage=stage, fingerprint=fingerprint)
        else:
            before = {"kind": found.kind, "detectors": found.detectors, "note": found.note}
        found.kind = kind
        found.sketch = sketch
        found.text = masked
        found.detectors = names
        found.note = note
        found.event = event if event is not None else found.event
        found.created_by = actor.user
        found.created_at = timezone.now()
        found.hits = 0 if before is None or before["kind"] != kind else found.hits
        found.save()
        audit_record(
            tenant=tenant,
            actor=actor,
            action="guardrails.feedback_mark",
            target=found,
            target_label=f"{found.get_kind_display().lower()} at {stage}",
            before=before,
            after={
                "kind": kind,
                "stage": stage,
                "event": str(event.pk) if event is not None else None,
                "detectors": names,
                "note": note,
            },
        )
        events.send_guardrails_changed(tenant)
    return found


def feedback_remove(*, actor: Actor, entry: GuardrailFeedback) -> None:
    """Take an entry out of the tenant's feedback set (checks stop applying it at once), audited."""
    with transaction.atomic():
        audit_record(
            tenant=entry.tenant,
            actor=actor,
            action="guardrails.feedback_remove",
            target=entry,
            target_label=f"{entry.get_kind_display().lower()} at {entry.stage}",
            before={"kind": entry.kind, "stage": entry.stage, "detectors": entry.detectors, "hits": entry.hits},
        )
        entry.delete()
        events.send_guardrails_changed(entry.tenant)


def feedback_export(*, tenant: Tenant) -> Iterator[dict[str, Any]]:
    """The tenant's feedback as training rows (oldest first), for guardrails/training: the masked
    text, its label (benign for a false positive, injection for a missed attack) and the mode the
    injection detector reads that stage in. One query, read in chunks."""
    rows = GuardrailFeedback.objects.for_tenant(tenant).order_by("created_at", "id")
    for entry in rows.iterator(chunk_size=500):
        yield {
            "id": str(entry.pk),
            "text": entry.text,
            "label": entry.label,
            "kind": entry.kind,
            "stage": entry.stage,
            "mode": "indirect" if entry.stage == "tool_result" else "direct",
            "detectors": entry.detectors,
            "note": entry.note,
            "event": str(entry.event_id) if entry.event_id else None,
            "created_at": entry.created_at.isoformat(),
        }


def guardrail_texts_erase(*, tenant: Tenant, run_ids: list[Any], trace_ids: list[str]) -> int:
    """Forget the checked text kept by the events of these runs or traces (an end user's erasure):
    the masked text, its hash and its sketch are blanked, and so is the masked text of feedback
    entries made from those events (the entries keep their hash and sketch, so reviewers'
    verdicts still apply, and nothing readable). Returns how many events were cleared. Two UPDATEs."""
    events = GuardrailEvent.objects.for_tenant(tenant).filter(
        Q(run_id__in=run_ids) | Q(trace_id__in=[t for t in trace_ids if t])
    )
    GuardrailFeedback.objects.for_tenant(tenant).filter(event__in=events.values("pk")).update(text="")
    return events.exclude(text="", fingerprint="").update(text="", fingerprint="", sketch=[])
