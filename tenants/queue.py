"""Celery tasks sent by their registered name, after the current transaction commits.

Tasks call services, so a service that queues work does not import its app's tasks module (that
would be a circle): it names the task, `enqueue("approvals.tasks.deliver_callback", tenant_id,
approval_id)`. The task object is looked up in the Celery app, so whatever the task declares
(retries, acks_late) and whatever a test patched on it (`agents.tasks.execute_run.delay`) applies
as when the module was imported.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery import Task, current_app
from django.db import transaction


def enqueue(name: str, *args: Any) -> None:
    """Send the task registered as `name` with `args` (ids: strings) once the current transaction
    commits; outside a transaction, at once. KeyError (at once) when no installed app has it."""
    task_named(name)
    transaction.on_commit(partial(send, name, *args))


def send(name: str, *args: Any) -> None:
    """Send the task registered as `name` with `args` now."""
    task_named(name).delay(*args)


def task_named(name: str) -> Task:
    """The task registered as `name`. The first miss imports every installed app's tasks module
    (Celery's autodiscovery, which a worker runs at start and a web process does not)."""
    tasks = current_app.tasks
    if name not in tasks:
        current_app.loader.import_default_modules()
    return tasks[name]
