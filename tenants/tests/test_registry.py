"""What the apps register into the kernel (tenants.registry) from their AppConfig.ready()."""

from __future__ import annotations

import importlib
import typing
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction

from tenants import events, registry
from tenants.audit import Actor
from tenants.models import Tenant
from tenants.services import end_user_erase
from tenants.testing import Cast

ROOT = Path(__file__).resolve().parents[2]


def live_event_classes() -> dict[str, type]:
    """Every TypedDict with a `type: Literal[...]` declared in an app's events.py."""
    found: dict[str, type] = {}
    for path in sorted(ROOT.glob("*/events.py")):
        module = importlib.import_module(f"{path.parent.name}.events")
        for value in vars(module).values():
            if typing.is_typeddict(value) and value.__module__ == module.__name__:
                for name in typing.get_args(typing.get_type_hints(value).get("type")):
                    found[name] = value
    return found


def test_every_apps_live_event_type_is_registered() -> None:
    declared = live_event_classes()
    assert {"run.changed", "members.changed", "traces.ingested", "approval.changed"} <= set(declared)
    assert registry.live_event_types() == declared


@pytest.mark.django_db
def test_an_unregistered_live_event_is_refused_before_the_commit(cast: Cast) -> None:
    with pytest.raises(LookupError, match="not registered"), transaction.atomic():
        events.send_after_commit(cast.acme, {"type": "nobody.knows"})
    with pytest.raises(LookupError, match="not registered"):
        events.send_now(cast.acme.live_group, {"type": "nobody.knows"})


def test_a_type_name_is_one_events_alone() -> None:
    class Impostor(typing.TypedDict):
        type: typing.Literal["run.changed"]

    with pytest.raises(ValueError, match="already RunChanged"):
        registry.register_live_events(Impostor)


def test_the_demo_seeders_run_catalog_agents_guardrails_then_evals() -> None:
    assert [seeder.__module__ for seeder in registry.demo_seeders()] == [
        "catalog.apps",
        "agents.apps",
        "guardrails.apps",
        "evals.apps",
    ]


def test_beats_sweeps_are_the_cross_tenant_tasks() -> None:
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert set(registry.cross_tenant_tasks()) == scheduled - {"tenants.tasks.heartbeat"}
    assert registry.cross_tenant_reason("traces.tasks.expire_traces") == "delete traces past each tenant's retention"
    assert registry.cross_tenant_reason("agents.tasks.execute_run") == ""


@pytest.mark.django_db
def test_end_user_erasure_merges_every_erasers_receipt(cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    def other(*, actor: Actor, tenant: Tenant, end_user_id: str) -> dict[str, Any]:
        return {"counts": {"elsewhere": 2}}

    monkeypatch.setattr(registry, "_end_user_erasers", [*registry.end_user_erasers(), other])
    receipt = end_user_erase(actor=Actor.system_actor("test"), tenant=cast.acme, end_user_id="nobody-stored")
    assert receipt["erased"] is True
    assert receipt["counts"]["elsewhere"] == 2
    assert receipt["counts"]["traces"] == 0
    assert receipt["end_user"].startswith("erased-")
