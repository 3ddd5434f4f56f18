"""THE crash test: a real Celery worker (prefork, a subprocess) is killed with SIGKILL in the middle
of a run, right after the irreversible refund ran, while the model is slow to answer. Another
worker resumes the run from its persisted steps; the run finishes once and the refund ran once.

Two ways a worker dies:
- the whole worker (main process and pool process) dies, as when its machine is lost: nobody
  rejects the task's message, so beat's `requeue_stuck_runs` finds the run's expired lease and
  sends the task again to a new worker (started with -B, beat inside it);
- only the pool process dies (OOM killer): the main process rejects the message
  (reject_on_worker_lost) and the broker redelivers it at once; the new pool process finds the
  dead one's lease still live, retries when it expires, then resumes.

The provider is FakeOpenAI (real HTTP on 127.0.0.1); everything else is real: PostgreSQL (the
pytest database, committed: transaction=True), Redis and Celery.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection

from agents.models import Run, Step, ToolExecution
from agents.tasks import execute_run
from agents.tests.test_runtime import build, no_human_review
from catalog.fake_openai import FakeOpenAI, Reply, completion
from catalog.models import Provider

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")
LEASE_SECONDS = 2.0
SLOW_MODEL_SECONDS = 25.0  # far longer than the test waits: the worker dies during this call
FINAL_ANSWER = "Refunded order T-1001."


class Worker:
    """`celery -A config worker --pool prefork --concurrency 1` in its own process group."""

    def __init__(self, name: str, env: dict[str, str], log: Path, *, beat: bool = False) -> None:
        self.log = log
        command = [CELERY, "-A", "config", "worker", "--pool", "prefork", "--concurrency", "1"]
        command += ["--loglevel", "INFO", "--without-gossip", "--without-mingle", "-n", f"{name}@%h"]
        if beat:
            command += ["--beat", "--schedule", str(log.with_suffix(".schedule"))]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches the pool process too
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        wait_for(lambda: " ready." in self.text() or self.process.poll() is not None, timeout, "the worker to start")
        assert self.process.poll() is None, self.text()

    def pool_pids(self) -> list[int]:
        """The pool processes: children of the main process (read from /proc)."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:
                children.append(int(stat.parent.name))
        return children

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, no message rejected, no lease released."""
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def script(body: dict[str, Any]) -> dict[str, Any] | Reply:
    """The model: asks for the refund; once it has the refund's result, its first answer is slow
    (the worker is killed meanwhile) and any later one is the final answer at once."""
    messages = body["messages"]
    if not any(m["role"] == "tool" for m in messages):
        return completion(tool_calls=[("refund_order", {"order_number": "T-1001", "reason": "Broken on arrival"})])
    if not getattr(script, "slowed", False):
        script.slowed = True  # type: ignore[attr-defined]
        return Reply(body=completion(FINAL_ANSWER), delay=SLOW_MODEL_SECONDS)
    return completion(FINAL_ANSWER)


def normalized(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with tool-call arguments decoded (PostgreSQL's jsonb does not keep key order)."""
    out = []
    for message in messages:
        message = dict(message)
        message["tool_calls"] = [
            {**call, "function": {**call["function"], "arguments": json.loads(call["function"]["arguments"])}}
            for call in message.get("tool_calls") or []
        ]
        out.append(message)
    return out


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a worker that uses this test's database and Redis."""
    url = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ["REDIS_URL"],
        # The test's secret, so the worker decrypts what the test encrypted; var/ of its own.
        "SECRET_KEY": django_settings.SECRET_KEY,
        "AOC_VAR_DIR": str(tmp_path / "var"),
        "RUN_LEASE_SECONDS": str(LEASE_SECONDS),
        "RUN_REQUEUE_INTERVAL_SECONDS": "1",
        "PROVIDER_ALLOWED_HOSTS": "127.0.0.1",  # the fake provider listens on loopback
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(name: str, *, beat: bool = False) -> Worker:
        worker = Worker(name, worker_env, tmp_path / f"{name}.log", beat=beat)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("dies", ["whole_worker", "pool_process"])
def test_a_run_whose_worker_is_killed_mid_run_finishes_once_and_refunds_once(
    dies: str, workers: Callable[..., Worker], settings: Any
) -> None:
    settings.RUN_LEASE_SECONDS = LEASE_SECONDS
    script.slowed = False  # type: ignore[attr-defined]
    with FakeOpenAI(handler=script) as fake:
        setup = build(provider_kind=Provider.Kind.OPENAI_COMPATIBLE, base_url=fake.base_url)
        no_human_review(setup.tenant)
        order = setup.order("T-1001")
        run = setup.start("My kettle arrived broken, please refund order T-1001.")
        first = workers("crash-a")
        started = time.monotonic()

        execute_run.delay(str(setup.tenant.pk), str(run.pk))
        # The refund ran and its step is saved; the worker now waits for the slow model.
        wait_for(lambda: len(fake.requests) >= 2, 30, "the model call after the refund")
        order.refresh_from_db()
        run.refresh_from_db()
        assert order.refund_count == 1 and run.status == Run.Status.RUNNING and run.step_count == 2

        if dies == "whole_worker":
            first.kill()
            second = workers("crash-b", beat=True)
        else:
            [pool] = first.pool_pids()
            os.kill(pool, signal.SIGKILL)
            second = first

        finished = wait_for(
            lambda: Run.objects.filter(pk=run.pk, status__in=Run.FINAL_STATUSES).first(), 40, "the run to finish"
        )
        elapsed = time.monotonic() - started
        time.sleep(1.0)  # any duplicate execution would show up now

    run.refresh_from_db()
    order.refresh_from_db()
    assert finished.status == run.status == Run.Status.SUCCEEDED, (run.error_type, run.error_message, second.text())
    assert run.output == FINAL_ANSWER
    assert order.refund_count == 1
    [execution] = ToolExecution.objects.for_tenant(setup.tenant).filter(run=run)
    assert execution.status == ToolExecution.Status.SUCCEEDED and execution.step_index == 1
    steps = Step.objects.for_tenant(setup.tenant).filter(run=run).order_by("index")
    assert [(s.index, s.kind) for s in steps] == [(0, "model"), (1, "tool"), (2, "model")]
    assert run.step_count == 3 and run.finished_at is not None
    # The killed call, then the resumed one, which carried the persisted refund result.
    chats = [r for r in fake.requests if r.path == "/v1/chat/completions"]
    assert len(chats) == 3
    assert normalized(chats[2].body["messages"]) == normalized(chats[1].body["messages"])
    assert '"refunded": true' in chats[2].body["messages"][-1]["content"]
    assert "resuming after the lease" in second.text()
    assert elapsed < 45, elapsed
