"""Services send tasks by name after commit (tenants.queue), without importing the task modules."""

from __future__ import annotations

import pytest
from django.db import transaction

from tenants import queue


@pytest.mark.django_db(transaction=True)
def test_a_task_is_sent_by_name_once_the_transaction_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, ...]] = []
    monkeypatch.setattr(queue.task_named("tenants.tasks.heartbeat"), "delay", lambda *args: sent.append(args))
    with transaction.atomic():
        queue.enqueue("tenants.tasks.heartbeat", "a", "b")
        assert sent == []
    assert sent == [("a", "b")]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, ...]] = []
    monkeypatch.setattr(queue.task_named("tenants.tasks.heartbeat"), "delay", lambda *args: sent.append(args))

    @transaction.atomic
    def enqueue_then_fail() -> None:
        queue.enqueue("tenants.tasks.heartbeat")
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()
    assert sent == []


def test_every_apps_tasks_are_found_by_name() -> None:
    for name in ("agents.tasks.execute_run", "approvals.tasks.deliver_callback", "evals.tasks.execute_case"):
        assert queue.task_named(name).name == name


def test_an_unknown_task_is_refused_when_queued() -> None:
    with pytest.raises(KeyError):
        queue.enqueue("nobody.tasks.nothing")
