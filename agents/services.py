"""Writes to agents, tools and runs. Each service owns its transaction, its audit row (for
configuration changes) and its after-commit effects (the run task, live pushes).

Validation lives here, so the console, the API and the admin refuse the same things with the
same words; a refusal names the field it is about (`FieldError.field`)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from agents import events
from agents.models import Agent, AgentVersion, AgentVersionTool, Run, Tool
from catalog import crypto
from tenants.audit import Actor
from tenants.errors import ConflictError, FieldConflictError, FieldError
from tenants.models import ApiKey, Tenant
from tenants.net import UnsafeUrlError
from tenants.queue import enqueue
from tenants.services import audit_record
from tenants.webhooks import check_webhook_url

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SCOPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")
BUILTIN_TOOLS = ("lookup_order", "refund_order", "send_email")
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a label, not a secret
MAX_TOOL_TIMEOUT_SECONDS = 120.0
MAX_STEPS_LIMIT = 50
MAX_TEMPERATURE = 2.0
MAX_INPUT_CHARS = 100_000
MAX_METADATA_BYTES = 16_384
AGENT_NAME_MAX = 100  # Agent.name
LABEL_MAX = 200  # Run.end_user_id and Run.session_id


# --- Tools -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSaved:
    """A saved tool, and its new webhook signing secret when one was generated (shown once)."""

    tool: Tool
    signing_secret: str = ""


def _check_parameters(parameters: Any) -> dict[str, Any]:
    if not isinstance(parameters, dict):
        raise FieldError("parameters", 'must be a JSON Schema object, e.g. {"type": "object", "properties": {}}.')
    try:
        jsonschema.validators.validator_for(parameters).check_schema(parameters)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise FieldError(
            "parameters", f"is not a valid JSON Schema: {exc.message}" + (f" (at {where})" if where else "")
        ) from exc
    # Model providers describe function arguments as one object; anything else cannot be called.
    if parameters.get("type") != "object":
        raise FieldError("parameters", 'must describe an object: set "type": "object".')
    return parameters


def _tool_state(tool: Tool) -> dict[str, Any]:
    """What the audit log records of a tool; never the signing secret."""
    return {
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
        "risk": tool.risk,
        "required_scope": tool.required_scope,
        "executor": tool.executor,
        "webhook_url": tool.webhook_url,
        "timeout_seconds": tool.timeout_seconds,
        "builtin": tool.builtin,
    }


def _validate_tool(tool: Tool) -> None:
    """Check every field of an unsaved or edited tool; raise FieldError naming the first bad one."""
    if not TOOL_NAME.match(tool.name or ""):
        raise FieldError("name", "use 1 to 64 letters, digits, _ or - (this is what the model calls).")
    if not (tool.description or "").strip():
        raise FieldError("description", "describe what the tool does; the model reads it to decide when to call it.")
    tool.parameters = _check_parameters(tool.parameters)
    if tool.risk not in Tool.Risk.values:
        raise FieldError("risk", f"choose one of {', '.join(Tool.Risk.values)}.")
    if tool.required_scope and not SCOPE_NAME.match(tool.required_scope):
        raise FieldError("required_scope", "use lowercase letters, digits and . _ : - (e.g. orders:refund).")
    if tool.executor == Tool.Executor.WEBHOOK:
        if not tool.webhook_url:
            raise FieldError("webhook_url", "a webhook tool needs the HTTPS URL it is POSTed to.")
        try:
            check_webhook_url(tool.webhook_url, resolve=True)
        except UnsafeUrlError as exc:
            raise FieldError("webhook_url", str(exc)) from exc
        tool.builtin = ""
    elif tool.executor == Tool.Executor.BUILTIN:
        if tool.builtin not in BUILTIN_TOOLS:
            raise FieldError("builtin", f"choose one of the built-in tools: {', '.join(BUILTIN_TOOLS)}.")
        tool.webhook_url = ""
        tool.webhook_secret_encrypted = ""
    else:
        raise FieldError("executor", f"choose one of {', '.join(Tool.Executor.values)}.")
    timeout = tool.timeout_seconds
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TOOL_TIMEOUT_SECONDS:
        raise FieldError("timeout_seconds", f"must be more than 0 and at most {MAX_TOOL_TIMEOUT_SECONDS:g} seconds.")


def _new_signing_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


def tool_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    description: str,
    parameters: Any,
    executor: str,
    risk: str = Tool.Risk.READ,
    required_scope: str = "",
    webhook_url: str = "",
    timeout_seconds: float = 10.0,
    builtin: str = "",
) -> ToolSaved:
    """Create a tool. A webhook tool gets a generated signing secret, returned here only."""
    tool = Tool(
        tenant=tenant,
        name=(name or "").strip(),
        description=(description or "").strip(),
        parameters=parameters,
        risk=risk,
        required_scope=(required_scope or "").strip(),
        executor=executor,
        webhook_url=(webhook_url or "").strip(),
        timeout_seconds=timeout_seconds,
        builtin=(builtin or "").strip(),
    )
    _validate_tool(tool)
    secret = ""
    if tool.executor == Tool.Executor.WEBHOOK:
        secret = _new_signing_secret()
        tool.webhook_secret_encrypted = crypto.encrypt(secret)
    try:
        with transaction.atomic():
            tool.save()
            audit_record(tenant=tenant, actor=actor, action="tool.create", target=tool, after=_tool_state(tool))
    except IntegrityError as exc:
        raise FieldConflictError("name", f"a tool called {tool.name!r} already exists.") from exc
    return ToolSaved(tool=tool, signing_secret=secret)


_UNSET: Any = object()


def tool_update(
    *,
    actor: Actor,
    tool: Tool,
    name: str = _UNSET,
    description: str = _UNSET,
    parameters: Any = _UNSET,
    executor: str = _UNSET,
    risk: str = _UNSET,
    required_scope: str = _UNSET,
    webhook_url: str = _UNSET,
    timeout_seconds: float = _UNSET,
    builtin: str = _UNSET,
    rotate_secret: bool = False,
) -> ToolSaved:
    """Change the given fields of `tool` (others stay). A tool that becomes a webhook, or whose
    secret is rotated, gets a new signing secret, returned here only. Agent versions refer to
    the tool itself, so an edit applies to every agent that has it."""
    changes = {
        "name": name,
        "description": description,
        "parameters": parameters,
        "executor": executor,
        "risk": risk,
        "required_scope": required_scope,
        "webhook_url": webhook_url,
        "timeout_seconds": timeout_seconds,
        "builtin": builtin,
    }
    with transaction.atomic():
        tool = Tool.objects.for_tenant(tool.tenant_id).select_for_update().get(pk=tool.pk)
        before = _tool_state(tool)
        had_secret = bool(tool.webhook_secret_encrypted)
        for field, value in changes.items():
            if value is not _UNSET:
                setattr(tool, field, value.strip() if isinstance(value, str) else value)
        _validate_tool(tool)
        secret = ""
        if tool.executor == Tool.Executor.WEBHOOK and (rotate_secret or not had_secret):
            secret = _new_signing_secret()
            tool.webhook_secret_encrypted = crypto.encrypt(secret)
        after = _tool_state(tool)
        if before == after and not secret:
            return ToolSaved(tool=tool)
        tool.updated_at = timezone.now()
        try:
            with transaction.atomic():
                tool.save()
        except IntegrityError as exc:
            raise FieldConflictError("name", f"a tool called {tool.name!r} already exists.") from exc
        if secret and before == after:
            after = {**after, "signing_secret": "rotated"}
        audit_record(tenant=tool.tenant, actor=actor, action="tool.update", target=tool, before=before, after=after)
    return ToolSaved(tool=tool, signing_secret=secret)


def tool_delete(*, actor: Actor, tool: Tool) -> None:
    """Delete a tool no agent version has ever been granted; versions are history, so a tool
    they name stays (remove it from the agent instead: the next version no longer has it)."""
    with transaction.atomic():
        used_by = (
            AgentVersionTool.objects.for_tenant(tool.tenant)
            .filter(tool=tool)
            .values_list("agent_version__agent__name", flat=True)
            .distinct()
        )
        names = sorted(set(used_by))
        if names:
            raise ConflictError(
                f"The tool {tool.name} is part of the history of {', '.join(names)}; it cannot be deleted."
            )
        if tool.executions.exists():
            raise ConflictError(f"The tool {tool.name} has executions on record; it cannot be deleted.")
        before = _tool_state(tool)
        audit_record(tenant=tool.tenant, actor=actor, action="tool.delete", target=tool, before=before)
        tool.delete()


def tool_signing_secret(tool: Tool) -> str:
    """The decrypted webhook signing secret (for the executor that signs requests)."""
    return crypto.decrypt(tool.webhook_secret_encrypted)


# --- Agents ------------------------------------------------------------------------------------


def _resolve_tools(tenant: Tenant, tools: Iterable[Tool | str]) -> list[Tool]:
    """The tenant's tools named by `tools` (Tool rows, ids or names). Another tenant's tool is as
    unknown as a missing one."""
    wanted = list(dict.fromkeys(tools))
    resolved: dict[str, Tool] = {}
    refs: list[str] = []
    for item in wanted:
        if isinstance(item, Tool):
            if item.tenant_id != tenant.pk:
                raise FieldError("tools", f"unknown tool {item.name!r}.")
            resolved[str(item.pk)] = item
        elif isinstance(item, str) and item.strip():
            refs.append(item.strip())
        else:
            raise FieldError("tools", "give each tool as its name or id.")
    if refs:
        found = list(Tool.objects.for_tenant(tenant).filter(name__in=refs))
        ids = [r for r in refs if _is_uuid(r)]
        if ids:
            found += list(Tool.objects.for_tenant(tenant).filter(pk__in=ids))
        by_ref = {t.name: t for t in found} | {str(t.pk): t for t in found}
        missing = [r for r in refs if r not in by_ref]
        if missing:
            raise FieldError("tools", f"unknown tool {missing[0]!r}.")
        for ref in refs:
            resolved[str(by_ref[ref].pk)] = by_ref[ref]
    return sorted(resolved.values(), key=lambda t: t.name)


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AgentConfig:
    """The versioned part of an agent: what a run executes."""

    instructions: str
    model_alias: str
    tools: list[Tool]
    scopes: list[str]
    max_steps: int
    max_tokens_per_request: int
    temperature: float

    def state(self) -> dict[str, Any]:
        return {
            "instructions": self.instructions,
            "model_alias": self.model_alias,
            "tools": [t.name for t in self.tools],
            "scopes": self.scopes,
            "max_steps": self.max_steps,
            "max_tokens_per_request": self.max_tokens_per_request,
            "temperature": self.temperature,
        }


def _validated_config(
    tenant: Tenant,
    *,
    instructions: str,
    model_alias: str,
    tools: Iterable[Tool | str],
    scopes: Iterable[str],
    max_steps: int,
    max_tokens_per_request: int,
    temperature: float,
) -> AgentConfig:
    alias = (model_alias or "").strip()
    if not re.fullmatch(r"[-a-zA-Z0-9_]{1,64}", alias):
        raise FieldError("model_alias", "use a pin alias such as default: letters, digits, _ and -.")
    if isinstance(scopes, str):
        scopes = scopes.split()
    clean_scopes = sorted({s.strip() for s in scopes if s and s.strip()})
    for scope in clean_scopes:
        if not SCOPE_NAME.match(scope):
            raise FieldError("scopes", f"{scope!r} is not a scope: use lowercase letters, digits and . _ : -.")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or not 1 <= max_steps <= MAX_STEPS_LIMIT:
        raise FieldError("max_steps", f"must be a whole number from 1 to {MAX_STEPS_LIMIT}.")
    if (
        isinstance(max_tokens_per_request, bool)
        or not isinstance(max_tokens_per_request, int)
        or max_tokens_per_request < 1
    ):
        raise FieldError("max_tokens_per_request", "must be a whole number of at least 1.")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= MAX_TEMPERATURE
    ):
        raise FieldError("temperature", f"must be a number from 0 to {MAX_TEMPERATURE:g}.")
    return AgentConfig(
        instructions=(instructions or "").strip(),
        model_alias=alias,
        tools=_resolve_tools(tenant, tools),
        scopes=clean_scopes,
        max_steps=max_steps,
        max_tokens_per_request=max_tokens_per_request,
        temperature=float(temperature),
    )


def _version_config(version: AgentVersion) -> AgentConfig:
    return AgentConfig(
        instructions=version.instructions,
        model_alias=version.model_alias,
        tools=sorted(version.tools.all(), key=lambda t: t.name),
        scopes=sorted(version.scopes),
        max_steps=version.max_steps,
        max_tokens_per_request=version.max_tokens_per_request,
        temperature=version.temperature,
    )


def _add_version(agent: Agent, config: AgentConfig, actor: Actor) -> AgentVersion:
    """Append version number+1 to a locked agent and make it current."""
    latest = AgentVersion.objects.for_tenant(agent.tenant).filter(agent=agent).aggregate(n=Max("number"))["n"]
    version = AgentVersion.objects.create(
        tenant=agent.tenant,
        agent=agent,
        number=(latest or 0) + 1,
        instructions=config.instructions,
        model_alias=config.model_alias,
        scopes=config.scopes,
        max_steps=config.max_steps,
        max_tokens_per_request=config.max_tokens_per_request,
        temperature=config.temperature,
        created_by=actor.user,
    )
    AgentVersionTool.objects.bulk_create(
        [AgentVersionTool(tenant=agent.tenant, agent_version=version, tool=tool) for tool in config.tools]
    )
    agent.current_version = version
    agent.save(update_fields=["current_version"])
    return version


def _check_agent_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise FieldError("name", "an agent needs a name.")
    if len(name) > AGENT_NAME_MAX:
        raise FieldError("name", f"use at most {AGENT_NAME_MAX} characters.")
    return name


def agent_create(
    *,
    actor: Actor,
    tenant: Tenant,
    name: str,
    instructions: str = "",
    model_alias: str = "default",
    tools: Iterable[Tool | str] = (),
    scopes: Iterable[str] = (),
    max_steps: int = 8,
    max_tokens_per_request: int = 1024,
    temperature: float = 0.0,
) -> Agent:
    """Create an agent with its version 1. An alias that is not pinned yet is allowed (the
    console warns; a run fails with a clear error until the pin exists)."""
    name = _check_agent_name(name)
    config = _validated_config(
        tenant,
        instructions=instructions,
        model_alias=model_alias,
        tools=tools,
        scopes=scopes,
        max_steps=max_steps,
        max_tokens_per_request=max_tokens_per_request,
        temperature=temperature,
    )
    try:
        with transaction.atomic():
            agent = Agent.objects.create(tenant=tenant, name=name)
            version = _add_version(agent, config, actor)
            after = {"name": name, "version": version.number, **config.state()}
            audit_record(tenant=tenant, actor=actor, action="agent.create", target=agent, after=after)
    except IntegrityError as exc:
        raise FieldConflictError("name", f"an agent called {name!r} already exists.") from exc
    return agent


def agent_update(
    *,
    actor: Actor,
    agent: Agent,
    name: str = _UNSET,
    instructions: str = _UNSET,
    model_alias: str = _UNSET,
    tools: Iterable[Tool | str] = _UNSET,
    scopes: Iterable[str] = _UNSET,
    max_steps: int = _UNSET,
    max_tokens_per_request: int = _UNSET,
    temperature: float = _UNSET,
) -> Agent:
    """Change the given fields. Any change to what a run executes appends a new immutable
    version (number+1) and makes it current; runs keep the version they started with. A rename
    alone changes no version (the name is not part of what runs execute). No change, no write."""
    given = {
        "instructions": instructions,
        "model_alias": model_alias,
        "tools": tools,
        "scopes": scopes,
        "max_steps": max_steps,
        "max_tokens_per_request": max_tokens_per_request,
        "temperature": temperature,
    }
    try:
        with transaction.atomic():
            agent = Agent.objects.for_tenant(agent.tenant_id).select_for_update().get(pk=agent.pk)
            tenant = agent.tenant
            current = agent.current_version
            base = _version_config(current) if current is not None else _default_config()
            merged: dict[str, Any] = {**base.__dict__, **{k: v for k, v in given.items() if v is not _UNSET}}
            config = _validated_config(tenant, **merged)
            before: dict[str, Any] = {"name": agent.name, "version": current.number if current else None}
            before |= base.state()
            changed = False
            if name is not _UNSET:
                new_name = _check_agent_name(name)
                if new_name != agent.name:
                    agent.name = new_name
                    with transaction.atomic():
                        agent.save(update_fields=["name"])
                    changed = True
            if current is None or config.state() != base.state():
                _add_version(agent, config, actor)
                changed = True
            if changed:
                after = {"name": agent.name, "version": agent.current_version.number, **config.state()}  # type: ignore[union-attr]
                audit_record(
                    tenant=tenant, actor=actor, action="agent.update", target=agent, before=before, after=after
                )
    except IntegrityError as exc:
        raise FieldConflictError("name", f"an agent called {name!r} already exists.") from exc
    return agent


def _default_config() -> AgentConfig:
    return AgentConfig(
        instructions="",
        model_alias="default",
        tools=[],
        scopes=[],
        max_steps=8,
        max_tokens_per_request=1024,
        temperature=0.0,
    )


def agent_archive(*, actor: Actor, agent: Agent) -> Agent:
    """Archive an agent: it disappears from lists and starts no new runs; its runs and versions stay."""
    with transaction.atomic():
        agent = Agent.objects.for_tenant(agent.tenant_id).select_for_update().get(pk=agent.pk)
        if agent.archived:
            return agent
        agent.archived = True
        agent.save(update_fields=["archived"])
        audit_record(
            tenant=agent.tenant,
            actor=actor,
            action="agent.archive",
            target=agent,
            before={"archived": False},
            after={"archived": True},
        )
    return agent


def agent_restore(*, actor: Actor, agent: Agent) -> Agent:
    """Bring an archived agent back."""
    with transaction.atomic():
        agent = Agent.objects.for_tenant(agent.tenant_id).select_for_update().get(pk=agent.pk)
        if not agent.archived:
            return agent
        agent.archived = False
        agent.save(update_fields=["archived"])
        audit_record(
            tenant=agent.tenant,
            actor=actor,
            action="agent.restore",
            target=agent,
            before={"archived": True},
            after={"archived": False},
        )
    return agent


# --- Runs --------------------------------------------------------------------------------------


def run_create(
    *,
    actor: Actor,
    tenant: Tenant,
    agent: Agent,
    input: str,
    end_user_id: str = "",
    session_id: str = "",
    metadata: dict[str, Any] | None = None,
    api_key: ApiKey | None = None,
) -> Run:
    """Queue a run of the agent's current version and hand it to a worker once committed."""
    if agent.tenant_id != tenant.pk:
        raise FieldError("agent", "unknown agent.")
    if not isinstance(input, str) or not input.strip():
        raise FieldError("input", "give the run an input text.")
    if len(input) > MAX_INPUT_CHARS:
        raise FieldError("input", f"is longer than {MAX_INPUT_CHARS} characters.")
    end_user_id = _check_label("end_user_id", end_user_id)
    session_id = _check_label("session_id", session_id)
    metadata = _check_metadata(metadata)
    with transaction.atomic():
        # Lock the agent so an edit cannot move current_version between the check and the insert.
        agent = (
            Agent.objects.for_tenant(tenant)
            .select_for_update(of=("self",))
            .select_related("current_version")
            .get(pk=agent.pk)
        )
        if agent.archived:
            raise ConflictError(f"The agent {agent.name} is archived; restore it to start runs.")
        if agent.current_version is None:
            raise ConflictError(f"The agent {agent.name} has no version yet; save its configuration first.")
        run = Run.objects.create(
            tenant=tenant,
            agent=agent,
            agent_version=agent.current_version,
            status=Run.Status.QUEUED,
            input=input,
            end_user_id=end_user_id,
            session_id=session_id,
            metadata=metadata,
            api_key=api_key or actor.api_key,
            created_by=actor.user,
        )
        send_run_changed(run)
        tenant_id, run_id = str(tenant.pk), str(run.pk)
        enqueue("agents.tasks.execute_run", tenant_id, run_id)
    return run


def _check_label(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FieldError(field, "must be a string.")
    value = value.strip()
    if len(value) > LABEL_MAX:
        raise FieldError(field, f"use at most {LABEL_MAX} characters.")
    return value


def _check_metadata(metadata: Any) -> dict[str, Any]:
    import json

    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise FieldError("metadata", "must be a JSON object.")
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise FieldError("metadata", f"is larger than {MAX_METADATA_BYTES} bytes of JSON.")
    return metadata


def run_cancel(*, actor: Actor, run: Run) -> Run:
    """Cancel a run in any state that is not final. A queued or waiting run is cancelled at once
    (a task that picks it up later finds it final and does nothing); a running one is marked,
    and its worker stops it before the next step. A finished run answers ConflictError."""
    with transaction.atomic():
        run = Run.objects.for_tenant(run.tenant_id).select_for_update().get(pk=run.pk)
        if run.is_finished:
            raise ConflictError(f"The run has already finished ({run.get_status_display().lower()}).")
        now = timezone.now()
        fields = ["cancel_requested_at"]
        run.cancel_requested_at = run.cancel_requested_at or now
        # Neither a queued run nor one waiting for a reviewer has a worker stepping it that
        # would notice a request, so both end here; a running one is stopped by its worker.
        if run.status in (Run.Status.QUEUED, Run.Status.AWAITING_APPROVAL):
            run.status = Run.Status.CANCELLED
            run.finished_at = now
            run.error_type = "cancelled"
            run.error_message = f"Cancelled by {actor.label}."
            run.actions_rejected, run.actions_expired, run.actions_blocked = run.action_counts()
            fields += ["status", "finished_at", "error_type", "error_message", *Run.ACTION_COUNT_FIELDS]
        run.save(update_fields=fields)
        send_run_changed(run)
    return run


# --- Live events and audit ---------------------------------------------------------------------


def send_run_changed(run: Run) -> None:
    """Push `run.changed` to the tenant's live pages once the transaction commits."""
    events.run_changed(run)
